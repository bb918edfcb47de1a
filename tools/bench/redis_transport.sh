#!/usr/bin/env bash
# Submit latency and throughput of rogatory-intake over each Redis transport: plain TCP and
# TLS (a TLS-only redis-server with an ACL user and a test CA made here), for one or two
# builds (e.g. a hiredis-async build of an older commit as the baseline).
#
# Usage: tools/bench/redis_transport.sh NEW_BIN_DIR [BASELINE_BIN_DIR] [SECONDS] [CONCURRENCY]
# Development configuration otherwise (metadata callers, audit as log lines, no AOF).
set -euo pipefail
new="$(realpath "$1")"; base="${2:-}"; secs="${3:-10}"; conc="${4:-32}"
[[ -n "${base}" ]] && base="$(realpath "${base}")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/rogatory-redis-transport-XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "${work}"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cd "${work}"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
  -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
  -subj /CN=redis 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext \
  -out server.crt 2>/dev/null
printf 'bench-pw' > password

run() {  # run LABEL BIN_DIR TLS(0|1)
  local label="$1" bin="$2" tls="$3" rport gport mport url extra=()
  rport="$(port)"; gport="$(port)"; mport="$(port)"
  rm -rf "data-${label}"; mkdir "data-${label}"
  if ((tls)); then
    # ACL lines in a file: redis-server takes one word per --user on its command line.
    printf 'user default off\nuser bench on >bench-pw ~* &* +@all\n' > users.acl
    redis-server --port 0 --tls-port "${rport}" --bind 127.0.0.1 --dir "data-${label}" --save '' \
      --tls-cert-file "${work}/server.crt" --tls-key-file "${work}/server.key" \
      --tls-ca-cert-file "${work}/ca.crt" \
      --tls-auth-clients no --aclfile "${work}/users.acl" >"redis-${label}.log" 2>&1 &
    url="rediss://bench:@127.0.0.1:${rport}/0"
    extra=(--redis-tls-ca-file=ca.crt --redis-password-file=password)
  else
    redis-server --port "${rport}" --bind 127.0.0.1 --dir "data-${label}" --save '' >/dev/null 2>&1 &
    url="redis://127.0.0.1:${rport}/0"
  fi
  local rpid=$!; pids+=("${rpid}")
  sleep 0.5
  "${bin}/rogatory-intake" --listen="127.0.0.1:${gport}" --metrics-listen="127.0.0.1:${mport}" \
    --redis-url="${url}" "${extra[@]}" --auth=metadata --audit=log --log-level=warn \
    2>"intake-${label}.log" &
  local ipid=$!; pids+=("${ipid}")
  sleep 2
  (cd "${root}" && "${new}/rogatory-bench" --scenario=submit --mode=closed \
    --concurrency="${conc}" --duration="${secs}s" --warmup=2s --auth=metadata \
    --intake-addr="127.0.0.1:${gport}" --label="${label}") | grep -v "^{"
  tail -n 2 "intake-${label}.log"; ((tls)) && tail -n 2 "redis-${label}.log"
  kill "${ipid}" "${rpid}" 2>/dev/null || true; wait "${ipid}" "${rpid}" 2>/dev/null || true
}

[[ -n "${base}" ]] && run baseline-plain "${base}" 0
run new-plain "${new}" 0
run new-tls "${new}" 1
[[ -n "${base}" ]] && run baseline-plain-again "${base}" 0
run new-plain-again "${new}" 0
