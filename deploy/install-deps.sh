#!/usr/bin/env bash
# Installs what Rogatory needs to build, test and run locally, and nothing more. Idempotent:
# when everything is present it changes nothing and prints one line. Shared by
# deploy/local/run.sh and tests/run.sh; safe to run by hand.
#
# - Debian 12 packages, checked with dpkg-query; only the missing ones are installed, with
#   one `apt-get update` first.
# - Node.js and npm, only when the `node` / `npm` commands are missing (a machine may have
#   them from another source, whose packages conflict with Debian's).
# - buf (proto linter), pinned, from npm into /opt/rogatory-tools, only when missing or at
#   another version.
# - chromium (Debian's), for the browser test (tests/e2e/browser_e2e_test.py), in the apt list.
# - date-holidays, pinned (the version in tools/calendars/package.json), from npm into
#   /opt/rogatory-tools, for the check that services/deadlines/data/calendars.json is what
#   tools/calendars/generate.mjs writes.
#
# Needs root only when something is missing; a non-root caller then gets the list and the
# command to run.
set -euo pipefail

readonly APT_PACKAGES=(
  # Build.
  cmake ninja-build g++ pkg-config ccache git
  # Libraries.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libhiredis-dev prometheus-cpp-dev libgtest-dev libgmock-dev libevent-dev
  libcurl4-openssl-dev libssl-dev
  # Runtime and tests: Redis, time zones, the independent Python client, HTTP.
  redis-server redis-tools tzdata python3-grpcio python3-protobuf curl ca-certificates
  # rogatoryctl reads request files in YAML as well as JSON.
  python3-yaml
  # Development certificates (deploy/tls/make-certs.sh).
  openssl
  # The C++ format check (tools/lint/check_format.sh): the version is part of the format.
  clang-format-14
  # The sanitizer build and the fuzzers (tests/sanitize.sh): clang with its runtimes.
  clang libclang-rt-14-dev
  # The benchmark (tools/bench): ss finds the service's Redis connection.
  iproute2
  # The browser test (tests/e2e/browser_e2e_test.py): the example page in headless Chromium.
  chromium
)
readonly BUF_VERSION=1.75.0
readonly TOOLS_DIR=/opt/rogatory-tools
readonly BUF="${TOOLS_DIR}/node_modules/.bin/buf"
# Keep in step with tools/calendars/package.json.
readonly DATE_HOLIDAYS_VERSION=3.37.0

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints the packages among "$@" that are not fully installed, one per line.
missing_packages() {
  local -A installed=()
  local name status
  # dpkg-query exits non-zero when it knows none of a name; it still prints the names it
  # knows, so its exit code carries no information here.
  while read -r name status; do
    [[ "${status}" == ii ]] && installed["${name%%:*}"]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true)
  for name in "$@"; do
    [[ -n "${installed[${name}]:-}" ]] || printf '%s\n' "${name}"
  done
}

buf_present() {
  [[ -x "${BUF}" ]] && command -v node >/dev/null 2>&1 &&
    [[ "$("${BUF}" --version 2>/dev/null || true)" == "${BUF_VERSION}" ]]
}

date_holidays_present() {
  command -v node >/dev/null 2>&1 &&
    [[ "$(node -p "require('${TOOLS_DIR}/node_modules/date-holidays/package.json').version" \
          2>/dev/null || true)" == "${DATE_HOLIDAYS_VERSION}" ]]
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script targets Debian 12"

wanted=("${APT_PACKAGES[@]}")
command -v node >/dev/null 2>&1 || wanted+=(nodejs)
command -v npm >/dev/null 2>&1 || wanted+=(npm)
mapfile -t missing < <(missing_packages "${wanted[@]}")
need_buf=0
buf_present || need_buf=1
need_holidays=0
date_holidays_present || need_holidays=1

if ((${#missing[@]} == 0 && need_buf == 0 && need_holidays == 0)); then
  log "all ${#wanted[@]} packages, buf ${BUF_VERSION} and date-holidays ${DATE_HOLIDAYS_VERSION}" \
    "present; nothing to do"
  exit 0
fi

if ((EUID != 0)); then
  what=""
  ((${#missing[@]} > 0)) && what="apt packages: ${missing[*]}; "
  ((need_buf)) && what+="buf ${BUF_VERSION} in ${TOOLS_DIR}; "
  ((need_holidays)) && what+="date-holidays ${DATE_HOLIDAYS_VERSION} in ${TOOLS_DIR}; "
  die "missing ${what}run as root to install them: sudo $0"
fi

if ((${#missing[@]} > 0)); then
  log "installing ${#missing[@]} apt package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
  apt-get "${apt_opts[@]}" -qq update </dev/null || die "apt-get update failed"
  apt-get "${apt_opts[@]}" -qq install -y --no-install-recommends "${missing[@]}" </dev/null ||
    die "apt-get install failed"
  mapfile -t still_missing < <(missing_packages "${missing[@]}")
  ((${#still_missing[@]} == 0)) || die "still missing after install: ${still_missing[*]}"
  command -v node >/dev/null 2>&1 || die "node not found after installing nodejs"
  command -v npm >/dev/null 2>&1 || die "npm not found after installing npm"
fi

if ((need_buf)); then
  log "installing buf ${BUF_VERSION} from npm into ${TOOLS_DIR}"
  mkdir -p "${TOOLS_DIR}"
  npm install --prefix "${TOOLS_DIR}" --no-audit --no-fund --no-update-notifier \
    --save-exact --loglevel=error "@bufbuild/buf@${BUF_VERSION}" </dev/null || die "npm install of buf failed"
  buf_present || die "${BUF} does not report version ${BUF_VERSION} after install"
fi

if ((need_holidays)); then
  log "installing date-holidays ${DATE_HOLIDAYS_VERSION} from npm into ${TOOLS_DIR}"
  mkdir -p "${TOOLS_DIR}"
  npm install --prefix "${TOOLS_DIR}" --no-audit --no-fund --no-update-notifier \
    --save-exact --loglevel=error "date-holidays@${DATE_HOLIDAYS_VERSION}" </dev/null ||
    die "npm install of date-holidays failed"
  date_holidays_present || die "date-holidays ${DATE_HOLIDAYS_VERSION} not found after install"
fi

log "done"
