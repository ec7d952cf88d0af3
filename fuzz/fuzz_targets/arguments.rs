#![no_main]
//! Argument parsing: durations, retry schedules, rates, networks, event type names and
//! header lines give a value or a clear error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = hookctl::cli::args::parse_duration(s);
    let _ = hookctl::cli::parse_schedule(s);
    let _ = hookctl::cli::parse_rate(s);
    let _ = hookctl::config::parse_networks(s);
    let _ = hookctl::config::parse_network(s);
    let _ = hookctl::catalog::resolve(s);
    let _ = hookctl::catalog::close_names(s);
    if let Ok(url) = hookctl::netguard::Policy::default().check_url(&match reqwest_url(s) { Some(u) => u, None => return }) {
        let _ = url;
    }
});

fn reqwest_url(s: &str) -> Option<url::Url> {
    url::Url::parse(s).ok()
}
