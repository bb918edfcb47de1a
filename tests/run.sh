#!/usr/bin/env bash
# Installs what is missing, builds, lints the protos and runs every test. Exits non-zero on
# any failure. Usage:
#
#   tests/run.sh                 # everything: the browser path's build (tools/web/build.sh),
#                                # unit, redis, cluster (on a six-node Redis Cluster), e2e
#                                # and fault tests, then the sanitizer build (unit + redis
#                                # under ASan/UBSan, fuzzers)
#   tests/run.sh -L unit         # extra arguments go to ctest (here: unit tests only; no
#                                # sanitizer stage)
#
# Environment:
#   ROGATORY_BUILD_DIR    build directory (default: build/ in the repository)
#   ROGATORY_SUMMARY_FILE if set, the stage timings and test counts are written there
#                         (.ci/run uses it)
#   ROGATORY_SANITIZE     0 skips the sanitizer stage of a full run (default 1)
#
# A full run (no ctest arguments) also fails when a test was skipped or when a label among
# unit, redis, cluster, e2e and fault has no test: an install that lacks redis-server must
# not look green.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${ROGATORY_BUILD_DIR:-${repo}/build}"
readonly repo build_dir
readonly BUF=/opt/rogatory-tools/node_modules/.bin/buf
readonly REQUIRED_LABELS=(unit redis cluster e2e fault)

stage_lines=()
counts_line=""
fault_lines=()  # the fault suite's figures ("FAULT kill9: ... lost=0 duplicates=0")
run_start="${EPOCHREALTIME}"

log() { printf '[tests/run.sh] %s\n' "$*" >&2; }

elapsed_since() { # start time (EPOCHREALTIME) -> seconds with one decimal
  local start="$1" now="${EPOCHREALTIME}"
  awk -v a="${start}" -v b="${now}" 'BEGIN { printf "%.1f", b - a }'
}

summary() {
  local rc=$?
  {
    printf 'stage timings:\n'
    local line
    for line in "${stage_lines[@]}"; do printf '  %s\n' "${line}"; done
    local verdict=ok
    ((rc == 0)) || verdict="FAILED (exit ${rc})"
    printf '  %-10s %8ss  %s\n' total "$(elapsed_since "${run_start}")" "${verdict}"
    local line2
    for line2 in "${fault_lines[@]}"; do printf '%s\n' "${line2}"; done
    [[ -n "${counts_line}" ]] && printf '%s\n' "${counts_line}"
  } >"${summary_tmp}"
  printf '\n' >&2
  cat "${summary_tmp}" >&2
  if [[ -n "${ROGATORY_SUMMARY_FILE:-}" ]]; then
    cp "${summary_tmp}" "${ROGATORY_SUMMARY_FILE}" || true
  fi
  rm -f "${summary_tmp}" "${ctest_log:-}"
  return "${rc}"
}

# stage NAME COMMAND...: runs COMMAND, records how long it took; stops the run on failure.
stage() {
  local name="$1" start="${EPOCHREALTIME}" rc=0
  shift
  log "=== ${name}: $*"
  "$@" || rc=$?
  local took
  took="$(elapsed_since "${start}")"
  if ((rc == 0)); then
    stage_lines+=("$(printf '%-10s %8ss  ok' "${name}" "${took}")")
    log "=== ${name}: ok in ${took}s"
  else
    stage_lines+=("$(printf '%-10s %8ss  FAILED (exit %d)' "${name}" "${took}" "${rc}")")
    log "=== ${name}: FAILED (exit ${rc}) after ${took}s"
    exit "${rc}"
  fi
}

configure() {
  cmake -S "${repo}" -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
}

build() {
  # Let ccache reuse objects across clones and build folders (CI builds a fresh clone).
  CCACHE_BASEDIR="${CCACHE_BASEDIR:-${repo}}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}" \
    cmake --build "${build_dir}" -j2
}

lint() {
  bash "${repo}/tools/lint/check_format.sh"
  python3 "${repo}/tools/lint/lua_scripts.py"
  python3 "${repo}/tools/lint/clock_calls.py"
}

lint_protos() {
  (cd "${repo}" && "${BUF}" lint)
}

run_ctest() {
  local rc=0
  # --timeout caps tests that set no TIMEOUT of their own (ctest's default is 25 minutes).
  # Two at a time, one per core; the fault tests, which measure latencies, run alone
  # (RUN_SERIAL).
  ctest --test-dir "${build_dir}" --output-on-failure --no-tests=error --timeout 300 -j2 "$@" 2>&1 |
    tee "${ctest_log}" || rc=$?
  count_results
  mapfile -t fault_lines < <(grep -ah '^FAULT ' "${build_dir}/Testing/Temporary/LastTest.log" \
                               2>/dev/null || true)
  ((rc == 0)) || return "${rc}"
  if (($# == 0)); then
    check_coverage
  fi
}

# Reads ctest's summary ("100% tests passed, 0 tests failed out of 42") and its list of
# tests that did not run, into counts_line ("ctest: 40 passed, 0 failed, 2 skipped").
count_results() {
  local total failed skipped
  total="$(sed -nE 's/.*tests passed, [0-9]+ tests? failed out of ([0-9]+).*/\1/p' "${ctest_log}" | tail -n1)"
  failed="$(sed -nE 's/.*tests passed, ([0-9]+) tests? failed out of [0-9]+.*/\1/p' "${ctest_log}" | tail -n1)"
  [[ -n "${total}" && -n "${failed}" ]] || return 0
  skipped="$(grep -cE '^[[:space:]]*[0-9]+ - .*\(Skipped\)' "${ctest_log}" || true)"
  counts_line="ctest: $((total - failed - skipped)) passed, ${failed} failed, ${skipped} skipped"
}

# A full run must run tests of every label and skip none.
check_coverage() {
  local problems=() label n
  for label in "${REQUIRED_LABELS[@]}"; do
    n="$(ctest --test-dir "${build_dir}" -N -L "^${label}\$" | sed -nE 's/^Total Tests: ([0-9]+).*/\1/p')"
    if [[ -z "${n}" || "${n}" == 0 ]]; then
      problems+=("no test has the label '${label}'")
    fi
  done
  if grep -qE '^[[:space:]]*[0-9]+ - .*\((Skipped|Disabled)\)' "${ctest_log}"; then
    problems+=("some tests did not run (listed above): a full run must skip none")
  fi
  if ((${#problems[@]} > 0)); then
    local p
    for p in "${problems[@]}"; do log "error: ${p}"; done
    return 1
  fi
}

summary_tmp="$(mktemp)"
ctest_log="$(mktemp)"
trap summary EXIT

stage install bash "${repo}/deploy/install-deps.sh"
# The browser path: npm ci from each lockfile (skipped when unchanged), the TypeScript client,
# the gateway bundle and its unit tests, the example page; the e2e tests use them.
stage web bash "${repo}/tools/web/build.sh"
# Every C++ file as .clang-format says (Google style, 100 columns); every Redis script with
# its header, flags and keys from KEYS.
stage lint lint
stage configure configure
stage build build
stage buf-lint lint_protos
stage ctest run_ctest "$@"
if (($# == 0)) && [[ "${ROGATORY_SANITIZE:-1}" != 0 ]]; then
  stage sanitize bash "${repo}/tests/sanitize.sh"
fi
