#!/usr/bin/env bash
# Checks that every C++ file git knows is formatted as .clang-format says (Google style,
# 100 columns). Exits 1 naming the files that are not; `--fix` formats them in place.
#
#   tools/lint/check_format.sh          # check (tests/run.sh runs this)
#   tools/lint/check_format.sh --fix    # format
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${repo}"

# The version is part of the format: Debian 12's clang-format 14, which install-deps installs.
CLANG_FORMAT="${CLANG_FORMAT:-clang-format-14}"
command -v "${CLANG_FORMAT}" >/dev/null || {
  echo "check_format: ${CLANG_FORMAT} is not installed (deploy/install-deps.sh installs it)" >&2
  exit 1
}

mapfile -t files < <(git ls-files -- '*.cc' '*.h' '*.cpp' '*.hpp')
if [[ "${1:-}" == "--fix" ]]; then
  printf '%s\0' "${files[@]}" | xargs -0 "${CLANG_FORMAT}" -i
  exit 0
fi

# --dry-run --Werror reports "FILE:LINE:COL: error: code should be clang-formatted" per
# difference; two processes at a time, as the machine has two cores.
mapfile -t unformatted < <(
  printf '%s\0' "${files[@]}" |
    xargs -0 -P2 -n16 "${CLANG_FORMAT}" --dry-run --Werror 2>&1 >/dev/null |
    sed -nE 's/^([^:]+):[0-9]+:[0-9]+: error: .*/\1/p' | sort -u
)
if ((${#unformatted[@]} > 0)); then
  echo "check_format: ${#unformatted[@]} file(s) not formatted as .clang-format says:" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  echo "run tools/lint/check_format.sh --fix" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
