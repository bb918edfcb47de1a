#!/usr/bin/env bash
# Rogatory's benchmark: installs what is missing, builds the services, rogatory-bench,
# rogatory-echo and rogatory-deadline-bench (optimised: the build tests/run.sh and
# deploy/local/run.sh use, CMAKE_BUILD_TYPE=RelWithDebInfo, -O2 -DNDEBUG), then runs every
# scenario beside its baselines (tools/bench/bench.py) and writes tools/bench/REPORT.md.
#
#   tools/bench/run.sh                 # the whole report, about 15 minutes
#   tools/bench/run.sh --duration=5    # shorter windows; any bench.py option passes through
#   tools/bench/run.sh --help
#
# Everything runs on this machine on free loopback ports; nothing else should run meanwhile
# (the figures are only as quiet as the machine). Env: ROGATORY_BUILD_DIR (default build/).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly repo
readonly build_dir="${ROGATORY_BUILD_DIR:-${repo}/build}"

for arg in "$@"; do
  if [[ "${arg}" == -h || "${arg}" == --help ]]; then
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
    exec /usr/bin/python3 "${repo}/tools/bench/bench.py" --help
  fi
done

bash "${repo}/deploy/install-deps.sh"
cmake -S "${repo}" -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=(rogatory-intake rogatory-routing rogatory-deadlines rogatory-notification
         rogatory-echo rogatory-bench)
if [[ -f "${repo}/tools/bench/deadline_bench.cmake" ]]; then
  targets+=(rogatory-deadline-bench)
fi
cmake --build "${build_dir}" -j2 --target "${targets[@]}"
cd "${repo}"
exec /usr/bin/python3 "${repo}/tools/bench/bench.py" --build-dir "${build_dir}" "$@"
