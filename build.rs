//! Build script: names the commit the binary is built from, for `ringlet
//! --version` (env RINGLET_COMMIT at compile time). It asks git; outside a
//! git checkout, or without git, the commit is `unknown`. Setting
//! RINGLET_COMMIT when building overrides it (a source tarball's build).
//! Nothing else happens here.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RINGLET_COMMIT");
    let commit = std::env::var("RINGLET_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RINGLET_COMMIT={commit}");
}

/// `git ARGS` in the package's directory: its trimmed output, if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .args(args)
        .current_dir(&dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// HEAD's commit (12 hex digits), and the files that move when HEAD moves,
/// so that a new commit builds a new version string.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = Path::new(&dir).join(path);
            // A path that does not exist would rerun this script on every build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}
