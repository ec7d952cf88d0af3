#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on 127.0.0.1 for the tests.
#   scripts/pg-cluster.sh start DIR [PORT=55432]   prints the URL (postgres://…); the
#                                                  user hookctl's password is hookctl
#   scripts/pg-cluster.sh stop DIR
# Finds the server binaries of Debian's postgresql package; as root it runs them as the
# postgres user (initdb refuses root).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?cluster directory}
port=${3:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "no PostgreSQL server installed (apt-get install postgresql)" >&2; exit 2; }
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case $cmd in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      echo hookctl >"$dir.pw"
      [ "$(id -u)" = 0 ] && chown postgres "$dir.pw"
      as_owner "$bin/initdb" -D "$dir" --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$dir.pw" -U hookctl >"$dir.initdb.log"
    fi
    as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" start >/dev/null
    as_owner "$bin/createdb" -h "$dir" -p "$port" -U hookctl hookctl 2>/dev/null || true
    echo "postgres://hookctl:hookctl@127.0.0.1:$port/hookctl"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null
    ;;
  *) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
