#!/usr/bin/env bash
# Runs the chart's `helm test` script for real: the command of the test Pod that
# `helm template` renders (helm/rogatory/templates/tests/test-pod.yaml, with its
# submit/read on) runs in the rogatoryctl image against the four services started as local
# processes on a Redis of their own (development auth, a development token of the sample's
# issuing authority). No cluster: the Pod's addresses, request file and token file are
# given to the container as the Pod would see them.
#
# Usage: deploy/ci/helm-test-check.sh HELM ROGATORYCTL_IMAGE
# Environment: ROGATORY_BUILD_DIR (its bin/ holds the four binaries).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo
readonly bin="${ROGATORY_BUILD_DIR:-${repo}/build}/bin"
readonly python=/usr/bin/python3
helm="$1" image="$2"
say() { printf '[helm-test-check] %s\n' "$*"; }

work="$(mktemp -d /tmp/rogatory-helmtest.XXXXXX)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
  rm -rf "${work}"
}
trap cleanup EXIT

# The test Pod's script and request, as rendered.
"${helm}" template rogatory "${repo}/helm/rogatory" --namespace rogatory \
  -f "${repo}/helm/rogatory/ci/production-mesh-values.yaml" \
  --set tests.submitRead.enabled=true --set tests.submitRead.tokenSecret=t \
  --show-only templates/tests/test-pod.yaml >"${work}/test.yaml" 2>/dev/null
"${python}" - "${work}" <<'PY'
import pathlib, sys, yaml
work = pathlib.Path(sys.argv[1])
docs = [d for d in yaml.safe_load_all((work / "test.yaml").read_text()) if d]
pod = next(d for d in docs if d["kind"] == "Pod")
config = next(d for d in docs if d["kind"] == "ConfigMap")
command = pod["spec"]["containers"][0]["command"]
assert command[:2] == ["/bin/sh", "-ec"], command
(work / "script.sh").write_text(command[2])
(work / "request").mkdir()
(work / "request" / "request.json").write_text(config["data"]["request.json"])
PY

read -r -a ports < <("${python}" -c '
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
redis_port=${ports[0]}
grpc=("${ports[@]:1:4}") metrics=("${ports[@]:5:4}")
names=(intake routing deadlines notification)
redis-server --port "${redis_port}" --bind 127.0.0.1 --dir "${work}" --save '' \
  --appendonly no --daemonize no >"${work}/redis.log" 2>&1 &
pids+=($!)
receivers="intake=127.0.0.1:${grpc[0]},routing=127.0.0.1:${grpc[1]},deadlines=127.0.0.1:${grpc[2]},notification=127.0.0.1:${grpc[3]}"
for i in 0 1 2 3; do
  "${bin}/rogatory-${names[i]}" --listen="127.0.0.1:${grpc[i]}" \
    --metrics-listen="127.0.0.1:${metrics[i]}" --redis-url="redis://127.0.0.1:${redis_port}/0" \
    --event-receivers="${receivers}" --shutdown-grace=1s \
    --auth-keys="${repo}/deploy/dev-auth/keys.json" \
    --service-token-key="${repo}/deploy/dev-auth/keys.json" >"${work}/${names[i]}.log" 2>&1 &
  pids+=($!)
done
mkdir -p "${work}/token"
"${python}" "${repo}/tools/rogatoryctl/rogatoryctl" token mint --sub FR-TJ-PARIS-JI --state FR \
  --roles issuing --ttl 10m >"${work}/token/token"
chmod -R a+rX "${work}"

# The services take a moment to listen: the script's first command (health) is retried.
env_args=()
for i in 0 1 2 3; do
  env_args+=(-e "ROGATORY_${names[i]^^}_ADDR=127.0.0.1:${grpc[i]}")
done
env_args+=(-e ROGATORY_TOKEN_FILE=/etc/rogatory-test/token/token)
rc=1
for _ in $(seq 1 30); do
  if podman run --rm --network=host --read-only --cap-drop=ALL --user 65532:65532 \
      "${env_args[@]}" -v "${work}/request:/etc/rogatory-test/request:ro" \
      -v "${work}/token:/etc/rogatory-test/token:ro" -v "${work}/script.sh:/script.sh:ro" \
      --entrypoint /bin/sh "${image}" -ec '. /script.sh' >"${work}/out.log" 2>&1; then
    rc=0
    break
  fi
  grep -q 'not every service is SERVING\|UNAVAILABLE' "${work}/out.log" || break
  sleep 1
done
cat "${work}/out.log"
if ((rc != 0)); then
  for n in "${names[@]}"; do say "--- ${n} (last 5 lines)"; tail -5 "${work}/${n}.log"; done
  say "FAILED: the helm test script failed against the running services"
  exit 1
fi
grep -q 'submitted and read back request' "${work}/out.log" || { say "FAILED: no submit/read"; exit 1; }
say "the helm test Pod's script passed: health of the four services, a request submitted and read back"
