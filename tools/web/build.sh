#!/usr/bin/env bash
# Installs and builds the browser path, each package from its own lockfile:
#   clients/typescript  the typed client: code generated from protos/ (protoc-gen-es), tsc
#   services/gateway    rogatory-gateway: generate, type-check, bundle into
#                       dist/rogatory-gateway.cjs (one file, Debian's nodejs only), unit tests
#   examples/web        the example page: type-check, bundle into dist/
# `npm ci` runs only when a package's lockfile changed since its last install (a stamp in
# node_modules), with npm's cache preferred; a package is rebuilt only when its inputs
# (its files, protos/, the client's sources) changed since its last build (a stamp in
# dist/), so a repeated run costs about a second.
# Used by tests/run.sh (stage "web"), deploy/local/run.sh and the gateway's Dockerfile stage.
#
#   tools/web/build.sh            # all three
#   tools/web/build.sh gateway    # the gateway only (the container build)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo

log() { printf 'web-build: %s\n' "$*" >&2; }

# npm ci, unless node_modules was installed from this very lockfile.
ensure_modules() {
  local dir="$1" stamp want
  stamp="${dir}/node_modules/.rogatory-lock.sha256"
  want="$(sha256sum "${dir}/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    return 0
  fi
  log "npm ci in ${dir#"${repo}"/}"
  (cd "${dir}" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error </dev/null)
  printf '%s\n' "${want}" >"${stamp}"
}

# Hash of the inputs of a build: every file under the given paths except installed and
# generated ones.
inputs_hash() {
  (cd "${repo}" && find "$@" \( -name node_modules -o -name dist -o -name gen \) -prune \
     -o -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# build DIR COMMAND... [-- INPUT_PATHS...]: runs COMMAND in DIR unless the inputs are those
# of the last successful build.
build() {
  local dir="$1" inputs=() command=() want stamp
  shift
  while (($# > 0)) && [[ "$1" != -- ]]; do command+=("$1"); shift; done
  shift
  inputs=("$@")
  ensure_modules "${repo}/${dir}"
  stamp="${repo}/${dir}/dist/.rogatory-inputs.sha256"
  want="$(inputs_hash "${inputs[@]}")"
  if [[ -f "${stamp}" && "$(cat "${stamp}")" == "${want}" ]]; then
    log "${dir}: up to date"
    return 0
  fi
  log "building ${dir}"
  (cd "${repo}/${dir}" && "${command[@]}")
  mkdir -p "${repo}/${dir}/dist"
  printf '%s\n' "${want}" >"${stamp}"
}

build_client() {
  build clients/typescript npm run --silent build -- clients/typescript protos
}

build_gateway() {
  build services/gateway sh -c 'npm run --silent build && npm test --silent' \
    -- services/gateway clients/typescript/scripts protos
}

build_page() {
  build examples/web npm run --silent build -- examples/web clients/typescript protos \
    samples/requests/eio-fr-de.json
}

command -v node >/dev/null 2>&1 || { log "error: node not found (deploy/install-deps.sh installs it)"; exit 1; }
case "${1:-all}" in
  all)
    build_client
    build_gateway
    build_page
    ;;
  gateway) build_gateway ;;
  *) log "usage: $0 [all|gateway]"; exit 2 ;;
esac
log "ok"
