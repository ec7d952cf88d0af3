#!/usr/bin/env bash
# Profiles the engine's process during one benchmark workload, from the moment the
# workload starts (after the baselines) until it ends or SECS have passed.
#
#   scripts/profile-workload.sh W [flat|calls|syscalls] [SECS]
#
#   flat      where CPU time goes, by thread and by function (perf record, no stacks)
#   calls     the same with call stacks (DWARF; large files, keep SECS short)
#   syscalls  system calls by kind, and which threads make SQLite's I/O calls
#
# Needs perf (Debian: linux-perf) and a kernel that lets this user record the process
# (perf_event_paranoid ≤ 2 for your own processes). Output goes to target/profile/.
set -euo pipefail
cd "$(dirname "$0")/.."

w=${1:?usage: scripts/profile-workload.sh W [flat|calls|syscalls] [SECS]}
mode=${2:-flat}
secs=${3:-30}
command -v perf >/dev/null || { echo "perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 1; }
case "$mode" in flat|calls|syscalls) ;; *) echo "unknown mode: $mode" >&2; exit 1 ;; esac

cargo build --release --locked -q
bin=target/release/hookctl
out=target/profile
mkdir -p "$out"
log="$out/bench-$w.txt"

"$bin" bench --only "$w" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
# The line printed after the last raw round that precedes the workload.
until grep -q "raw HTTP before workload $w" "$log"; do
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done

data="$out/w$w-$mode.data"
case "$mode" in
  flat) args=(record -q -F 999 -o "$data") ;;
  calls) args=(record -q -F 499 --call-graph dwarf,16384 -o "$data") ;;
  syscalls)
    args=(stat -o "$out/w$w-syscalls.txt" -e raw_syscalls:sys_enter -e context-switches
      -e syscalls:sys_enter_pwrite64 -e syscalls:sys_enter_pread64
      -e syscalls:sys_enter_fcntl -e syscalls:sys_enter_futex
      -e syscalls:sys_enter_writev -e syscalls:sys_enter_recvfrom
      -e syscalls:sys_enter_epoll_wait)
    ;;
esac
perf "${args[@]}" -p "$pid" -- sleep "$secs" &
prof=$!
wait "$pid" || true
trap - EXIT
# The workload may end before SECS: stop the profiler with it.
kill -INT "$prof" 2>/dev/null || true
wait "$prof" || true

grep -E "^$w " "$log" || { cat "$log" >&2; exit 1; }
case "$mode" in
  flat)
    # awk, not head: head would close the pipe early, and pipefail would fail the script.
    perf report -i "$data" --sort comm --stdio -n 2>/dev/null | grep -vE '^#|^$'
    perf report -i "$data" --sort comm,sym --stdio -n 2>/dev/null | grep -vE '^#|^$' | awk 'NR <= 40'
    ;;
  calls) echo "call stacks in $data: perf report -i $data --children" ;;
  syscalls) grep -E 'syscalls|context-switches|elapsed' "$out/w$w-syscalls.txt" ;;
esac
