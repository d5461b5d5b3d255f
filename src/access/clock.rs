//! The time of a line: each thread keeps a [`Clock`] that formats the
//! current second once, in both formats' shapes (nginx's `$time_local` and
//! `$time_iso8601`, in UTC), by hand from the Unix time (no time zone
//! database, no allocation); years after 9999 are written as 9999-12-31
//! 23:59:59. The time is read from the kernel's coarse real-time clock
//! ([`now`]: a few milliseconds behind at most, read without the TSC),
//! which is plenty for a stamp of whole seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time of a line, formatted for both formats.
#[derive(Clone, Copy)]
pub(super) struct Stamp {
    /// `04/Dec/2026:02:45:07 +0000`, as nginx's `$time_local` in UTC.
    pub(super) local: [u8; 26],
    /// `2026-12-04T02:45:07+00:00`, as nginx's `$time_iso8601`.
    pub(super) iso: [u8; 25],
}

/// A thread's last stamp: formatted once a second.
pub(super) struct Clock {
    secs: u64,
    stamp: Stamp,
}

impl Clock {
    pub(super) const fn new() -> Clock {
        Clock {
            secs: u64::MAX,
            stamp: Stamp {
                local: [0; 26],
                iso: [0; 25],
            },
        }
    }

    pub(super) fn stamp(&mut self, now: SystemTime) -> &Stamp {
        let secs = unix_secs(now);
        if secs != self.secs {
            self.secs = secs;
            self.stamp = stamp(secs);
        }
        &self.stamp
    }
}

/// The time now, from `CLOCK_REALTIME_COARSE` (the time of the last tick:
/// a read costs a few nanoseconds less than `SystemTime::now`'s, and the
/// log reads it once a line).
pub(super) fn now() -> SystemTime {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    match u64::try_from(t.tv_sec) {
        Ok(secs) => UNIX_EPOCH + Duration::new(secs, t.tv_nsec.clamp(0, 999_999_999) as u32),
        Err(_) => UNIX_EPOCH,
    }
}

/// 9999-12-31T23:59:59: later times are written as this (four-digit years).
const LAST_SECOND: u64 = 253_402_300_799;

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// (year, month 1-12, day 1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's civil_from_days).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

pub(super) fn stamp(secs: u64) -> Stamp {
    let secs = secs.min(LAST_SECOND);
    let (year, month, day) = civil(secs / 86_400);
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let digits = |out: &mut [u8], n: u64| {
        let mut n = n;
        for b in out.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    let mut local = *b"00/Mon/0000:00:00:00 +0000";
    digits(&mut local[0..2], day);
    local[3..6].copy_from_slice(MONTHS[(month - 1) as usize]);
    digits(&mut local[7..11], year);
    digits(&mut local[12..14], h);
    digits(&mut local[15..17], m);
    digits(&mut local[18..20], s);
    let mut iso = *b"0000-00-00T00:00:00+00:00";
    digits(&mut iso[0..4], year);
    digits(&mut iso[5..7], month);
    digits(&mut iso[8..10], day);
    digits(&mut iso[11..13], h);
    digits(&mut iso[14..16], m);
    digits(&mut iso[17..19], s);
    Stamp { local, iso }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::test_support::T;

    #[test]
    fn the_coarse_clock_is_the_time_now() {
        // Coarse: behind the precise clock by a tick at most (a second is
        // generous), never ahead of it.
        let before = SystemTime::now();
        let coarse = now();
        let after = SystemTime::now();
        assert!(coarse <= after, "{coarse:?} after {after:?}");
        assert!(
            before.duration_since(coarse).unwrap_or_default() < Duration::from_secs(1),
            "{coarse:?} long before {before:?}"
        );
    }

    #[test]
    fn clock() {
        let s = stamp(T);
        assert_eq!(&s.local, b"04/Dec/2026:02:45:07 +0000");
        assert_eq!(&s.iso, b"2026-12-04T02:45:07+00:00");
        assert_eq!(&stamp(1_709_251_199).local, b"29/Feb/2024:23:59:59 +0000");
        assert_eq!(&stamp(951_868_800).iso, b"2000-03-01T00:00:00+00:00");
        assert_eq!(&stamp(0).local, b"01/Jan/1970:00:00:00 +0000");
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), 0);
        // Every day from 1970 to 2100 agrees with httpdate.
        let mut secs = 0u64;
        while secs < 4_102_444_800 {
            let s = stamp(secs);
            let http = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
            // "Fri, 04 Dec 2026 02:45:07 GMT" against "04/Dec/2026:02:45:07 +0000".
            let want = format!(
                "{}/{}/{}:{} +0000",
                &http[5..7],
                &http[8..11],
                &http[12..16],
                &http[17..25]
            );
            assert_eq!(std::str::from_utf8(&s.local).unwrap(), want, "{secs}");
            secs += 86_400 - 7;
        }
        let mut clock = Clock::new();
        let at = UNIX_EPOCH + Duration::from_millis(T * 1000 + 999);
        assert_eq!(&clock.stamp(at).iso, b"2026-12-04T02:45:07+00:00");
        let later = at + Duration::from_millis(1);
        assert_eq!(&clock.stamp(later).iso, b"2026-12-04T02:45:08+00:00");
    }
}
