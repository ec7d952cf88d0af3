use clap::Parser;
use hookctl::cli::args::Command;
use hookctl::cli::{self, Cli};
use std::io::IsTerminal;

// The engine allocates and frees small buffers at a high rate on every thread (requests,
// headers, bodies, JSON, SQLite's records): in a profile of workload 6 glibc's malloc
// and free took a fifth of all the CPU (chunk consolidation and unlinking). mimalloc
// also serves SQLite's allocations ("override"); `.cargo/config.toml` says why it
// commits memory on demand.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(cli: &Cli) {
    // Long-running commands report what they do; one-shot commands only what went wrong.
    let default = match cli.command {
        // The console owns the terminal and logs to a file of its own.
        None | Some(Command::Demo) => return,
        Some(Command::Serve(_)) | Some(Command::Sink(_)) => "info",
        _ => "warn",
    };
    let filter = std::env::var("HOOKCTL_LOG").unwrap_or_else(|_| default.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
        .init();
}

/// An engine with hundreds of attempts in flight needs a descriptor each; the soft limit
/// is often 1024 while the hard limit allows far more.
fn raise_fd_limit() {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() {
    // Rust ignores SIGPIPE, which makes `hookctl event list | head` panic on a closed
    // stdout; the default action ends the process quietly, as a Unix tool should.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    raise_fd_limit();
    let cli = Cli::parse();
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hookctl: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = match rt.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookctl: {e:#}");
            2
        }
    };
    // Background tasks (the store's writer) have answered everything awaited; don't wait.
    rt.shutdown_background();
    std::process::exit(code);
}
