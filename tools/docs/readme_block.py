"""One block of README.md that a script makes from data: printed, written or checked.

The block stands between two marker lines and is never edited by hand. rules_table.py and
rpc_roles_table.py make theirs with main() below:

    <script>            # prints the block (Markdown)
    <script> --write    # replaces the block in README.md
    <script> --check    # exit 1 if README.md's block differs (a test)
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Callable

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def current(begin: str, end: str) -> str:
    """README.md's block between the markers ("" without them)."""
    text = README.read_text()
    if begin not in text or end not in text:
        return ""
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n")


def main(description: str, begin: str, end: str, make: Callable[[], str], what: str,
         source: str, script: str) -> int:
    """The command line of a block script: `what` names the block ("rules table"), `source`
    the data it is made from, `script` the script's path for the hint."""
    parser = argparse.ArgumentParser(description=description)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the block in README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md's differs")
    args = parser.parse_args()
    made = make()
    if args.write:
        text = README.read_text()
        if begin not in text or end not in text:
            print(f"README.md lacks the markers {begin!r} ... {end!r}", file=sys.stderr)
            return 1
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        README.write_text(f"{head}{begin}\n{made}\n{end}{tail}")
        return 0
    if args.check:
        if current(begin, end) != made:
            print(f"README.md's {what} differs from {source}; run {script} --write",
                  file=sys.stderr)
            return 1
        print(f"README.md's {what} matches {source}")
        return 0
    print(made)
    return 0
