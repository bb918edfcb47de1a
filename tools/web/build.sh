#!/usr/bin/env bash
# Installs and builds the browser path, each package from its own lockfile:
#   clients/typescript  the typed client: code generated from protos/ (protoc-gen-es), tsc
#   services/gateway    rogatory-gateway: generate, type-check, bundle into
#                       dist/rogatory-gateway.cjs (one file, Debian's nodejs only), unit tests
#   examples/web        the example page: type-check, bundle into dist/
# `npm ci` runs only when a package's lockfile changed since its last install (a stamp in
# node_modules), with npm's cache preferred, so a repeated run costs a few seconds.
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

build_client() {
  ensure_modules "${repo}/clients/typescript"
  (cd "${repo}/clients/typescript" && npm run --silent build)
}

build_gateway() {
  ensure_modules "${repo}/services/gateway"
  (cd "${repo}/services/gateway" && npm run --silent build && npm test --silent)
}

build_page() {
  ensure_modules "${repo}/examples/web"
  (cd "${repo}/examples/web" && npm run --silent build)
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
