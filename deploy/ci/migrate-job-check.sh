#!/usr/bin/env bash
# Runs the chart's data layout migration Job for real (helm/rogatory/templates/migrate-job.yaml):
# the command and environment `helm template` renders, in the intake image, against a
# password-protected local Redis holding data as the previous release wrote it (request keys,
# no layout record). An upgrade with the same redisShards records the layout (exit 0, and
# again with nothing to do); one with another redisShards fails (exit 1) and leaves the
# record as it was, so the upgrade stops before any pod of the new release starts.
#
# Usage: deploy/ci/migrate-job-check.sh HELM INTAKE_IMAGE
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo
readonly python=/usr/bin/python3
helm="$1" image="$2"
say() { printf '[migrate-job-check] %s\n' "$*"; }
die() { say "FAILED: $*"; exit 1; }

work="$(mktemp -d /tmp/rogatory-migratejob.XXXXXX)"
redis_pid=""
cleanup() {
  [[ -n "${redis_pid}" ]] && kill -TERM "${redis_pid}" 2>/dev/null && wait "${redis_pid}" 2>/dev/null
  rm -rf "${work}"
}
trap cleanup EXIT

# The Job's command and environment as rendered, one "NAME=value" per line, the Redis host
# replaced with the local one.
render() { # SHARDS OUT
  "${helm}" template rogatory "${repo}/helm/rogatory" --namespace rogatory \
    -f "${repo}/helm/rogatory/ci/production-mesh-values.yaml" \
    --set "settings.redisShards=$1" --show-only templates/migrate-job.yaml >"${work}/job.yaml" \
    2>"${work}/helm.err" || { cat "${work}/helm.err" >&2; die "helm template failed"; }
  "${python}" - "${work}/job.yaml" "${redis_port}" "$2" <<'PY'
import re, sys, yaml
job = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Job")
(c,) = job["spec"]["template"]["spec"]["containers"]
assert c["command"] == ["/usr/bin/rogatory-migrate", "apply"], c["command"]
with open(sys.argv[3], "w") as out:
    for e in c["env"]:
        value = e["value"]
        if e["name"] == "ROGATORY_REDIS_URL":
            value = re.sub(r"@?[^/@]+:\d+/", "@127.0.0.1:" + sys.argv[2] + "/", value, count=1)
            value = value.replace("//@", "//")
        out.write(f"{e['name']}={value}\n")
PY
}

run_job() { # ENV_FILE
  podman run --rm --network=host --read-only --cap-drop=ALL --user 65532:65532 \
    --env-file "$1" -v "${work}/secrets:/etc/rogatory/secrets:ro" \
    --entrypoint /usr/bin/rogatory-migrate "${image}" apply
}

redis_port="$("${python}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "${work}/secrets"
head -c 18 /dev/urandom | base64 | tr -d '/+=\n' >"${work}/secrets/redis-password"
chmod -R a+rX "${work}"
redis-server --port "${redis_port}" --bind 127.0.0.1 --dir "${work}" --save '' --appendonly no \
  --requirepass "$(cat "${work}/secrets/redis-password")" --daemonize no >"${work}/redis.log" 2>&1 &
redis_pid=$!
cli() { REDISCLI_AUTH="$(cat "${work}/secrets/redis-password")" redis-cli -p "${redis_port}" "$@"; }
for _ in $(seq 1 100); do [[ "$(cli ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
# Data as the previous release wrote it: request keys in shards 0 and 3, no layout record.
cli set 'rg:{s0}:req:rq-0-previous' x >/dev/null
cli set 'rg:{s3}:req:rq-3-previous' x >/dev/null

render 16 "${work}/same.env"
grep -q '^ROGATORY_REDIS_SHARDS=16$' "${work}/same.env" || die "the Job does not carry redisShards"
out="$(run_job "${work}/same.env")" || die "the upgrade's migration failed: ${out}"
say "upgrade with the same shards: ${out}"
# The layout this release's binaries write (common/include/rogatory/common/data_layout.h).
layout_version="$(sed -n 's/^inline constexpr int kDataLayoutVersion = \([0-9]*\);$/\1/p' \
  "${repo}/common/include/rogatory/common/data_layout.h")"
[[ -n "${layout_version}" ]] || die "kDataLayoutVersion not found in data_layout.h"
[[ "$(cli hget 'rg:{meta}:layout' shards)" == 16 &&
  "$(cli hget 'rg:{meta}:layout' version)" == "${layout_version}" ]] ||
  die "the layout was not recorded (expected version ${layout_version}, 16 shards)"
out="$(run_job "${work}/same.env")" || die "a second run (Argo CD PreSync) failed: ${out}"
[[ "${out}" == *'"steps":[]'* ]] || die "a second run did something: ${out}"

render 8 "${work}/other.env"
if out="$(run_job "${work}/other.env")"; then
  die "an upgrade to redisShards=8 over data of 16 shards passed: ${out}"
fi
say "upgrade with other shards refused: ${out}"
[[ "$(cli hget 'rg:{meta}:layout' shards)" == 16 ]] || die "a refused upgrade changed the record"
say "the migration Job records the layout of the previous release's data, runs again as a no-op, and refuses another shard count"
