#!/usr/bin/env bash
# Shows that a real Prometheus (Debian's `prometheus`) scraping Rogatory's services gets
# the latency histograms the Grafana dashboard queries, without containers: starts a
# private redis-server, the four services from $ROGATORY_BUILD_DIR/bin (default
# <repo>/build/bin) and Prometheus with deploy/prometheus's rules, all on free loopback
# ports in a temporary folder; runs deploy/ci/smoke.py (health, one request submitted and
# read back) with --prometheus, which then asks Prometheus's HTTP API for
# grpc_server_handling_seconds_bucket and runs every dashboard query; then
# tools/pyclient/demo.py's story (the services run with the test clock) for the workflow's
# series, and deploy/ci/check-monitoring.py: every dashboard query returns series and every
# metric and label the alerts select exists. Debian's prometheus-redis-exporter exports
# the Redis series (job rogatory-redis), as the chart's metrics.redisExporter sidecar does.
# Stops everything.
#
# Usage: deploy/ci/prometheus-check.sh [--keep]
#   --keep  leave everything running until Enter is pressed (to look at Prometheus's UI)
# Exits non-zero if a check fails; prints the processes' log tails then.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo
readonly bin="${ROGATORY_BUILD_DIR:-${repo}/build}/bin"
readonly python=/usr/bin/python3
keep=0
[[ "${1:-}" == --keep ]] && keep=1

say() { printf '[prometheus-check] %s\n' "$*"; }
for s in intake routing deadlines notification; do
  [[ -x "${bin}/rogatory-${s}" ]] || { say "error: ${bin}/rogatory-${s} missing: build first"; exit 1; }
done
command -v prometheus >/dev/null || { say "error: prometheus missing (apt-get install prometheus)"; exit 1; }
command -v prometheus-redis-exporter >/dev/null ||
  { say "error: prometheus-redis-exporter missing (apt-get install prometheus-redis-exporter)"; exit 1; }

work="$(mktemp -d /tmp/rogatory-promcheck.XXXXXX)"
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
  rm -rf "${work}"
}
trap cleanup EXIT

# Eleven free loopback ports: redis, 4 gRPC, 4 metrics, prometheus, redis exporter.
read -r -a ports < <("${python}" -c '
import socket
socks = [socket.socket() for _ in range(11)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
redis_port=${ports[0]} prom_port=${ports[9]} exporter_port=${ports[10]}
grpc=("${ports[@]:1:4}") metrics=("${ports[@]:5:4}")
names=(intake routing deadlines notification)

redis-server --port "${redis_port}" --bind 127.0.0.1 --dir "${work}" --save '' \
  --appendonly no --daemonize no >"${work}/redis.log" 2>&1 &
pids+=($!)
prometheus-redis-exporter --redis.addr="redis://127.0.0.1:${redis_port}" \
  --web.listen-address="127.0.0.1:${exporter_port}" >"${work}/redis-exporter.log" 2>&1 &
pids+=($!)
receivers="intake=127.0.0.1:${grpc[0]},routing=127.0.0.1:${grpc[1]},deadlines=127.0.0.1:${grpc[2]},notification=127.0.0.1:${grpc[3]}"
for i in 0 1 2 3; do
  "${bin}/rogatory-${names[i]}" --listen="127.0.0.1:${grpc[i]}" \
    --metrics-listen="127.0.0.1:${metrics[i]}" --redis-url="redis://127.0.0.1:${redis_port}/0" \
    --event-receivers="${receivers}" --shutdown-grace=1s --test-clock=true \
    --auth-keys="${repo}/deploy/dev-auth/keys.json" \
    --service-token-key="${repo}/deploy/dev-auth/keys.json" >"${work}/${names[i]}.log" 2>&1 &
  pids+=($!)
done

mkdir -p "${work}/prometheus/rules"
cp "${repo}"/deploy/prometheus/rules/*.yaml "${work}/prometheus/rules/"
{
  printf 'global: {scrape_interval: 2s, evaluation_interval: 5s}\n'
  printf 'rule_files: ["rules/*.yaml"]\nscrape_configs:\n  - job_name: rogatory\n    static_configs:\n'
  for i in 0 1 2 3; do
    printf '      - targets: ["127.0.0.1:%s"]\n        labels: {service: %s}\n' "${metrics[i]}" "${names[i]}"
  done
  printf '  - job_name: rogatory-redis\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' "${exporter_port}"
} >"${work}/prometheus/prometheus.yml"
prometheus --config.file="${work}/prometheus/prometheus.yml" \
  --storage.tsdb.path="${work}/prometheus/data" --web.listen-address="127.0.0.1:${prom_port}" \
  >"${work}/prometheus.log" 2>&1 &
pids+=($!)
say "redis :${redis_port} (exporter :${exporter_port}), services gRPC ${grpc[*]}, metrics ${metrics[*]}, prometheus :${prom_port}"

rc=0
"${python}" "${repo}/deploy/ci/smoke.py" --intake "127.0.0.1:${grpc[0]}" \
  --routing "127.0.0.1:${grpc[1]}" --deadlines "127.0.0.1:${grpc[2]}" \
  --notification "127.0.0.1:${grpc[3]}" --prometheus "http://127.0.0.1:${prom_port}" \
  --wait 60 || rc=$?
if ((rc == 0)); then
  # The README's demo story (tools/pyclient/demo.py: a translated EIO acknowledged,
  # recognised and executed; an EAW that runs out of time on the test clock and
  # escalates): the workflow's, deadlines' and notifications' series the panels show.
  "${python}" "${repo}/tools/pyclient/demo.py" --intake "127.0.0.1:${grpc[0]}" \
    --routing "127.0.0.1:${grpc[1]}" --deadlines "127.0.0.1:${grpc[2]}" \
    --notification "127.0.0.1:${grpc[3]}" >"${work}/demo.log" 2>&1 ||
    { rc=$?; say "the demo story failed:"; tail -n 20 "${work}/demo.log"; }
fi
if ((rc == 0)); then
  # The raw histogram series, as a dashboard user sees them.
  curl -fsS "http://127.0.0.1:${prom_port}/api/v1/query" \
    --data-urlencode 'query=count by (grpc_service) (grpc_server_handling_seconds_bucket)' |
    "${python}" -c 'import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    count, service = r["value"][1], r["metric"]["grpc_service"]
    print(f"[prometheus-check] grpc_server_handling_seconds_bucket: {count:>4} series of {service}")'
  "${python}" "${repo}/deploy/ci/check-monitoring.py" --prometheus "http://127.0.0.1:${prom_port}" \
    --wait 60 || rc=$?
fi
if ((rc != 0)); then
  for f in "${work}"/*.log; do say "--- ${f##*/}"; tail -n 15 "${f}"; done
fi
if ((keep)); then
  say "Prometheus: http://127.0.0.1:${prom_port}  (press Enter to stop)"
  read -r _
fi
exit "${rc}"
