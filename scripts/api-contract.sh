#!/usr/bin/env bash
# The API against its own contract: serve on a temporary database with loopback
# receivers allowed, a token with every scope, and schemathesis (pip, in a virtual
# environment under target/) over /openapi.json with every phase, stateful included.
#   scripts/api-contract.sh [MAX_EXAMPLES=50]
set -euo pipefail
max=${1:-50}
cd "$(dirname "$0")/.."
cargo build --release --quiet
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$work"' EXIT
export HOOKCTL_DB=$work/contract.db HOOKCTL_ALLOW_NETWORKS=127.0.0.0/8 XDG_CONFIG_HOME=$work
bin=target/release/hookctl
"$bin" serve --listen 127.0.0.1:0 2>"$work/serve.err" &
for _ in $(seq 1 100); do
  addr=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.err" | head -1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.err" >&2; exit 1; }
token=$("$bin" token create --scopes events:write,events:read,webhooks:read,webhooks:write | tail -1)
"$venv/bin/schemathesis" run "$addr/openapi.json" \
  --header "Authorization: Bearer $token" \
  --max-examples "$max" \
  --phases examples,coverage,fuzzing,stateful \
  --checks all \
  --seed 1 \
  --report junit --report-dir "$work/report" "${@:2}"
