#!/usr/bin/env python3
"""Checks that no service reads a clock of its own (issue 17, item 6).

Services take time from the injected `Clock` (common/include/rogatory/common/clock.h):
`Now()` for wall time, `MonotonicNow()` for elapsed time. So every C++ file under common/
and services/ is checked for direct reads of a system clock: `absl::Now`,
`absl::GetCurrentTimeNanos`, `std::chrono::system_clock`, `steady_clock` or
`high_resolution_clock`, `time(nullptr)`, `gettimeofday`, `clock_gettime` and gRPC's
`gpr_now`. Comments and string literals do not count.

The one place allowed to read the system's clocks is the RealClock class in clock.h
(ALLOWED: only inside that class's body). Tools (tools/) and tests are not services and
are not checked.

Files in PENDING still read a clock directly and are being moved to the injected Clock: the
set must shrink to none; a file in PENDING that no longer reads a clock is an error too, so
the list stays true.

Usage: tools/lint/clock_calls.py [--root DIR]    exits 1 listing every direct read.
"""

import argparse
import pathlib
import re
import sys

# path -> the one class whose body may read the system's clocks.
ALLOWED = {
    "common/include/rogatory/common/clock.h": "RealClock",
}

# Files that still read a clock directly. Remove a file in the commit that moves it to the
# injected Clock.
PENDING: set[str] = set()

CHECKED_TOPS = ("common", "services")
SUFFIXES = (".cc", ".h", ".cpp", ".hpp")

DIRECT_READ = re.compile(
    r"\babsl::Now\b"
    r"|\babsl::GetCurrentTimeNanos\b"
    r"|\b(?:system_clock|steady_clock|high_resolution_clock)\b"
    r"|\btime\s*\(\s*(?:nullptr|NULL|0)\s*\)"
    r"|\bgettimeofday\s*\("
    r"|\bclock_gettime\s*\("
    r"|\bgpr_now\s*\(")

# C++ comments and literals, blanked (newlines kept, so line numbers stay right). Raw
# strings first: they may hold quotes and comment markers.
TOKENS = re.compile(
    r'R"(?P<delim>[^()\\\s]{0,16})\((?:.|\n)*?\)(?P=delim)"'
    r"|//[^\n]*"
    r"|/\*(?:.|\n)*?\*/"
    r'|"(?:\\.|[^"\\\n])*"'
    r"|'(?:\\.|[^'\\\n])*'")


def blank(source):
    """The source with comments and literals replaced by spaces (newlines kept)."""
    return TOKENS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)


def class_body(code, name):
    """The [start, end) offsets of class `name`'s body in blanked code, or None."""
    m = re.search(r"\bclass\s+" + re.escape(name) + r"\b[^;{]*\{", code)
    if m is None:
        return None
    depth = 0
    for i in range(m.end() - 1, len(code)):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return m.start(), i + 1
    return None


def direct_reads(rel, source):
    """(line, text) of each direct clock read in a file, outside what ALLOWED allows."""
    code = blank(source)
    allowed = None
    if rel in ALLOWED:
        allowed = class_body(code, ALLOWED[rel])
    found = []
    for m in DIRECT_READ.finditer(code):
        if allowed is not None and allowed[0] <= m.start() < allowed[1]:
            continue
        line = code.count("\n", 0, m.start()) + 1
        found.append((line, m.group(0)))
    return found


def check_tree(root):
    """(files checked, problems)."""
    root = pathlib.Path(root)
    problems = []
    checked = 0
    for top in CHECKED_TOPS:
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            checked += 1
            rel = path.relative_to(root).as_posix()
            reads = direct_reads(rel, path.read_text(errors="replace"))
            if reads and rel not in PENDING:
                for line, what in reads:
                    problems.append(
                        f"{rel}:{line}: reads a clock directly ({what}); take the injected "
                        "Clock (Now() for wall time, MonotonicNow() for elapsed time)")
            if not reads and rel in PENDING:
                problems.append(f"{rel}: reads no clock directly any more: remove it from "
                                "PENDING in tools/lint/clock_calls.py")
    for rel, name in sorted(ALLOWED.items()):
        path = root / rel
        if not path.exists():
            problems.append(f"{rel}: listed in ALLOWED but does not exist")
        elif class_body(blank(path.read_text()), name) is None:
            problems.append(f"{rel}: listed in ALLOWED but has no class {name}")
    for rel in sorted(PENDING):
        if not (root / rel).exists():
            problems.append(f"{rel}: listed in PENDING but does not exist")
    return checked, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parents[2])
    args = parser.parse_args()
    checked, problems = check_tree(args.root)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"clock_calls: {len(problems)} problem(s) in {checked} file(s)", file=sys.stderr)
        return 1
    print(f"clock_calls: {checked} file(s) checked; {len(PENDING)} still read a clock directly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
