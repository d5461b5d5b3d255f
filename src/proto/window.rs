//! The one check at the end of sending a file window (the file protocol's
//! and HTTP's): every byte promised went out, or the connection must be
//! cut with a reset, so that the client never takes a short body for a
//! whole one. Sending and counting stay with the protocol.

use std::io;

use crate::fs::DisplayPath;

/// Sending a window fell short: return `error` from `serve`, and the server
/// resets the connection.
#[derive(Debug)]
pub(crate) struct Cut {
    /// File bytes that went out before it stopped (0 when the send failed).
    pub(crate) sent: u64,
    pub(crate) error: io::Error,
}

/// What sending the window of `promised` bytes of the file named `path`
/// came to: every byte, or a [`Cut`] (the send failed, or the file shrank
/// while being sent: the promised length cannot be kept, and nothing is
/// made up to fill it).
pub(crate) fn whole(sent: io::Result<u64>, promised: u64, path: &[u8]) -> Result<u64, Cut> {
    let sent = sent.map_err(|e| Cut {
        sent: 0,
        error: io::Error::new(e.kind(), format!("sending {}: {e}", DisplayPath(path))),
    })?;
    if sent < promised {
        return Err(Cut {
            sent,
            error: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while being sent: the stream stopped after {sent} of the {promised} bytes promised",
                    DisplayPath(path)
                ),
            ),
        });
    }
    Ok(sent)
}
