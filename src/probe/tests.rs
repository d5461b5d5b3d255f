//! The probe's tests: versions and /proc lines parse, and every refusal
//! reads as a sentence that says what to do (and names no flag).

use super::*;

#[test]
fn parses_kernel_versions() {
    assert_eq!(parse_version("6.18.44-fc-v669"), Some((6, 18)));
    assert_eq!(parse_version("5.10.0-21-amd64"), Some((5, 10)));
    assert_eq!(parse_version("garbage"), None);
}

#[test]
fn explains_a_seccomp_refusal() {
    let mut r = Report::gather();
    r.memlock = (None, None);
    r.setup = Err(io::Error::from_raw_os_error(libc::ENOSYS));
    r.seccomp = Some(Seccomp::Filter);
    let why = r.why_not().unwrap();
    assert!(
        matches!(
            &why,
            Unavailable::Setup {
                refusal: Refusal::SeccompBlocked,
                ..
            }
        ),
        "{why:?}"
    );
    assert!(why.to_string().contains("seccomp filter"), "{why}");
    // The OS error is the source, not part of the message.
    let source = std::error::Error::source(&why).unwrap();
    let os = source.downcast_ref::<io::Error>().unwrap();
    assert_eq!(os.raw_os_error(), Some(libc::ENOSYS));
    assert!(!why.to_string().contains("os error"), "{why}");
    assert!(
        why.sentence().ends_with(&format!("({os})")),
        "{}",
        why.sentence()
    );
    r.seccomp = Some(Seccomp::Disabled);
    assert!(matches!(
        r.why_not(),
        Some(Unavailable::Setup {
            refusal: Refusal::NoIoUring { .. },
            ..
        })
    ));
    r.setup = Ok(());
    assert!(r.why_not().is_none());
}

#[test]
fn an_eperm_is_explained_by_the_sysctl_first() {
    let mut r = Report::gather();
    r.memlock = (None, None);
    r.setup = Err(io::Error::from_raw_os_error(libc::EPERM));
    r.seccomp = Some(Seccomp::Filter);
    let refusal = |r: &Report| match r.why_not() {
        Some(Unavailable::Setup { refusal, .. }) => refusal,
        other => panic!("{other:?}"),
    };
    r.io_uring_disabled = Some(IoUringDisabled::Disabled);
    assert_eq!(refusal(&r), Refusal::DisabledSystemWide);
    r.io_uring_disabled = Some(IoUringDisabled::GroupOnly);
    assert_eq!(refusal(&r), Refusal::GroupOnly);
    r.io_uring_disabled = Some(IoUringDisabled::Allowed);
    assert_eq!(refusal(&r), Refusal::SeccompRefused);
    r.seccomp = None;
    assert_eq!(refusal(&r), Refusal::Forbidden);
}

#[test]
fn a_memlock_limit_out_of_reach_names_what_to_raise_and_no_flag() {
    if rustix::process::geteuid().is_root() {
        return; // root may raise it: never too low
    }
    let mut r = Report::gather();
    r.memlock = (Some(256 << 10), Some(256 << 10));
    let why = r.why_not().unwrap();
    let text = why.to_string();
    assert!(matches!(why, Unavailable::Memlock { .. }), "{why:?}");
    assert!(text.contains("RLIMIT_MEMLOCK is 256 KiB"), "{text}");
    assert!(text.contains("glommio needs at least 512 KiB"), "{text}");
    assert!(!text.contains("--"), "{text}");
}

#[test]
fn parses_the_seccomp_line_of_a_status() {
    let status = "Name:\tcat\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n";
    assert_eq!(Seccomp::from_status(status), Some(Seccomp::Filter));
    assert_eq!(
        Seccomp::from_status("Seccomp:\t0\n"),
        Some(Seccomp::Disabled)
    );
    assert_eq!(Seccomp::from_status("Seccomp:  1"), Some(Seccomp::Strict));
    assert_eq!(Seccomp::from_status("Seccomp:\t7\n"), None);
    assert_eq!(Seccomp::from_status("Name:\tcat\n"), None);
    // `Seccomp_filters:` is not the mode.
    assert_eq!(Seccomp::from_status("Seccomp_filters:\t2\n"), None);
    assert_eq!(Seccomp::Filter.to_string(), "2 (filter)");
    assert_eq!(Seccomp::Disabled.to_string(), "0 (none)");
    // This process's own status has the line.
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(Seccomp::from_status(&own).is_some());
}

#[test]
fn parses_the_io_uring_disabled_sysctl() {
    assert_eq!(
        IoUringDisabled::parse("0\n"),
        Some(IoUringDisabled::Allowed)
    );
    assert_eq!(
        IoUringDisabled::parse("1"),
        Some(IoUringDisabled::GroupOnly)
    );
    assert_eq!(
        IoUringDisabled::parse("2\n"),
        Some(IoUringDisabled::Disabled)
    );
    assert_eq!(IoUringDisabled::parse("x"), None);
    assert_eq!(IoUringDisabled::Disabled.value(), 2);
}
