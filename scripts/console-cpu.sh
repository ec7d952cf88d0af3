#!/usr/bin/env bash
# The CPU an attached console takes beside a running engine on a large store, under
# traffic (the data changes every poll, so the console keeps reading):
#
#   scripts/console-cpu.sh [EVENTS=1000000] [SECS=30]
#
# Builds a store of EVENTS events with examples/console_bench.rs (kept in target/console-cpu/),
# points its subscriptions at a local `hookctl sink`, runs `hookctl serve` on it, publishes
# ~5 events/s with `hookctl emit`, opens the console in tmux (attach mode), and prints the
# CPU seconds the console's process used over SECS. Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
secs=${2:-30}
for tool in tmux sqlite3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
cargo build --release --locked -q
bin=$PWD/target/release/hookctl
out=target/console-cpu
mkdir -p "$out"
db=$PWD/$out/store-$events.db
if [ ! -e "$db" ]; then
  cargo run --release --locked -q --example console_bench -- "$events" "$db" >/dev/null
fi
port=${SINK_PORT:-18800}
sqlite3 "$db" "UPDATE subscriptions SET url = 'http://127.0.0.1:$port/hook'"
pids=()
session=hookctl-console-cpu
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  kill "${pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
"$bin" sink --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pids+=($!)
HOOKCTL_ALLOW_NETWORKS=127.0.0.0/8 HOOKCTL_LISTEN=127.0.0.1:0 \
  "$bin" serve --db "$db" >"$out/serve.log" 2>&1 &
pids+=($!)
# Traffic: one event about every 200 ms, so the store changes at every console poll.
( while true; do "$bin" emit ContactCreate --db "$db" >/dev/null 2>&1 || true; sleep 0.2; done ) &
pids+=($!)
tmux new-session -d -s "$session" -x 120 -y 36 "$bin --db $db"
# The console's process, once it is up and has drawn its first frame.
deadline=$((SECONDS + 60))
until tmux capture-pane -p -t "$session" | grep -q "attached to pid"; do
  [ $SECONDS -lt $deadline ] || { echo "the console did not attach" >&2; exit 1; }
  sleep 0.2
done
console=$(pgrep -f -x "$bin --db $db" | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$console/stat"; }
a=$(ticks)
sleep "$secs"
b=$(ticks)
hz=$(getconf CLK_TCK)
awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$secs" \
  'BEGIN { printf "console: %.2f CPU s over %d s (%.0f %% of a core)\n", (b - a) / hz, s, 100 * (b - a) / hz / s }'
echo "rerun: scripts/console-cpu.sh $events $secs"
