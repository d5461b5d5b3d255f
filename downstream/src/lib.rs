//! The tests in `tests/` are the point. This crate stands where a user's
//! crate stands, depending on ringlet by path without any `[patch]`, so
//! what it builds is what such a user gets.

/// Why io_uring cannot be used here, if it cannot (a kernel without it, a
/// sysctl or seccomp refusing it): the tests then skip, saying so.
pub fn io_uring_unavailable() -> Option<std::io::Error> {
    ringlet::ring::Ring::new(8).err()
}
