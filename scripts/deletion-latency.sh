#!/usr/bin/env bash
# Publish latency through the API while most of a large store is deleted under a running
# engine:
#
#   scripts/deletion-latency.sh retention|purge|sub-rm [EVENTS=1000000]
#
# Builds a store of EVENTS events received over the last EVENTS × 3 ms with
# examples/console_bench.rs (kept in target/retention/) and starts `hookctl serve` on a
# copy. `retention`: the engine's retention is one minute, so nearly everything is due for
# deletion at once. `purge`: `hookctl event purge --status delivered --yes` runs beside it,
# in a process of its own. `sub-rm`: the delivered deliveries of `sub_all` are made pending
# again (a backlog of nearly EVENTS), and `hookctl sub rm sub_all --force` cancels them and
# removes the subscription from a process of its own. Meanwhile one event is published about every 50 ms with curl,
# until the deletion is done. Prints the publish latencies and statuses. Everything stays
# on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/deletion-latency.sh retention|purge|sub-rm [EVENTS]}
events=${2:-1000000}
case "$mode" in retention|purge|sub-rm) ;; *) echo "unknown mode: $mode" >&2; exit 1 ;; esac
for tool in curl sqlite3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
cargo build --release --locked -q
bin=$PWD/target/release/hookctl
out=$PWD/target/retention
mkdir -p "$out"
built=$out/store-$events.db
if [ ! -e "$built" ]; then
  cargo run --release --locked -q --example console_bench -- "$events" "$built" >/dev/null
  sqlite3 "$built" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
fi
db=$out/run.db
rm -f "$db" "$db-wal" "$db-shm"
cp "$built" "$db"
# Nothing is delivered: only retention and the publishes write.
sqlite3 "$db" "UPDATE subscriptions SET state = 'paused'"
if [ "$mode" = sub-rm ]; then
  sqlite3 "$db" "UPDATE deliveries SET status = 'pending', next_at = updated_at \
    WHERE subscription_id = 'sub_all' AND status = 'delivered'"
fi
token=$("$bin" token create --scopes events:write --db "$db" | tail -1)
log=$out/serve.log
retention=30d
[ "$mode" = retention ] && retention=1m
HOOKCTL_RETENTION=$retention HOOKCTL_LISTEN=127.0.0.1:0 "$bin" serve --db "$db" >"$log" 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
deadline=$((SECONDS + 60))
until addr=$(grep -o 'addr=127\.0\.0\.1:[0-9]*' "$log" | head -1 | cut -d= -f2) && [ -n "$addr" ]; do
  [ $SECONDS -lt $deadline ] || { cat "$log" >&2; exit 1; }
  sleep 0.05
done
lat=$out/latencies.txt
: >"$lat"
done_file=$out/purge.txt
rm -f "$done_file"
if [ "$mode" != retention ]; then
  ( t0=$SECONDS
    if [ "$mode" = purge ]; then
      "$bin" event purge --status delivered --yes --db "$db" >"$out/purge.out" 2>&1 || true
    else
      "$bin" sub rm sub_all --force --db "$db" >"$out/purge.out" 2>&1 || true
    fi
    { cat "$out/purge.out"; echo "in $((SECONDS - t0)) s"; } >"$done_file.tmp"
    mv "$done_file.tmp" "$done_file" ) &
fi
finished() {
  if [ "$mode" = retention ]; then grep -q "retention: pruned" "$log"; else [ -e "$done_file" ]; fi
}
start=$SECONDS
until finished; do
  [ $((SECONDS - start)) -lt 600 ] || { echo "the $mode did not finish in 10 minutes" >&2; exit 1; }
  curl -s -o /dev/null -m 120 -w "%{time_total} %{http_code}\n" \
    -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
    -d '{"type":"ContactCreate","data":{"id":"c1"}}' "http://$addr/v2/events" >>"$lat"
  sleep 0.05
done
if [ "$mode" = retention ]; then
  grep -o 'events=[0-9]*' "$log" | head -1 | sed 's/^/retention deleted /'
else
  tr '\n' ' ' <"$done_file"; echo
fi
awk '{print $1 * 1000, $2}' "$lat" | sort -n | awk '
  { ms[NR] = $1; status[$2]++ }
  END {
    p99 = int(NR * 0.99) + 1; if (p99 > NR) p99 = NR
    printf "publishes during it: %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms; statuses:", NR, ms[int(NR * 0.5) + 1], ms[p99], ms[NR]
    for (s in status) printf " %s×%d", s, status[s]
    print ""
  }'
echo "rerun: scripts/deletion-latency.sh $mode $events"
