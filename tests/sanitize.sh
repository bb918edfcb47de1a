#!/usr/bin/env bash
# The sanitizer build: configures build-asan/ with clang, -fsanitize=address,undefined and
# the libFuzzer targets (ROGATORY_SANITIZE=ON), builds the unit and Redis test binaries and
# the fuzzers only, runs `ctest -L 'unit|redis'` under the sanitizers, then each fuzzer for a
# bounded time from its seed corpus (tests/fuzz/corpus/<fuzzer>/, copied: the repository's
# corpus is not modified). Exits non-zero on any failure, sanitizer report or fuzz finding
# (the crashing input is kept in the work directory and its path printed).
#
#   tests/sanitize.sh                  # everything
#   ROGATORY_FUZZ_SECONDS=5 tests/sanitize.sh
#
# Environment: ROGATORY_ASAN_BUILD_DIR (default build-asan/ in the repository),
# ROGATORY_FUZZ_SECONDS (default 20 per fuzzer), ROGATORY_JOBS (default 2).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${ROGATORY_ASAN_BUILD_DIR:-${repo}/build-asan}"
fuzz_seconds="${ROGATORY_FUZZ_SECONDS:-20}"
jobs="${ROGATORY_JOBS:-2}"
readonly repo build_dir fuzz_seconds jobs
readonly FUZZERS=(intake_validator_fuzzer routing_registry_fuzzer deadline_rules_fuzzer
                  notification_endpoint_fuzzer jwt_fuzzer)

log() { printf '[tests/sanitize.sh] %s\n' "$*" >&2; }
start="${SECONDS}"
stamp() { log "$1 done after $((SECONDS - start)) s"; }

export CCACHE_BASEDIR="${repo}" CCACHE_NOHASHDIR=true
# Leak checking stays on; every report aborts so that ctest sees a failure.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

command -v clang++ >/dev/null || { log "clang++ is missing (apt-get install clang)"; exit 1; }

# -O1 (ROGATORY_SANITIZE adds it) and line tables only (-g1): the slowest part of this
# build is compiling; full debug info would double the object sizes for little use.
cmake -S "${repo}" -B "${build_dir}" -G Ninja \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
  -DROGATORY_SANITIZE=ON >/dev/null
stamp configure

# Only what runs here: the unit and Redis test binaries and the fuzzers, not the services.
mapfile -t test_targets < <(ctest --test-dir "${build_dir}" -N -L 'unit|redis' |
                              sed -n 's/^ *Test *#[0-9]*: *//p')
((${#test_targets[@]} > 0)) || { log "no unit or redis test found"; exit 1; }
cmake --build "${build_dir}" -j "${jobs}" --target "${test_targets[@]}" "${FUZZERS[@]}"
stamp build

ctest --test-dir "${build_dir}" -L 'unit|redis' --output-on-failure -j "${jobs}"
stamp "ctest -L 'unit|redis'"

work="$(mktemp -d /tmp/rogatory-fuzz-XXXXXX)"
for fuzzer in "${FUZZERS[@]}"; do
  corpus="${work}/${fuzzer}"
  mkdir -p "${corpus}"
  cp -r "${repo}/tests/fuzz/corpus/${fuzzer}/." "${corpus}/"
  log "fuzzing ${fuzzer} for ${fuzz_seconds} s"
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb bounds memory.
  if ! (cd "${work}" && "${build_dir}/bin/${fuzzer}" -max_total_time="${fuzz_seconds}" \
          -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
          "${corpus}" 2>"${work}/${fuzzer}.log"); then
    tail -n 60 "${work}/${fuzzer}.log" >&2
    log "${fuzzer} FAILED; the input is in ${work} (crash-*, timeout-*, leak-*)"
    exit 1
  fi
  grep -E '^stat::number_of_executed_units' "${work}/${fuzzer}.log" >&2 || true
done
rm -rf "${work}"
stamp fuzzing
log "all sanitizer checks passed in $((SECONDS - start)) s"
