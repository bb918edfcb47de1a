#!/usr/bin/env bash
# Runs Rogatory on this machine: installs what is missing, builds, starts a private
# redis-server and the four services, runs the demo client against them, prints where to
# look, then serves in the foreground until Ctrl-C (SIGINT) or SIGTERM, when it stops
# everything it started.
#
# Usage: deploy/local/run.sh [--no-wait] [--redis-port=PORT] [--tls=MODE] [--redis=MODE]
#                            [--no-build]
#   --no-wait          run the demo, then stop everything and exit with the demo's result
#                      (same as ROGATORY_DEMO_EXIT=1)
#   --redis-port=PORT  port of the private Redis (default 6390, or ROGATORY_LOCAL_REDIS_PORT)
#   --tls=MODE         off (default) | tls | mtls; a development CA and certificates are made
#                      in .local/tls (same as ROGATORY_LOCAL_TLS=MODE)
#   --redis=MODE       single (default): one redis-server; cluster: a six-node Redis Cluster
#                      (3 primaries, 3 replicas) on ports PORT..PORT+5 (cluster bus +10000),
#                      data in .local/redis-cluster/<port>/, the services given its seeds
#                      (same as ROGATORY_LOCAL_REDIS=MODE)
#   --no-build         use the binaries already in the build folder (ROGATORY_BUILD_DIR)
#                      instead of building (same as ROGATORY_LOCAL_NO_BUILD=1)
#
# Redis is bounded by maxmemory 1gb with noeviction (ROGATORY_LOCAL_REDIS_MAXMEMORY changes it).
#
# Callers authenticate with JWT bearer tokens verified against the development key set
# deploy/dev-auth/keys.json (never for production); the demo mints one per party.
#
# State lives under .local/ in the repository: redis/ (AOF data, kept between runs),
# logs/ (one log per process; the previous run's kept as *.log.1) and run/ (pid files, lock).
# Services listen on their default ports: gRPC 127.0.0.1:50051-50054, metrics 9101-9104;
# the browser gateway (rogatory-gateway) on http://127.0.0.1:8080, metrics 9105.
# Delete .local/ to start from an empty database.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo
readonly build_dir="${ROGATORY_BUILD_DIR:-${repo}/build}"
readonly local_dir="${repo}/.local"
readonly run_dir="${local_dir}/run" log_dir="${local_dir}/logs" redis_dir="${local_dir}/redis"
readonly demo="${repo}/tools/pyclient/demo.py"
readonly python=/usr/bin/python3

readonly SERVICES=(intake routing deadlines notification)
readonly GRPC_PORTS=(50051 50052 50053 50054)
readonly METRICS_PORTS=(9101 9102 9103 9104)
readonly HEALTH_NAMES=(
  rogatory.intake.v1.IntakeService
  rogatory.routing.v1.TranslationRoutingService
  rogatory.deadlines.v1.DeadlineService
  rogatory.notification.v1.NotificationService
)
# Drain time given to each service; with the metrics exporter's ~2 s stop this keeps the
# whole shutdown under 10 s.
# The browser gateway (services/gateway): browsers' Connect and gRPC-Web calls, forwarded to
# the services; /dev/token mints development tokens (development only).
readonly GATEWAY_PORT=8080 GATEWAY_METRICS_PORT=9105
readonly gateway_bundle="${repo}/services/gateway/dist/rogatory-gateway.cjs"
readonly SHUTDOWN_GRACE=3s
readonly SERVICE_STOP_TIMEOUT=5 REDIS_STOP_TIMEOUT=2 READY_TIMEOUT=30

redis_port="${ROGATORY_LOCAL_REDIS_PORT:-6390}"
tls_mode="${ROGATORY_LOCAL_TLS:-off}"
no_wait="${ROGATORY_DEMO_EXIT:-0}"
redis_mode="${ROGATORY_LOCAL_REDIS:-single}"
no_build="${ROGATORY_LOCAL_NO_BUILD:-0}"

say() { printf '[local] %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }

for arg in "$@"; do
  case "${arg}" in
    --no-wait) no_wait=1 ;;
    --redis-port=*) redis_port="${arg#*=}" ;;
    --tls=*) tls_mode="${arg#*=}" ;;
    --redis=*) redis_mode="${arg#*=}" ;;
    --no-build) no_build=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; say "error: unknown argument: ${arg}" >&2; exit 2 ;;
  esac
done
if ! [[ "${redis_port}" =~ ^[0-9]+$ ]] || ((redis_port < 1 || redis_port > 65535)); then
  die "bad Redis port: ${redis_port}"
fi
[[ "${tls_mode}" =~ ^(off|tls|mtls)$ ]] || die "bad --tls: ${tls_mode} (off|tls|mtls)"
[[ "${redis_mode}" =~ ^(single|cluster)$ ]] || die "bad --redis: ${redis_mode} (single|cluster)"
if [[ "${redis_mode}" == cluster ]] && ((redis_port + 5 + 10000 > 65535)); then
  die "bad Redis port for a cluster: ${redis_port} (its bus ports are the ports + 10000)"
fi
readonly redis_port no_wait tls_mode redis_mode no_build
readonly tls_dir="${local_dir}/tls"
readonly dev_keys="${repo}/deploy/dev-auth/keys.json"
readonly cluster_dir="${local_dir}/redis-cluster"
# The cluster's six node ports (--redis=cluster).
readonly CLUSTER_PORTS=("${redis_port}" $((redis_port + 1)) $((redis_port + 2))
  $((redis_port + 3)) $((redis_port + 4)) $((redis_port + 5)))
if [[ "${redis_mode}" == cluster ]]; then
  # Seeds: any node will do; several in case one is down. A cluster has database 0 only.
  readonly redis_url="redis://127.0.0.1:${CLUSTER_PORTS[0]},127.0.0.1:${CLUSTER_PORTS[1]},127.0.0.1:${CLUSTER_PORTS[2]}/0"
else
  readonly redis_url="redis://127.0.0.1:${redis_port}/0"
fi
# Redis asks for a password, made for each run. It is never on a command line (a process
# listing would show it): Redis reads it from a config file, the services from
# --redis-password-file, redis-cli from REDISCLI_AUTH; all three files are 0600.
readonly redis_password_file="${run_dir}/redis-password" redis_conf="${run_dir}/redis.conf"

now() { printf '%s' "${EPOCHREALTIME}"; }
elapsed_since() { awk -v a="$1" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }

# True if PID is a live process (a zombie counts as dead).
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ -n "${stat}" && "${stat%% *}" != Z ]]
}

# True if PID runs the program named NAME, judged by its argv[0] (redis-server's
# executable is a link to redis-check-rdb, and it rewrites its title to "redis-server addr").
runs() {
  local argv0
  argv0="$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | head -n1)" || return 1
  argv0="${argv0%% *}"
  [[ "${argv0##*/}" == "$2" ]]
}

# Waits up to SECONDS for every PID to end; true if they all did.
wait_dead() {
  local seconds="$1" pid
  shift
  local deadline
  deadline="$(awk -v a="${EPOCHREALTIME}" -v s="${seconds}" 'BEGIN { printf "%.3f", a + s }')"
  while true; do
    local any=0
    for pid in "$@"; do alive "${pid}" && any=1; done
    ((any)) || return 0
    awk -v a="${EPOCHREALTIME}" -v d="${deadline}" 'BEGIN { exit !(a >= d) }' && return 1
    sleep 0.1
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- what this run started, for cleanup ---
declare -A pid_of=()   # name -> pid
declare -A redis_port_of=([redis]="${redis_port}")  # redis-server's name -> its port
started=()             # names, in start order
cleaned=0

stop_all() {
  ((cleaned)) && return 0
  cleaned=1
  ((${#started[@]} > 0)) || return 0
  local t0 name pid
  t0="$(now)"
  say "stopping the services, then redis-server"
  local service_pids=()
  for name in "${started[@]}"; do
    [[ "${name}" == redis* ]] && continue
    pid="${pid_of[${name}]}"
    service_pids+=("${pid}")
    kill -TERM "${pid}" 2>/dev/null || true
  done
  if ((${#service_pids[@]} > 0)) && ! wait_dead "${SERVICE_STOP_TIMEOUT}" "${service_pids[@]}"; then
    for name in "${started[@]}"; do
      [[ "${name}" == redis* ]] && continue
      pid="${pid_of[${name}]}"
      if alive "${pid}"; then
        say "warning: ${name} did not stop within ${SERVICE_STOP_TIMEOUT}s; killing it"
        kill -KILL "${pid}" 2>/dev/null || true
      fi
    done
    wait_dead 2 "${service_pids[@]}" || true
  fi
  for name in "${started[@]}"; do
    [[ "${name}" == redis* ]] && continue
    local code=0
    wait "${pid_of[${name}]}" 2>/dev/null || code=$?
    ((code == 0)) || say "warning: ${name} exited with status ${code} (see ${log_dir}/${name}.log)"
    rm -f "${run_dir}/${name}.pid"
  done
  for name in "${started[@]}"; do
    [[ "${name}" == redis* ]] || continue
    pid="${pid_of[${name}]}"
    # SHUTDOWN flushes the AOF; SIGKILL only if Redis does not go.
    REDISCLI_AUTH="$(cat "${redis_password_file}" 2>/dev/null)" \
      timeout 2 redis-cli -p "${redis_port_of[${name}]}" shutdown >/dev/null 2>&1 || true
    if ! wait_dead "${REDIS_STOP_TIMEOUT}" "${pid}"; then
      say "warning: redis-server did not stop within ${REDIS_STOP_TIMEOUT}s; killing it"
      kill -KILL "${pid}" 2>/dev/null || true
      wait_dead 1 "${pid}" || true
    fi
    wait "${pid}" 2>/dev/null || true
    rm -f "${run_dir}/${name}.pid"
  done
  say "stopped everything in $(elapsed_since "${t0}")s"
}

on_exit() {
  local rc=$?
  trap '' INT TERM HUP # a second Ctrl-C must not cut the cleanup short
  stop_all
  exit "${rc}"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# start NAME COMMAND...: starts COMMAND in the background, in its own session so that a
# Ctrl-C reaches only this script (which then stops everything in order), output to
# .local/logs/NAME.log, pid to .local/run/NAME.pid.
start() {
  local name="$1" log="${log_dir}/$1.log"
  shift
  if [[ -f "${log}" ]]; then mv -f "${log}" "${log}.1"; fi
  # env and setsid exec in place (this shell's children are no group leaders), so $! is the
  # pid of COMMAND itself. fd 9 (the lock) is not inherited. This script's own knobs are
  # not passed on: they are no settings of the services.
  env -u ROGATORY_BUILD_DIR -u ROGATORY_DEMO_EXIT -u ROGATORY_LOCAL_REDIS_PORT \
    -u ROGATORY_SUMMARY_FILE -u ROGATORY_LOCAL_TLS -u ROGATORY_CLIENT_CA_FILE \
    -u ROGATORY_CLIENT_CERT_FILE -u ROGATORY_CLIENT_KEY_FILE -u ROGATORY_LOCAL_REDIS \
    -u ROGATORY_LOCAL_NO_BUILD \
    setsid "$@" </dev/null >"${log}" 2>&1 9>&- &
  pid_of[${name}]=$!
  started+=("${name}")
  printf '%s\n' "$!" >"${run_dir}/${name}.pid"
}

# Stops what a crashed earlier run left behind, found through its pid files.
stop_leftovers() {
  local file name pid exe
  for file in "${run_dir}"/*.pid; do
    [[ -e "${file}" ]] || continue
    name="$(basename "${file}" .pid)"
    pid="$(cat "${file}")"
    if [[ "${name}" == redis* ]]; then exe=redis-server; else exe="rogatory-${name}"; fi
    # The gateway runs as node with the bundle: recognised by its command line.
    if [[ "${pid}" =~ ^[0-9]+$ ]] && alive "${pid}" &&
        { runs "${pid}" "${exe}" || { [[ "${name}" == gateway ]] && runs "${pid}" node &&
            grep -qF rogatory-gateway.cjs "/proc/${pid}/cmdline" 2>/dev/null; }; }; then
      say "stopping ${name} (pid ${pid}) left over from an earlier run"
      kill -TERM "${pid}" 2>/dev/null || true
      if ! wait_dead 10 "${pid}"; then
        kill -KILL "${pid}" 2>/dev/null || true
        wait_dead 2 "${pid}" || die "cannot stop leftover ${name} (pid ${pid})"
      fi
    fi
    rm -f "${file}"
  done
}

fail_with_log() { # NAME MESSAGE
  local log="${log_dir}/$1.log"
  say "error: $2; last lines of ${log}:" >&2
  tail -n 20 "${log}" >&2 2>/dev/null || true
  exit 1
}

# --- 1. one run at a time; dependencies and build ---
mkdir -p "${run_dir}" "${log_dir}" "${redis_dir}"
exec 9>"${run_dir}/lock"
flock -n 9 || die "another deploy/local/run.sh is running (it holds ${run_dir}/lock)"

t="$(now)"
bash "${repo}/deploy/install-deps.sh"
say "dependencies ready ($(elapsed_since "${t}")s)"

t="$(now)"
if ((no_build)); then
  say "not building (--no-build): the binaries of ${build_dir}/bin"
else
  cmake -S "${repo}" -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "${build_dir}" -j2
fi
# The gateway's bundle (npm ci and a rebuild only when their inputs changed).
bash "${repo}/tools/web/build.sh" gateway
say "build ready in ${build_dir} ($(elapsed_since "${t}")s)"
for svc in "${SERVICES[@]}"; do
  [[ -x "${build_dir}/bin/rogatory-${svc}" ]] || die "${build_dir}/bin/rogatory-${svc} was not built"
done
[[ -f "${demo}" ]] || die "${demo} is missing"

# --- 2. clear what a crashed earlier run left; check the ports are free ---
stop_leftovers
redis_ports=("${redis_port}")
if [[ "${redis_mode}" == cluster ]]; then
  redis_ports=("${CLUSTER_PORTS[@]}")
  for port in "${CLUSTER_PORTS[@]}"; do redis_ports+=($((port + 10000))); done
fi
for port in "${redis_ports[@]}" "${GRPC_PORTS[@]}" "${METRICS_PORTS[@]}" "${GATEWAY_PORT}" \
    "${GATEWAY_METRICS_PORT}"; do
  if port_in_use "${port}"; then
    die "port ${port} is in use by another program (see: ss -ltnp 'sport = :${port}')"
  fi
done

# --- 3. Redis ---
t="$(now)"
(
  umask 077
  head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"${redis_password_file}"
  printf 'requirepass "%s"\n' "$(cat "${redis_password_file}")" >"${redis_conf}"
)
# A bound on Redis's memory, refusing writes when it is reached (noeviction): evicting keys
# would silently lose requests, events and audit entries. Services then answer UNAVAILABLE
# "the store is full" while reads, erasure, trims, acknowledgements and lease releases go on.
if [[ "${redis_mode}" == single ]]; then
  start redis redis-server "${redis_conf}" --bind 127.0.0.1 --port "${redis_port}" \
    --dir "${redis_dir}" --appendonly yes --save '' --daemonize no \
    --maxmemory "${ROGATORY_LOCAL_REDIS_MAXMEMORY:-1gb}" --maxmemory-policy noeviction
  deadline=$((SECONDS + 15))
  until [[ "$(REDISCLI_AUTH="$(cat "${redis_password_file}")" redis-cli -p "${redis_port}" ping \
    2>/dev/null)" == PONG ]]; do
    alive "${pid_of[redis]}" || fail_with_log redis "redis-server exited"
    ((SECONDS < deadline)) || fail_with_log redis "redis-server did not answer PING within 15s"
    sleep 0.1
  done
  say "redis-server ready on 127.0.0.1:${redis_port}, data in ${redis_dir} ($(elapsed_since "${t}")s)"
else
  # Six cluster nodes, each with its folder (AOF and nodes.conf, kept between runs); the
  # replicas authenticate to their primaries with the same password (masterauth).
  printf 'masterauth "%s"\n' "$(cat "${redis_password_file}")" >>"${redis_conf}"
  for port in "${CLUSTER_PORTS[@]}"; do
    mkdir -p "${cluster_dir}/${port}"
    redis_port_of[redis-${port}]="${port}"
    start "redis-${port}" redis-server "${redis_conf}" --bind 127.0.0.1 --port "${port}" \
      --dir "${cluster_dir}/${port}" --appendonly yes --save '' --daemonize no \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
      --maxmemory "${ROGATORY_LOCAL_REDIS_MAXMEMORY:-1gb}" --maxmemory-policy noeviction
  done
  cli() { REDISCLI_AUTH="$(cat "${redis_password_file}")" redis-cli "$@"; }
  deadline=$((SECONDS + 15))
  for port in "${CLUSTER_PORTS[@]}"; do
    until [[ "$(cli -p "${port}" ping 2>/dev/null)" == PONG ]]; do
      alive "${pid_of[redis-${port}]}" || fail_with_log "redis-${port}" "redis-server exited"
      ((SECONDS < deadline)) ||
        fail_with_log "redis-${port}" "redis-server did not answer PING within 15s"
      sleep 0.1
    done
  done
  # A node that knows no other has never been in a cluster: make one. Otherwise the nodes
  # rejoin the cluster of an earlier run from their nodes.conf.
  if cli -p "${CLUSTER_PORTS[0]}" cluster info | tr -d '\r' | grep -qx 'cluster_known_nodes:1'; then
    addresses=()
    for port in "${CLUSTER_PORTS[@]}"; do addresses+=("127.0.0.1:${port}"); done
    cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes \
      >"${log_dir}/redis-cluster-create.log" 2>&1 ||
      fail_with_log redis-cluster-create "redis-cli --cluster create failed"
  fi
  deadline=$((SECONDS + 30))
  until [[ "$(for port in "${CLUSTER_PORTS[@]}"; do cli -p "${port}" cluster info; done 2>/dev/null |
      tr -d '\r' | grep -cx 'cluster_state:ok')" == 6 ]]; do
    ((SECONDS < deadline)) || {
      cli -p "${CLUSTER_PORTS[0]}" cluster nodes >&2 || true
      die "the Redis Cluster did not reach cluster_state:ok on all six nodes within 30s"
    }
    sleep 0.2
  done
  say "Redis Cluster ready on 127.0.0.1:${CLUSTER_PORTS[0]}-${CLUSTER_PORTS[5]} (3 primaries, 3 replicas), data in ${cluster_dir} ($(elapsed_since "${t}")s)"
fi
# The data layout, as an upgrade does first (the chart runs it as a Job): records it for data
# an earlier run wrote before layouts were recorded, and refuses a layout this build cannot
# read; services refuse to start on another layout than theirs.
"${build_dir}/bin/rogatory-migrate" apply --redis-url="${redis_url}" \
  --redis-password-file="${redis_password_file}" --redis-shards=16 \
  >>"${log_dir}/migrate.log" 2>&1 || fail_with_log migrate "rogatory-migrate apply failed"
say "data layout: $(tail -n 1 "${log_dir}/migrate.log")"

# --- 4. the four services ---
t="$(now)"
if [[ "${tls_mode}" != off ]]; then
  "${repo}/deploy/tls/make-certs.sh" "${tls_dir}" >/dev/null # idempotent
  # Read by tools/pyclient's connect(): the demo's client certificate and CA.
  export ROGATORY_CLIENT_CA_FILE="${tls_dir}/ca.crt"
  export ROGATORY_CLIENT_CERT_FILE="${tls_dir}/client.crt"
  export ROGATORY_CLIENT_KEY_FILE="${tls_dir}/client.key"
fi
health_ports=()
for i in "${!SERVICES[@]}"; do
  svc="${SERVICES[i]}"
  tls_args=()
  health_ports+=("${GRPC_PORTS[i]}")
  if [[ "${tls_mode}" != off ]]; then
    # With TLS the probes use the plaintext health-only port (listen port + 1000).
    health_ports[i]=$((GRPC_PORTS[i] + 1000))
    tls_args=(--tls="${tls_mode}" --tls-ca-file="${tls_dir}/ca.crt"
              --tls-cert-file="${tls_dir}/${svc}.crt" --tls-key-file="${tls_dir}/${svc}.key"
              --health-listen="127.0.0.1:${health_ports[i]}")
  fi
  start "${svc}" "${build_dir}/bin/rogatory-${svc}" \
    --env=development \
    --listen="127.0.0.1:${GRPC_PORTS[i]}" \
    --metrics-listen="127.0.0.1:${METRICS_PORTS[i]}" \
    --redis-url="${redis_url}" \
    --redis-password-file="${redis_password_file}" \
    --test-clock=true \
    --auth-keys="${dev_keys}" \
    --service-token-key="${dev_keys}" \
    --shutdown-grace="${SHUTDOWN_GRACE}" \
    "${tls_args[@]}"
done

# Ready = the gRPC health check answers SERVING for the service's full name (its Redis is
# reachable and it is not draining). Polled with a deadline; fails early if a process dies.
health_args=()
for i in "${!SERVICES[@]}"; do
  health_args+=("${SERVICES[i]}" "127.0.0.1:${health_ports[i]}" "${HEALTH_NAMES[i]}" "${pid_of[${SERVICES[i]}]}")
done
ready_rc=0
"${python}" - "${READY_TIMEOUT}" "${health_args[@]}" <<'PY' || ready_rc=$?
import sys, time
import grpc

timeout = float(sys.argv[1])
args = sys.argv[2:]
targets = [tuple(args[i:i + 4]) for i in range(0, len(args), 4)]  # name, addr, service, pid


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def check(channel, service):
    # grpc.health.v1.HealthCheckRequest{service}, encoded by hand: no generated stubs needed.
    name = service.encode()
    request = b"\x0a" + bytes([len(name)]) + name
    try:
        reply = channel.unary_unary("/grpc.health.v1.Health/Check")(request, timeout=1)
    except grpc.RpcError as e:
        return e.code().name
    status = reply[1] if len(reply) >= 2 and reply[0] == 0x08 else 0
    return {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}.get(status, str(status))


deadline = time.monotonic() + timeout
# Retry connecting quickly: the default backoff (1 s, growing) would lag behind start-up.
options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
           ("grpc.max_reconnect_backoff_ms", 500)]
channels = {addr: grpc.insecure_channel(addr, options=options) for _, addr, _, _ in targets}
pending = list(targets)
last = {}
while pending:
    for t in list(pending):
        name, addr, service, pid = t
        if not alive(pid):
            print(f"[local] error: {name} exited during start-up", file=sys.stderr)
            sys.exit(3)
        last[name] = check(channels[addr], service)
        if last[name] == "SERVING":
            print(f"[local] {name} ready: {service} SERVING on {addr}")
            pending.remove(t)
    if pending and time.monotonic() > deadline:
        for name, addr, service, _ in pending:
            print(f"[local] error: {name} not ready after {timeout:.0f}s: health of {service} "
                  f"on {addr} is {last.get(name)}", file=sys.stderr)
        sys.exit(4)
    if pending:
        time.sleep(0.2)
PY
if ((ready_rc != 0)); then
  for svc in "${SERVICES[@]}"; do
    alive "${pid_of[${svc}]}" || fail_with_log "${svc}" "${svc} exited"
  done
  die "services not ready; logs in ${log_dir}"
fi
metrics_urls=()
for i in "${!SERVICES[@]}"; do
  url="http://127.0.0.1:${METRICS_PORTS[i]}/metrics"
  curl -fsS --max-time 5 -o /dev/null "${url}" || fail_with_log "${SERVICES[i]}" "${url} does not answer"
  metrics_urls+=("${url}")
done
say "all four services ready ($(elapsed_since "${t}")s)"

# --- 4b. the browser gateway, in front of them ---
t="$(now)"
gateway_tls_args=()
if [[ "${tls_mode}" != off ]]; then
  gateway_tls_args=(--tls-ca-file="${tls_dir}/ca.crt")
  if [[ "${tls_mode}" == mtls ]]; then
    gateway_tls_args+=(--tls-client-cert-file="${tls_dir}/client.crt"
                       --tls-client-key-file="${tls_dir}/client.key")
  fi
fi
upstreams="intake=127.0.0.1:${GRPC_PORTS[0]},routing=127.0.0.1:${GRPC_PORTS[1]}"
upstreams+=",deadlines=127.0.0.1:${GRPC_PORTS[2]},notification=127.0.0.1:${GRPC_PORTS[3]}"
start gateway "$(command -v node)" --enable-source-maps "${gateway_bundle}" \
  --env=development \
  --listen="127.0.0.1:${GATEWAY_PORT}" \
  --metrics-listen="127.0.0.1:${GATEWAY_METRICS_PORT}" \
  --upstreams="${upstreams}" \
  --dev-token --dev-token-key-file="${dev_keys}" \
  --shutdown-grace="${SHUTDOWN_GRACE}" \
  "${gateway_tls_args[@]}"
deadline=$((SECONDS + READY_TIMEOUT))
until curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${GATEWAY_PORT}/readyz" 2>/dev/null; do
  alive "${pid_of[gateway]}" || fail_with_log gateway "rogatory-gateway exited"
  ((SECONDS < deadline)) || fail_with_log gateway "rogatory-gateway not ready within ${READY_TIMEOUT}s"
  sleep 0.1
done
say "rogatory-gateway ready on http://127.0.0.1:${GATEWAY_PORT} ($(elapsed_since "${t}")s)"

# --- 5. the demo ---
printf '\n'
say "running the demo client: ${demo#"${repo}/"}"
demo_args=(
  --intake "127.0.0.1:${GRPC_PORTS[0]}" --routing "127.0.0.1:${GRPC_PORTS[1]}"
  --deadlines "127.0.0.1:${GRPC_PORTS[2]}" --notification "127.0.0.1:${GRPC_PORTS[3]}"
  --metrics-urls "$(IFS=,; printf '%s' "${metrics_urls[*]}")"
)
demo_rc=0
timeout --foreground 180 "${python}" "${demo}" "${demo_args[@]}" </dev/null || demo_rc=$?
((demo_rc == 0)) || die "the demo failed (exit ${demo_rc}); service logs are in ${log_dir}"

# --- 6. where to look ---
printf '\n'
say "Rogatory is running:"
printf '  %-13s %-17s %-31s %s\n' service gRPC metrics log
for i in "${!SERVICES[@]}"; do
  printf '  %-13s %-17s %-31s %s\n' "${SERVICES[i]}" "127.0.0.1:${GRPC_PORTS[i]}" \
    "${metrics_urls[i]}" "${log_dir#"${repo}/"}/${SERVICES[i]}.log"
done
printf '  %-13s %-17s %-31s %s\n' gateway "127.0.0.1:${GATEWAY_PORT}" \
  "http://127.0.0.1:${GATEWAY_METRICS_PORT}/metrics" "${log_dir#"${repo}/"}/gateway.log"
if [[ "${redis_mode}" == single ]]; then
  printf '  %-13s %-17s %-31s %s\n' redis "127.0.0.1:${redis_port}" "(data: ${redis_dir#"${repo}/"})" \
    "${log_dir#"${repo}/"}/redis.log"
else
  printf '  %-13s %-17s %-31s %s\n' redis-cluster "127.0.0.1:${CLUSTER_PORTS[0]}-${CLUSTER_PORTS[5]}" \
    "(data: ${cluster_dir#"${repo}/"})" "${log_dir#"${repo}/"}/redis-<port>.log"
fi
# shellcheck disable=SC2016  # the command is printed for the reader to run, unexpanded
printf '  %-13s password in %s (REDISCLI_AUTH="$(cat %s)" redis-cli%s -p %s)\n' "" \
  "${redis_password_file#"${repo}/"}" "${redis_password_file#"${repo}/"}" \
  "$([[ "${redis_mode}" == cluster ]] && printf ' -c')" "${redis_port}"
cat <<EOF
  Health (grpc.health.v1): "" = liveness, full service name = readiness. Reflection is on.
  Auth: JWT bearer tokens checked against deploy/dev-auth/keys.json (development only);
        rogatoryctl mints one per call from --as/--state/--roles.
  Try:  tools/rogatoryctl/rogatoryctl health
        tools/rogatoryctl/rogatoryctl --as FR-TJ-PARIS-JI --state FR --roles issuing request list
        tools/rogatoryctl/rogatoryctl --as DE-PROSECUTOR --state DE --roles executing \\
            notifications watch --from-start
        curl -s ${metrics_urls[0]} | grep grpc_server_handled_total
        ${python} ${demo#"${repo}/"} ${demo_args[*]}
  Browsers: rogatory-gateway on http://127.0.0.1:${GATEWAY_PORT} (Connect JSON, gRPC-Web); e.g.
        TOKEN=\$(curl -s -XPOST -H 'content-type: application/json' \\
            -d '{"sub":"FR-TJ-PARIS-JI","state":"FR","roles":["issuing"]}' \\
            http://127.0.0.1:${GATEWAY_PORT}/dev/token | ${python} -c 'import json,sys; print(json.load(sys.stdin)["token"])')
        curl -s -H "authorization: Bearer \$TOKEN" -H 'content-type: application/json' -d '{}' \\
            http://127.0.0.1:${GATEWAY_PORT}/rogatory.intake.v1.IntakeService/ListRequests
        The example page: tools/web/build.sh && ${python} -m http.server -d examples/web/dist 8081,
        then open http://127.0.0.1:8081/?gateway=http://127.0.0.1:${GATEWAY_PORT}
EOF
if [[ "${tls_mode}" != off ]]; then
  cat <<EOF
  TLS (${tls_mode}): CA and certificates in ${tls_dir#"${repo}/"}; health on ports 51051-51054.
        grpcurl -cacert ${tls_dir#"${repo}/"}/ca.crt -cert ${tls_dir#"${repo}/"}/client.crt \\
            -key ${tls_dir#"${repo}/"}/client.key localhost:50051 list
EOF
fi

if [[ "${no_wait}" == 1 ]]; then
  exit 0
fi

# --- 7. serve until Ctrl-C / SIGTERM ---
say "serving in the foreground; press Ctrl-C to stop everything"
all_pids=()
for name in "${started[@]}"; do all_pids+=("${pid_of[${name}]}"); done
while true; do
  # Returns when a process ends, or at once when a trapped signal arrives (the trap exits).
  wait -n "${all_pids[@]}" || true
  for name in "${started[@]}"; do
    alive "${pid_of[${name}]}" || fail_with_log "${name}" "${name} exited unexpectedly"
  done
done
