//! The systemd units and the install script, checked with systemd's own tools
//! (no systemd as PID 1 needed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The highest `systemd-analyze security` exposure accepted (0 = locked
/// down, 10 = unprotected; systemd calls up to 2.0 "OK").
const MAX_EXPOSURE: f64 = 2.0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Both units in a temp dir, ExecStart pointing at the binary under test
/// (verify checks that the command exists).
fn units() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(repo().join("scripts/systemd/ringlet.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/local/bin/ringlet serve"));
    let service = service.replace("/usr/local/bin/ringlet", env!("CARGO_BIN_EXE_ringlet"));
    let s = dir.path().join("ringlet.service");
    std::fs::write(&s, service).unwrap();
    let k = dir.path().join("ringlet.socket");
    std::fs::copy(repo().join("scripts/systemd/ringlet.socket"), &k).unwrap();
    (dir, s, k)
}

fn analyze(args: &[&str], units: &[&Path]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .args(units)
        .output()
        .expect("systemd-analyze (systemd tools) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn units_verify_without_a_word() {
    let (_dir, service, socket) = units();
    let (ok, text) = analyze(&["verify"], &[&service, &socket]);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify said:\n{text}"
    );
}

#[test]
fn the_service_is_sandboxed_below_the_exposure_threshold() {
    let (_dir, service, _) = units();
    let (_, text) = analyze(&["security", "--offline=true"], &[&service]);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ringlet.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(
        level <= MAX_EXPOSURE,
        "exposure {level} > {MAX_EXPOSURE}:\n{text}"
    );
}

#[test]
fn the_service_keeps_what_ringlet_needs() {
    let service = std::fs::read_to_string(repo().join("scripts/systemd/ringlet.service")).unwrap();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ReadOnlyPaths=/srv/ringlet",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "LimitMEMLOCK=",
        "LimitNOFILE=",
        "WatchdogSec=",
    ] {
        assert!(
            service.lines().any(|l| l.starts_with(line)),
            "ringlet.service lacks {line}"
        );
    }
    // sched_setaffinity is in @resources: filtering it out would stop pinning.
    assert!(
        !service
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("~@resources"))
    );
}

#[test]
fn install_script_lays_out_binary_units_and_root() {
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new(repo().join("scripts/install-systemd.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_ringlet")])
        .env("DESTDIR", dest.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = dest.path();
    for f in [
        "etc/systemd/system/ringlet.service",
        "etc/systemd/system/ringlet.socket",
    ] {
        assert_eq!(
            std::fs::read(d.join(f)).unwrap(),
            std::fs::read(
                repo()
                    .join("scripts/systemd")
                    .join(Path::new(f).file_name().unwrap())
            )
            .unwrap()
        );
    }
    assert!(d.join("srv/ringlet").is_dir());
    let probe = Command::new(d.join("usr/local/bin/ringlet"))
        .arg("probe")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&probe.stdout).contains("verdict:"));
}
