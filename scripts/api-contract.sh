#!/usr/bin/env bash
# The API against its own contract: schemathesis (pip, in a virtual environment under
# target/) over /openapi.json with a token holding every scope, every phase including the
# stateful one. Webhooks it creates get confirmation requests and test sends, so the run
# happens in a network namespace of its own with loopback only: nothing it makes up can
# leave the machine, not even a DNS query. Needs root (unshare) and python3-venv.
#   [SEED=1] scripts/api-contract.sh [MAX_EXAMPLES=50] [schemathesis options...]
set -euo pipefail
max=${1:-50}
seed=${SEED:-1}
cd "$(dirname "$0")/.."
if [ "${CONTRACT_IN_NETNS:-}" != 1 ]; then
  cargo build --release --quiet
  venv=target/schemathesis-venv
  if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
  fi
  [ "$(id -u)" = 0 ] || { echo "needs root, for a network namespace with loopback only" >&2; exit 2; }
  exec env CONTRACT_IN_NETNS=1 unshare --net -- "$0" "$@"
fi

ip link set lo up
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$work"' EXIT
export HOOKCTL_DB=$work/contract.db HOOKCTL_ALLOW_NETWORKS=127.0.0.0/8 XDG_CONFIG_HOME=$work
bin=target/release/hookctl
"$bin" serve --listen 127.0.0.1:0 2>"$work/serve.err" &
addr=
for _ in $(seq 1 100); do
  addr=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.err" | head -1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.err" >&2; exit 1; }
token=$("$bin" token create --scopes events:write,events:read,webhooks:read,webhooks:write,audit:read | tail -1)
target/schemathesis-venv/bin/schemathesis run "$addr/openapi.json" \
  --header "Authorization: Bearer $token" \
  --max-examples "$max" \
  --phases examples,coverage,fuzzing,stateful \
  --checks all \
  --seed "$seed" \
  "${@:2}"
