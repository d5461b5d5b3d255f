//! What the package carries besides the server: `ringlet --version` (the
//! version and the commit) and `ringlet docs` (man pages and completions
//! generated from the clap definitions). The package itself is tried by
//! scripts/package-test.sh, in a Debian 11 root.

use std::path::Path;
use std::process::Command;

fn ringlet(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringlet"))
        .args(args)
        .output()
        .expect("run ringlet");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `ringlet 0.1.0 (commit 0123456789ab)`, for the program and a subcommand.
#[test]
fn version_names_the_version_and_a_commit_of_this_repository() {
    let (ok, text) = ringlet(&["--version"]);
    assert!(ok, "{text}");
    let prefix = format!("ringlet {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = text
        .trim()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version said {text:?}"));
    let (ok, serve) = ringlet(&["serve", "--version"]);
    assert!(
        ok && serve.contains(&format!("(commit {commit})")),
        "{serve}"
    );

    // In a git checkout (this one, unless built from a tarball), it is a
    // real commit: HEAD's when built, which may since have moved on.
    let git = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if git.is_ok_and(|o| o.status.success()) {
        assert_eq!(commit.len(), 12, "{commit:?}");
        assert!(commit.bytes().all(|b| b.is_ascii_hexdigit()), "{commit:?}");
        let found = Command::new("git")
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(found.success(), "{commit} is no commit of this repository");
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn docs_writes_a_man_page_per_command_and_three_completions() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = ringlet(&["docs", dir.path().to_str().unwrap()]);
    assert!(ok, "{text}");
    let man = dir.path().join("man");
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "ringlet-bench-echo.1",
            "ringlet-bench-file.1",
            "ringlet-bench-report.1",
            "ringlet-bench-soak.1",
            "ringlet-bench.1",
            "ringlet-probe.1",
            "ringlet-serve.1",
            "ringlet.1",
        ]
    );
    // Each page is clap's: its title, and every long option --help lists.
    for (page, args) in [
        ("ringlet-serve.1", &["serve", "--help"][..]),
        ("ringlet-bench-file.1", &["bench", "file", "--help"][..]),
        ("ringlet.1", &["--help"][..]),
    ] {
        let roff = read(&man.join(page));
        let title = format!(".TH {} 1", page.trim_end_matches(".1"));
        assert!(roff.contains(&title), "{page} lacks {title:?}");
        let (_, help) = ringlet(args);
        let options: Vec<&str> = help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .map(|w| w.trim_end_matches([',', '.']))
            .collect();
        assert!(options.len() >= 2, "no options in {args:?} --help:\n{help}");
        for o in options {
            let escaped = o.replace('-', "\\-");
            assert!(roff.contains(&escaped), "{page} lacks {o}");
        }
    }
    let completions = dir.path().join("completions");
    let bash = read(&completions.join("ringlet.bash"));
    let zsh = read(&completions.join("_ringlet"));
    let fish = read(&completions.join("ringlet.fish"));
    assert!(bash.contains("complete -F _ringlet"), "bash:\n{bash}");
    assert!(zsh.starts_with("#compdef ringlet"), "zsh:\n{zsh}");
    assert!(fish.contains("complete -c ringlet"), "fish:\n{fish}");
    for (shell, script) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
        for word in ["serve", "probe", "bench", "file-header", "cached-sendfile"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        // The packagers' command is no user's: hidden from the completions
        // and the pages alike.
        assert!(!script.contains("docs"), "{shell} completion offers docs");
    }
    assert!(!read(&man.join("ringlet.1")).contains("docs"));
}

#[test]
fn docs_fails_with_the_reason_when_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (ok, text) = ringlet(&["docs", file.to_str().unwrap()]);
    assert!(!ok, "docs into a file succeeded:\n{text}");
    assert!(text.contains("a-file"), "{text}");
}
