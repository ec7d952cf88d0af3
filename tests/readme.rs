//! The README's walk-through, run as written: its shell blocks in one bash, with the
//! built binary on PATH in place of `cargo install`, on loopback only.

use std::process::Command;

/// The ```sh blocks of one README section, in order.
fn blocks(readme: &str, section: &str) -> String {
    let start = readme
        .find(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("README has no section '{section}'"));
    let body = &readme[start + section.len() + 5..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    let mut out = String::new();
    let mut rest = body;
    while let Some(open) = rest.find("```sh\n") {
        let after = &rest[open + 6..];
        let close = after.find("```").expect("an unclosed code block");
        out.push_str(&after[..close]);
        rest = &after[close + 3..];
    }
    out
}

#[test]
fn the_walk_through_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let script = blocks(&readme, "Try it by hand");
    assert!(script.contains("hookctl serve"), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_hookctl"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{script}"
        ))
        .env("PATH", path)
        .env("TMPDIR", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("HOOKCTL_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "ContactCreate → 1 deliveries",
        "\"duplicate\":false",
        "engine    running",
        "healthy",
    ] {
        assert!(
            stdout.contains(want),
            "'{want}' missing from:\n{stdout}\n{stderr}"
        );
    }
}

/// The completions and the manual page the README tells users to install.
#[test]
fn completions_source_and_the_manual_renders() {
    let bin = env!("CARGO_BIN_EXE_hookctl");
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("redeliver"),
            "{shell}"
        );
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source <('{bin}' completions bash); complete -p hookctl"
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("hookctl.1");
    let out = Command::new(bin).arg("man").output().unwrap();
    assert!(out.status.success());
    std::fs::write(&page, &out.stdout).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man (man-db) is installed by .ci/run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "NAME",
        "hookctl - Webhook delivery engine",
        "HOOKCTL REDELIVER",
        "--dry-run",
    ] {
        assert!(
            text.contains(want),
            "'{want}' missing from the page:\n{text}"
        );
    }

    let out = Command::new(bin).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.contains("(database schema: SQLite "), "{version}");
}
