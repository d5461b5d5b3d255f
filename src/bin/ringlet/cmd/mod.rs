//! The binary's commands, one file each (`ringlet probe`, a few lines, is
//! here); the library does the work.

pub mod bench;
pub mod docs;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod upgrade;

use std::process::ExitCode;

/// `ringlet probe`: print the report; exit 0 when the uring backend can start.
pub fn probe() -> ExitCode {
    let report = ringlet::probe::Report::gather();
    print!("{report}");
    if report.uring_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
