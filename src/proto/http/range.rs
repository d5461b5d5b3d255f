//! [`Range`]: what one `Range: bytes=` header asks of a body of known
//! length (RFC 9110 14.1.2), and nothing else: no I/O, no headers written.

/// What a `Range` header asks of a body of `total` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Ignore the header and send the whole body: it is malformed, names
    /// a unit other than `bytes`, or asks for several ranges.
    Whole,
    /// One range inside the body: `len` (at least 1) bytes from `start`.
    Satisfiable {
        /// The first byte's offset in the body.
        start: u64,
        /// How many bytes, at least 1.
        len: u64,
    },
    /// One range wholly outside the body: a 416.
    Unsatisfiable,
}

impl Range {
    /// Read `header` (its value, `bytes=0-9`) against a body of `total` bytes.
    pub fn parse(header: &str, total: u64) -> Range {
        Range::parse_one(header, total).unwrap_or(Range::Whole)
    }

    /// `None`: ignore the header.
    fn parse_one(header: &str, total: u64) -> Option<Range> {
        let (unit, spec) = header.split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return None;
        }
        let (first, last) = spec.trim().split_once('-')?;
        let satisfiable = |start, len| Range::Satisfiable { start, len };
        Some(match (bound(first)?, bound(last)?) {
            (Some(a), Some(b)) if a > b => return None,
            (Some(a), _) if a >= total => Range::Unsatisfiable,
            (Some(a), Some(b)) => satisfiable(a, b.min(total - 1) - a + 1),
            (Some(a), None) => satisfiable(a, total - a),
            // A suffix: the last `n` bytes.
            (None, Some(0)) => Range::Unsatisfiable,
            (None, Some(_)) if total == 0 => Range::Unsatisfiable,
            (None, Some(n)) => satisfiable(total - n.min(total), n.min(total)),
            (None, None) => return None,
        })
    }
}

/// One side of `first-last`: `Some(None)` when empty, `None` when not a
/// number.
fn bound(s: &str) -> Option<Option<u64>> {
    let s = s.trim();
    if s.is_empty() {
        Some(None)
    } else if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok().map(Some)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, len: u64) -> Range {
        Range::Satisfiable { start, len }
    }

    #[test]
    fn ranges() {
        assert_eq!(Range::parse("bytes=0-9", 100), part(0, 10));
        assert_eq!(Range::parse("bytes=90-200", 100), part(90, 10));
        assert_eq!(Range::parse("bytes=95-", 100), part(95, 5));
        assert_eq!(Range::parse("bytes=-10", 100), part(90, 10));
        assert_eq!(Range::parse("bytes=-500", 100), part(0, 100));
        assert_eq!(Range::parse("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(Range::parse("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(Range::parse("bytes=0-", 0), Range::Unsatisfiable);
        assert_eq!(Range::parse("bytes=5-1", 100), Range::Whole);
        assert_eq!(Range::parse("bytes=0-1,5-6", 100), Range::Whole);
        assert_eq!(Range::parse("items=0-1", 100), Range::Whole);
        assert_eq!(Range::parse("bytes=a-b", 100), Range::Whole);
    }
}
