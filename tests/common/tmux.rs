//! A tmux server of the test's own, running hookctl in an 80×24 pane.

use super::{Env, bin};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    pub sock: PathBuf,
}

impl Tmux {
    pub fn new(env: &Env) -> Tmux {
        let status = Command::new("tmux").arg("-V").output();
        assert!(
            status.is_ok_and(|s| s.status.success()),
            "these tests need tmux (`.ci/run` installs it: apt-get install tmux)"
        );
        Tmux {
            sock: env.path("tmux.sock"),
        }
    }

    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("tmux")
    }

    /// Starts `hookctl ARGS` in an 80×24 pane. With `gate`, the command waits for Enter,
    /// so that output can be piped from its very first byte.
    pub fn start(&self, env: &Env, args: &str, extra_env: &[(&str, &str)], gate: bool) {
        let mut vars = vec![
            format!("HOOKCTL_DB={}", env.db.display()),
            "HOOKCTL_ALLOW_NETWORKS=127.0.0.0/8".to_string(),
            format!("XDG_CONFIG_HOME={}", env.dir.path().display()),
            format!("XDG_DATA_HOME={}", env.dir.path().display()),
            "HOOKCTL_LISTEN=127.0.0.1:0".to_string(),
            "TERM=xterm-256color".to_string(),
        ];
        for (k, v) in extra_env {
            vars.push(format!("{k}={v}"));
        }
        let cmd = format!(
            "{}env {} {} {args}",
            if gate { "read _; " } else { "" },
            vars.join(" "),
            bin()
        );
        let out = self.tmux(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "-s",
            "t",
            "sh",
            "-c",
            &cmd,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn pipe_to(&self, file: &std::path::Path) {
        let cmd = format!("cat >> {}", file.display());
        let out = self.tmux(&["pipe-pane", "-o", "-t", "t", &cmd]);
        assert!(out.status.success());
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    pub fn wait_screen(&self, what: &str, timeout: Duration) {
        let mut last = String::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            last = self.screen();
            if last.contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("'{what}' never appeared on screen:\n{last}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
