#!/usr/bin/env bash
# The test command (README, .ci/run): formatting, lints, the whole suite on SQLite, then
# the end-to-end suites again on a throw-away PostgreSQL cluster on 127.0.0.1
# (scripts/pg-cluster.sh; the server from Debian's postgresql package).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked

# The same engine, API and console tests, every database a fresh one on the cluster.
root=$(mktemp -d)
chmod 755 "$root"
port=55432
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
url=$(scripts/pg-cluster.sh start "$root/pg" "$port")
trap 'scripts/pg-cluster.sh stop "$root/pg" || true; rm -rf "$root"' EXIT
TEST_POSTGRES_URL=$url cargo test --locked \
  --test api --test engine_core --test endpoint_health --test delivery_features \
  --test subscription_rules --test incident --test export_replay --test hostile \
  --test console_actions --test console_tmux --test scale_out
