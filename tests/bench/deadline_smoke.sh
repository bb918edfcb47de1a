#!/usr/bin/env bash
# Smoke run of rogatory-deadline-bench (issue 11): a private redis-server on a free port, the
# bench with --smoke (a few thousand deadlines, a few seconds), then checks of its JSON: every
# timer of the burst and steady scenarios fired (and emitted its event), none is left
# claimed, and the memory per pending deadline was measured. Fails on any miss.
#
# Usage: deadline_smoke.sh <path to rogatory-deadline-bench> [redis-server]
set -euo pipefail

bench=${1:?usage: deadline_smoke.sh <rogatory-deadline-bench> [redis-server]}
redis_server=${2:-/usr/bin/redis-server}
python=/usr/bin/python3
[[ -x $bench ]] || { echo "FAIL: no bench binary at $bench" >&2; exit 1; }
[[ -x $redis_server ]] || { echo "FAIL: no redis-server at $redis_server" >&2; exit 1; }

work=$(mktemp -d /tmp/deadline-smoke.XXXXXX)
redis_pid=
cleanup() {
  if [[ -n $redis_pid ]]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$redis_server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 100); do
  if "$python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  sleep 0.05
done

"$bench" --redis-url="redis://127.0.0.1:$port" --smoke --json="$work/out.json" > "$work/out.txt" 2>&1 || {
  echo "FAIL: the bench exited with $?" >&2; cat "$work/out.txt" >&2; exit 1; }

"$python" - "$work/out.json" <<'PY'
import json, sys
scenarios = {s["scenario"]: s["figures"] for s in json.load(open(sys.argv[1]))}
problems = []
load = scenarios.get("deadline_load")
if not load:
    problems.append("no deadline_load scenario")
elif not load["bytes_per_deadline"] > 0 or not load["loaded_per_s"] > 0:
    problems.append(f"deadline_load: bytes_per_deadline={load['bytes_per_deadline']} loaded_per_s={load['loaded_per_s']}")
for name in ("deadline_burst", "deadline_steady"):
    f = scenarios.get(name)
    if not f:
        problems.append(f"no {name} scenario")
        continue
    if not f["expected"] > 0 or f["fired"] != f["expected"]:
        problems.append(f"{name}: fired {f['fired']} of {f['expected']}")
    if f["events_emitted"] != f["fired"]:
        problems.append(f"{name}: {f['events_emitted']} events for {f['fired']} fired timers")
    if f["claims_left"] != 0:
        problems.append(f"{name}: {f['claims_left']} claims left")
if problems:
    print("FAIL: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("deadline bench smoke: ok", {k: (v.get("fired_per_s") or v.get("bytes_per_deadline")) for k, v in scenarios.items()})
PY
