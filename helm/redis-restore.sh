#!/bin/sh
# Restores the bundled Redis's data from one of the backup CronJob's RDB files
# (/backup/dump-<UTC time>.rdb). Run it in a Pod of the Redis image with the Redis
# StatefulSet scaled to 0, its data volume (claim data-<release>-redis-0) at /data and the
# backup volume (claim <release>-redis-backup) at /backup: README.md, "Restoring from a
# backup", gives the commands.
#
#   sh redis-restore.sh /backup/dump-20270101T021700Z.rdb [DATA_DIR]
#
# The chart's Redis runs with appendonly yes, and a Redis with AOF on loads the AOF only:
# an RDB file copied into /data would be ignored and the old data come back. So the data
# folder's AOF (appendonlydir/) and RDB are removed, the backup is loaded by a Redis of
# its own with AOF off (loopback, REDIS_RESTORE_PORT, default 6390, no client can reach
# it), AOF is switched on (Redis writes a new AOF from what it loaded), and that Redis
# shuts down once the rewrite is done. The StatefulSet's Redis then starts from that AOF.
# Prints the number of keys restored; exits non-zero (and restores nothing usable) if the
# backup is missing or unreadable.
set -eu
dump="${1:?usage: redis-restore.sh /backup/dump-TIME.rdb [DATA_DIR]}"
data="${2:-/data}"
port="${REDIS_RESTORE_PORT:-6390}"
[ -s "${dump}" ] || { echo "redis-restore: ${dump}: no such backup (ls /backup)" >&2; exit 1; }
redis-check-rdb "${dump}" >/dev/null || { echo "redis-restore: ${dump} is not a valid RDB file" >&2; exit 1; }

rm -rf "${data}/appendonlydir" "${data}/appendonly.aof" "${data}/dump.rdb" "${data}"/temp-*
cp "${dump}" "${data}/dump.rdb.part"
mv "${data}/dump.rdb.part" "${data}/dump.rdb"

redis-server --bind 127.0.0.1 --port "${port}" --dir "${data}" --dbfilename dump.rdb \
  --appendonly no --save '' --daemonize no --protected-mode yes >"${data}/restore.log" 2>&1 &
pid=$!
cli() { redis-cli -h 127.0.0.1 -p "${port}" "$@"; }
i=0
until [ "$(cli ping 2>/dev/null)" = PONG ]; do
  i=$((i + 1))
  if [ "${i}" -gt 600 ] || ! kill -0 "${pid}" 2>/dev/null; then
    cat "${data}/restore.log" >&2
    echo "redis-restore: Redis did not load ${dump}" >&2
    exit 1
  fi
  sleep 0.5
done
keys="$(cli dbsize)"
cli config set appendonly yes >/dev/null
# Switching AOF on starts a rewrite of the whole dataset: wait for it to finish.
until cli info persistence | tr -d '\r' | grep -q '^aof_enabled:1$' &&
  cli info persistence | tr -d '\r' | grep -q '^aof_rewrite_in_progress:0$' &&
  cli info persistence | tr -d '\r' | grep -q '^aof_rewrite_scheduled:0$'; do
  sleep 0.2
done
cli shutdown >/dev/null 2>&1 || true
wait "${pid}" || true
[ -d "${data}/appendonlydir" ] || { echo "redis-restore: no AOF was written" >&2; exit 1; }
rm -f "${data}/dump.rdb" "${data}/restore.log"
echo "redis-restore: ${keys} keys restored from ${dump} into ${data}/appendonlydir"
