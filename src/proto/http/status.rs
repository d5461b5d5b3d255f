//! [`Status`]: every HTTP status ringlet answers with, its code, its reason
//! phrase, and what a head or body of that status must carry. Nothing else
//! here: no parsing, no I/O.

use std::fmt;

/// The `Allow` value of a `405` answer: the methods served.
pub const ALLOW: &str = "GET, HEAD";

/// Defines [`Status`] and its tables from one list, so that a code, its
/// reason and its text body are written once.
macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $code:literal $reason:literal,)*) => {
        /// A status ringlet answers with (the static file server and the
        /// metrics endpoint). `Display` writes `404 Not Found`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Status {
            $($(#[$doc])* $name,)*
        }

        impl Status {
            /// Every status, in code order.
            pub const ALL: &'static [Status] = &[$(Status::$name),*];

            /// The three-digit code, `404`.
            pub const fn code(self) -> u16 {
                match self {
                    $(Status::$name => $code,)*
                }
            }

            /// The standard reason phrase, `Not Found`.
            pub const fn reason(self) -> &'static str {
                match self {
                    $(Status::$name => $reason,)*
                }
            }

            /// The body of an answer that is only this status:
            /// `404 Not Found` and a newline.
            pub const fn text_body(self) -> &'static str {
                match self {
                    $(Status::$name => concat!($code, " ", $reason, "\n"),)*
                }
            }
        }
    };
}

statuses! {
    /// The whole file.
    Ok = 200 "OK",
    /// One range of the file.
    PartialContent = 206 "Partial Content",
    /// The client's copy is current.
    NotModified = 304 "Not Modified",
    /// A malformed or refused request head.
    BadRequest = 400 "Bad Request",
    /// Outside the root, not a regular file, or not permitted.
    Forbidden = 403 "Forbidden",
    /// Nothing by that name.
    NotFound = 404 "Not Found",
    /// A method other than `GET` or `HEAD`; the head says [`ALLOW`].
    MethodNotAllowed = 405 "Method Not Allowed",
    /// The head did not arrive whole in time.
    RequestTimeout = 408 "Request Timeout",
    /// The request line alone fills the head limit.
    UriTooLong = 414 "URI Too Long",
    /// A `Range` outside the file.
    RangeNotSatisfiable = 416 "Range Not Satisfiable",
    /// The head is longer than its limit, or has too many lines.
    HeaderFieldsTooLarge = 431 "Request Header Fields Too Large",
    /// The file could not be opened for another reason.
    InternalServerError = 500 "Internal Server Error",
    /// Try again: the file changed while being opened, or the server is not
    /// ready.
    ServiceUnavailable = 503 "Service Unavailable",
    /// Not HTTP/1.x.
    VersionNotSupported = 505 "HTTP Version Not Supported",
}

impl Status {
    /// The `Allow` value this status's head must carry (RFC 9110 15.5.6):
    /// [`ALLOW`] for 405, none for any other.
    pub const fn allow(self) -> Option<&'static str> {
        match self {
            Status::MethodNotAllowed => Some(ALLOW),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_says_its_code_and_reason_once() {
        for &s in Status::ALL {
            assert_eq!(s.text_body(), format!("{s}\n"));
            assert_eq!(s.to_string(), format!("{} {}", s.code(), s.reason()));
            assert_eq!(s.allow().is_some(), s.code() == 405);
        }
        assert!(Status::ALL.windows(2).all(|w| w[0].code() < w[1].code()));
        assert_eq!(
            Status::HeaderFieldsTooLarge.to_string(),
            "431 Request Header Fields Too Large"
        );
    }
}
