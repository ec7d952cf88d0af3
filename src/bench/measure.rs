//! What a run measures besides rates: CPU by thread and by process, RSS, percentiles,
//! and the row each workload reports.

use super::*;
use crate::store::sqlite::{CHECKPOINT_THREAD, WRITER_THREAD};

/// utime + stime of a process, from /proc (in clock ticks of 1/100 s on Linux).
pub(super) fn proc_cpu(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / hz
}

/// This process's CPU seconds by thread, from /proc/self/task, to show where a workload's
/// CPU went: workload 1 costs what the drain costs plus what storing its events costs (the
/// writer's and checkpointer's share of the backlog's load), and the progress lines show
/// it run by run.
pub(super) struct Threads {
    pub(super) total: f64,
    /// (thread id, kind, CPU seconds)
    pub(super) each: Vec<(u64, Kind, f64)>,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Writer,
    Checkpoint,
    Runtime,
    Other,
}

impl Threads {
    pub(super) fn now() -> Threads {
        let mut each = Vec::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                    continue;
                };
                let path = task.path();
                let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                let comm = comm.trim_end();
                // Linux keeps the first 15 bytes of a thread's name.
                let named = |name: &str| comm == name.get(..15).unwrap_or(name);
                let kind = if named(WRITER_THREAD) {
                    Kind::Writer
                } else if named(CHECKPOINT_THREAD) {
                    Kind::Checkpoint
                } else if comm.starts_with("tokio-") {
                    Kind::Runtime
                } else {
                    Kind::Other
                };
                each.push((tid, kind, proc_cpu(&path.join("stat").to_string_lossy())));
            }
        }
        Threads {
            total: rusage_cpu(),
            each,
        }
    }

    /// Seconds per 1,000 of `n` since `self`, in all and by kind. A thread that ended
    /// meanwhile (an idle blocking thread) is counted under "other", which is the
    /// process's total less the threads named.
    pub(super) fn per_1k_since(&self, n: u64) -> Split {
        let now = Threads::now();
        let k = n.max(1) as f64 / 1000.0;
        let spent = |kind: Kind| -> f64 {
            now.each
                .iter()
                .filter(|t| t.1 == kind)
                .map(|&(tid, _, cpu)| {
                    let before = self.each.iter().find(|t| t.0 == tid).map_or(0.0, |t| t.2);
                    cpu - before
                })
                .sum::<f64>()
                / k
        };
        let total = (now.total - self.total) / k;
        let (writer, checkpoint, runtime) = (
            spent(Kind::Writer),
            spent(Kind::Checkpoint),
            spent(Kind::Runtime),
        );
        Split {
            total,
            writer,
            checkpoint,
            runtime,
            other: (total - writer - checkpoint - runtime).max(0.0),
        }
    }
}

/// CPU seconds per 1,000, from [`Threads::per_1k_since`]; shown as a progress line's
/// suffix.
pub(super) struct Split {
    pub(super) total: f64,
    pub(super) writer: f64,
    pub(super) checkpoint: f64,
    pub(super) runtime: f64,
    pub(super) other: f64,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "writer {:.4}, checkpoint {:.4}, runtime {:.4}, other {:.4}",
            self.writer, self.checkpoint, self.runtime, self.other
        )
    }
}

/// CPU seconds spent so far: this process (the engine, or the raw client) and the
/// receiver apart, so a row shows what the engine itself costs beside a raw exchange.
#[derive(Clone, Copy)]
pub(super) struct Cpu {
    pub(super) own: f64,
    pub(super) receiver: f64,
}

impl Cpu {
    pub(super) fn now(recv: &Receiver) -> Cpu {
        Cpu {
            own: rusage_cpu(),
            receiver: recv.cpu(),
        }
    }

    /// Seconds spent since `self`, per 1,000 of `n`.
    pub(super) fn per_1k_since(self, recv: &Receiver, n: u64) -> Cpu {
        let k = n.max(1) as f64 / 1000.0;
        let now = Cpu::now(recv);
        Cpu {
            own: (now.own - self.own) / k,
            receiver: (now.receiver - self.receiver) / k,
        }
    }

    pub(super) fn total(self) -> f64 {
        self.own + self.receiver
    }
}

pub(super) fn rusage_cpu() -> f64 {
    // SAFETY: getrusage fills a local struct.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_utime.tv_sec as f64
            + u.ru_utime.tv_usec as f64 / 1e6
            + u.ru_stime.tv_sec as f64
            + u.ru_stime.tv_usec as f64 / 1e6
    }
}

pub(super) fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .map(|v| v.trim().trim_end_matches(" kB").parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

pub(super) fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// One row of the table.
pub(super) struct Row {
    pub(super) name: String,
    pub(super) events_per_s: f64,
    pub(super) deliveries_per_s: f64,
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) p999: f64,
    /// This process and the receiver, per 1,000 deliveries.
    pub(super) cpu_per_1k: Cpu,
    pub(super) peak_rss_mb: f64,
    pub(super) db_bytes_per_event: f64,
}
