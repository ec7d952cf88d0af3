#!/usr/bin/env bash
# Soak: a steady stream for MINUTES (default 30) at RATE events/s (default 20) to a healthy,
# a flaky (30 % failures) and a dead endpoint, with retention short enough to prune during
# the run. Prints, every minute, the engine's RSS, open file descriptors, queue depth and
# database size; none may grow without bound. All traffic stays on 127.0.0.1.
#   scripts/soak.sh [MINUTES] [RATE]
set -euo pipefail
minutes=${1:-30}
rate=${2:-20}
cd "$(dirname "$0")/.."
cargo build --release --quiet
work=$(mktemp -d)
# A copy, so rebuilding during a 30-minute run does not swap the binary under it.
mkdir "$work/bin" && cp target/release/hookctl "$work/bin/"
bin=$work/bin/hookctl
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
export HOOKCTL_DB=$work/soak.db HOOKCTL_ALLOW_NETWORKS=127.0.0.0/8 XDG_CONFIG_HOME=$work
export HOOKCTL_RETENTION=5m HOOKCTL_CIRCUIT_THRESHOLD=1000
port() { grep -o '127.0.0.1:[0-9]*' "$1" | head -1; }
"$bin" sink --listen 127.0.0.1:0 >/dev/null 2>"$work/ok.err" &
"$bin" sink --listen 127.0.0.1:0 --fail-rate 0.3 >/dev/null 2>"$work/flaky.err" &
for f in ok flaky; do
  until grep -q listening "$work/$f.err"; do
    grep -q . "$work/$f.err" && ! grep -q listening "$work/$f.err" && { cat "$work/$f.err" >&2; exit 1; }
    sleep 0.1
  done
done
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
serve=$!
until grep -q "API listening" "$work/serve.log"; do sleep 0.1; done
"$bin" sub add --url "http://$(port "$work/ok.err")/ok" --all >/dev/null
"$bin" sub add --url "http://$(port "$work/flaky.err")/flaky" --all --retry-schedule 2s,5s,10s >/dev/null
"$bin" sub add --url "http://127.0.0.1:$dead/dead" --events ContactCreate,InvoicePaid --retry-schedule 2s,5s >/dev/null
( i=0; while true; do
    for _ in $(seq "$rate"); do i=$((i+1)); t=$([ $((i % 3)) = 0 ] && echo InvoicePaid || echo TaskCreate); echo "{\"type\":\"$t\",\"id\":\"soak-$i\"}"; done > "$work/batch.ndjson"
    "$bin" emit --ndjson "$work/batch.ndjson" >/dev/null
    sleep 1
  done ) &
printf '%-6s %10s %6s %8s %8s %8s %12s\n' minute rss_kb fds pending retrying dead db_bytes
for m in $(seq 0 "$minutes"); do
  [ "$m" -gt 0 ] && sleep 60
  rss=$(awk '/VmRSS/{print $2}' "/proc/$serve/status")
  fds=$(ls "/proc/$serve/fd" | wc -l)
  q=$("$bin" --json status || true)
  read -r pending retrying dead <<<"$(python3 -c 'import json,sys; q=json.loads(sys.argv[1])["queue"]; print(q["pending"], q["retrying"], q["dead"])' "$q")"
  db=$(du -cb "$HOOKCTL_DB"* | tail -1 | cut -f1)
  printf '%-6s %10s %6s %8s %8s %8s %12s\n' "$m" "$rss" "$fds" "$pending" "$retrying" "$dead" "$db"
done
echo "rerun: scripts/soak.sh $minutes $rate"
