//! The command line. Parsing only: each command lives in its own module.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The version `--version` prints, with the database schemas this build knows (unit tests
/// keep the numbers equal to each backend's last migration).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (database schema: SQLite 10, PostgreSQL 1)"
);

#[derive(Debug, Parser)]
#[command(
    name = "hookctl",
    version = VERSION,
    about = "Webhook delivery engine and its terminal console",
    propagate_version = true
)]
pub struct Cli {
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The database: a SQLite file (default: under the XDG data dir) or a PostgreSQL URL
    /// (postgres://user:password@host/db), which several `serve` workers can share.
    // The value may hold a password: help never shows it.
    #[arg(
        long,
        global = true,
        env = "HOOKCTL_DB",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub db: Option<PathBuf>,
    /// Config file (TOML; default: under the XDG config dir). Every key also as HOOKCTL_<KEY>.
    #[arg(long, global = true, env = "HOOKCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Without a command: the console, with the engine embedded (or attached to the
    /// engine already running on the database).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The console on a fresh temporary database with local receivers and live traffic.
    Demo,
    /// Headless engine and HTTP API, for systemd; logs to stderr; SIGTERM drains.
    Serve(ServeArgs),
    /// Manage subscriptions.
    #[command(subcommand)]
    Sub(SubCommand),
    /// Publish an event (acknowledged once it and its deliveries are committed).
    Emit(EmitArgs),
    /// Inspect events and their deliveries.
    #[command(subcommand)]
    Event(EventCommand),
    /// Send events again: one event, or in bulk by subscription and state.
    Redeliver(RedeliverArgs),
    /// Local receiver: verifies signatures, prints each request, can misbehave on purpose.
    Sink(SinkArgs),
    /// Check a signature: exit 0 valid, 1 invalid.
    Verify(VerifyArgs),
    /// The event types, with a sample payload each.
    Catalog(CatalogArgs),
    /// One-screen health summary: exit 0 healthy, 1 degraded, 2 error.
    Status,
    /// Operator actions, newest first: who paused, redelivered, changed or purged what.
    Audit(AuditArgs),
    /// Endpoints in trouble: since when, how, what waits and died, where, what was done.
    /// Exit 0 none, 1 some, 2 error.
    Incident(IncidentArgs),
    /// Custom values for templates ({{custom_values.NAME}}).
    #[command(subcommand)]
    Values(ValuesCommand),
    /// API tokens ("private integrations").
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inbound webhooks: URLs whose JSON posts become events.
    #[command(subcommand)]
    Inbound(InboundCommand),
    /// The benchmark: the engine against raw HTTP and store-only rates, in one run.
    #[cfg(feature = "bench")]
    Bench {
        /// A short run (under a minute) that checks the benchmark works.
        #[arg(long)]
        quick: bool,
        /// Run only these workloads (1-6), e.g. --only 1,4; the baselines always run.
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(1..=6))]
        only: Vec<u8>,
        /// Run the receiver inside this process instead of a child process.
        #[arg(long)]
        sink_in_process: bool,
        /// Engines per workload, with a PostgreSQL --db (each on a scratch database there).
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Shell completions, to be sourced (bash) or installed (zsh, fish).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// The manual page, in roff: hookctl man > hookctl.1 && man -l hookctl.1
    Man,
    /// The benchmark's counting receiver, run by `bench` as a child process.
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    BenchSink {
        /// Answer requests to /slow… after this many milliseconds.
        #[arg(long)]
        slow_ms: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, alone on the last line.
    Create {
        /// events:write, events:read, webhooks:read, webhooks:write, audit:read
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Bind the token to one location: it sees and changes only that location's data.
        #[arg(long, value_name = "ID")]
        location: Option<String>,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum InboundCommand {
    /// Create an inbound URL for one event type; printed once.
    Add {
        #[arg(long = "type", value_name = "TYPE")]
        event_type: String,
        #[arg(long, value_name = "ID")]
        location: Option<String>,
        /// Event field from the incoming JSON, e.g. email=/contact/email (repeatable).
        #[arg(long = "map", value_name = "FIELD=JSON_POINTER")]
        map: Vec<String>,
        /// Require x-hookctl-signature: hex HMAC-SHA256 of the body with this secret.
        #[arg(long)]
        secret: Option<String>,
    },
    List,
    Rm {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ValuesCommand {
    /// Set a value, globally or for one location (which then overrides the global one).
    Set {
        name: String,
        value: String,
        #[arg(long, value_name = "ID")]
        location: Option<String>,
    },
    /// List values (credential-like names are masked).
    List,
    /// Remove a value.
    Rm {
        name: String,
        #[arg(long, value_name = "ID")]
        location: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// API address; port 0 picks a free port (printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Longest wait for attempts in flight on SIGTERM.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum SubCommand {
    /// Add a subscription; prints its secret alone on the last line.
    Add(Box<SubAddArgs>),
    /// List subscriptions.
    List,
    /// One subscription with its delivery counts.
    Show { id: String },
    /// Hold new deliveries for an endpoint (nothing is dropped).
    Pause { id: String },
    /// Release held deliveries (also re-enables a disabled endpoint and closes its circuit).
    Resume { id: String },
    /// Remove a subscription; refused while deliveries are unfinished unless --force.
    Rm {
        id: String,
        /// Cancel its unfinished deliveries (recorded as cancelled).
        #[arg(long)]
        force: bool,
    },
    /// Render (and, without --dry-run, send once) a sample event: the exact request and
    /// the response.
    Test {
        id: String,
        /// Event type of the sample (default: the first the subscription takes).
        #[arg(long = "type", value_name = "T")]
        event_type: Option<String>,
        /// Print the request, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// New signing secret; the old one keeps signing the main header during the grace period.
    RotateSecret {
        id: String,
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
        grace: std::time::Duration,
        /// The new secret (generated when not given); printed once.
        #[arg(long)]
        secret: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    #[value(name = "POST")]
    Post,
    #[value(name = "PUT")]
    Put,
    #[value(name = "GET")]
    Get,
    #[value(name = "DELETE")]
    Delete,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Json,
    Form,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PayloadArg {
    Flat,
    Envelope,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemeArg {
    Wl,
    Standard,
}

#[derive(Debug, Args)]
pub struct SubAddArgs {
    #[arg(long)]
    pub url: String,
    /// Event types (canonical names or the guide's aliases), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "all",
        required_unless_present = "all"
    )]
    pub events: Vec<String>,
    /// Every event type.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// Signing secret (generated and shown once when not given).
    #[arg(long)]
    pub secret: Option<String>,
    /// Extra header 'Name: value' (repeatable).
    #[arg(long = "header", value_name = "'K: V'")]
    pub headers: Vec<String>,
    #[arg(long, value_enum, default_value = "POST", ignore_case = true)]
    pub method: MethodArg,
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
    #[arg(long, value_enum, default_value = "flat")]
    pub payload: PayloadArg,
    /// Only events of this location.
    #[arg(long, value_name = "ID")]
    pub location: Option<String>,
    /// Delays between attempts, e.g. 5s,5m,30m (first attempt at once, one retry per delay).
    #[arg(long, value_name = "LIST")]
    pub retry_schedule: Option<String>,
    /// Per-attempt timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Body template with merge tags ({{contact.email}}, {{custom_values.NAME}}, …), from a file.
    #[arg(long, value_name = "FILE", conflicts_with = "template_text")]
    pub template: Option<std::path::PathBuf>,
    /// The same, given inline.
    #[arg(long, value_name = "TEXT")]
    pub template_text: Option<String>,
    /// Most requests per second (or per minute: 120/m) to this endpoint.
    #[arg(long, value_name = "N/s")]
    pub rate: Option<String>,
    /// Start pending: active once the endpoint echoes a confirmation token.
    #[arg(long)]
    pub verify: bool,
    #[arg(long, value_enum, default_value = "wl")]
    pub signature_scheme: SchemeArg,
    #[arg(long, value_name = "NAME", default_value = "x-wl-signature")]
    pub signature_header: String,
}

#[derive(Debug, Args)]
pub struct EmitArgs {
    /// Event type (canonical name or alias). Not needed with --ndjson.
    #[arg(required_unless_present = "ndjson")]
    pub event_type: Option<String>,
    #[arg(long, value_name = "ID")]
    pub location: Option<String>,
    /// Event data: JSON text or @FILE (default: the catalog's sample).
    #[arg(long, value_name = "JSON|@FILE")]
    pub data: Option<String>,
    /// Event id (producer idempotency: the same id is accepted once).
    #[arg(long, value_name = "EVENT_ID")]
    pub id: Option<String>,
    /// Publish many events: one JSON object per line ({type, locationId?, id?, timestamp?,
    /// data?}) from FILE or - for stdin, streamed and committed in batches. A bad line stops
    /// the stream: the lines before it are published and the error names the line to
    /// resume from; nothing from the bad line on is stored.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["event_type", "data", "id", "location"])]
    pub ndjson: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Events, newest first, each with the status of its deliveries.
    List(EventListArgs),
    /// One event, its deliveries and every attempt.
    Show { id: String },
    /// Delete finished deliveries (and events left with none), after a count and confirmation.
    Purge(PurgeArgs),
    /// One JSON line per delivery — its event, subscription and every attempt, secrets
    /// masked — streamed to stdout: evidence for a post-mortem, input for `redeliver --from`.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    #[arg(long, value_name = "ID")]
    pub sub: Option<String>,
    /// Only deliveries that last changed within this long, e.g. 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Only deliveries that last changed longer ago than this.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub until: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PurgeStatusArg {
    Dead,
    Delivered,
    Cancelled,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    #[arg(long, value_enum)]
    pub status: PurgeStatusArg,
    #[arg(long, value_name = "ID")]
    pub sub: Option<String>,
    /// Only deliveries that reached their state longer ago than this, e.g. 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub before: Option<std::time::Duration>,
    /// Do not ask (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Count only.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Pending,
    Retrying,
    Delivered,
    Dead,
    Cancelled,
}

impl StatusArg {
    pub fn model(self) -> crate::model::DeliveryStatus {
        use crate::model::DeliveryStatus as D;
        match self {
            StatusArg::Pending => D::Pending,
            StatusArg::Retrying => D::Retrying,
            StatusArg::Delivered => D::Delivered,
            StatusArg::Dead => D::Dead,
            StatusArg::Cancelled => D::Cancelled,
        }
    }
}

#[derive(Debug, Args)]
pub struct EventListArgs {
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    #[arg(long, value_name = "ID")]
    pub sub: Option<String>,
    #[arg(long = "type", value_name = "T")]
    pub event_type: Option<String>,
    #[arg(long, value_name = "L")]
    pub location: Option<String>,
    /// Only events received within this long, e.g. 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only actions within this long, e.g. 2h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Only actions on this subscription (id or unique prefix).
    #[arg(long, value_name = "ID")]
    pub sub: Option<String>,
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct IncidentArgs {
    /// The window looked at, e.g. 30m or 2h.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub since: std::time::Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedeliverStatusArg {
    Dead,
    Retrying,
}

#[derive(Debug, Args)]
pub struct RedeliverArgs {
    /// The event to send again (omit for bulk by --sub, or with --from).
    #[arg(required_unless_present_any = ["sub", "from"])]
    pub event_id: Option<String>,
    #[arg(long, value_name = "ID", conflicts_with = "from")]
    pub sub: Option<String>,
    /// Exactly the (event, subscription) pairs of a JSON-lines file, e.g. from
    /// `event export` (- for stdin); pairs delivered since are skipped. Every line is
    /// checked first: one bad line and nothing is sent.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["event_id", "status", "since"])]
    pub from: Option<String>,
    /// Bulk: which deliveries (default dead).
    #[arg(long, value_enum, conflicts_with = "event_id")]
    pub status: Option<RedeliverStatusArg>,
    /// Bulk: only deliveries that changed within this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "event_id")]
    pub since: Option<std::time::Duration>,
    /// Count what would be sent, send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    #[arg(long, default_value = "127.0.0.1:8800", value_name = "ADDR")]
    pub listen: String,
    /// Verify signatures with this secret.
    #[arg(long)]
    pub secret: Option<String>,
    /// Answer this fraction of requests with 500.
    #[arg(long, value_name = "0..1", default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Wait this long before answering.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub delay: Option<std::time::Duration>,
    /// Always answer with this status.
    #[arg(long, value_name = "CODE")]
    pub status: Option<u16>,
    /// Send `Retry-After: SECONDS` with every non-2xx answer.
    #[arg(long, value_name = "SECONDS")]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub secret: String,
    /// The signature header's value (hex, or Standard Webhooks 'v1,…' entries).
    #[arg(long)]
    pub signature: String,
    /// The raw body: a file, or - for stdin (default stdin).
    #[arg(long, value_name = "FILE|-", default_value = "-")]
    pub body: String,
    /// Standard Webhooks: the webhook-id header.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// Standard Webhooks: the webhook-timestamp header.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub timestamp: Option<i64>,
    /// Standard Webhooks: accepted clock difference.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub tolerance: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Show one type's sample payload.
    pub event_type: Option<String>,
}

pub use crate::subscription::parse_duration;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}
