#!/usr/bin/python3
"""The README's role x RPC table, made from the table the services enforce.

    tools/docs/rpc_roles_table.py            # prints the table (Markdown)
    tools/docs/rpc_roles_table.py --write    # replaces the table in README.md
    tools/docs/rpc_roles_table.py --check    # exit 1 if README.md's table differs (a test)

The enforced table is kTable in common/src/rpc_roles.cc (issue 16, item 6); the README's
copy stands between the two marker lines below and is never edited by hand.
"""

from __future__ import annotations

import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import readme_block  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
SOURCE = REPO / "common" / "src" / "rpc_roles.cc"
BEGIN = "<!-- rpc-roles-table:begin (tools/docs/rpc_roles_table.py --write) -->"
END = "<!-- rpc-roles-table:end -->"

COLUMNS = ("issuing", "central", "executing", "translator", "auditor", "operator", "service",
           "no roles")
CELLS = {"N": "—", "A": "✓", "R": "reach", "O": "own", "I": "issuing side",
         "E": "executing side", "S": "either side"}
SERVICES = {
    "kIntake": "IntakeService", "kRouting": "TranslationRoutingService",
    "kDeadlines": "DeadlineService", "kNotification": "NotificationService",
    "kEventSink": "EventSinkService", "kAudit": "admin AuditService",
    "kTestClock": "admin TestClockService", "kBenchEcho": "bench EchoService",
}
ROW = re.compile(r'\{(k\w+), "(\w+)", \{([NAROIES, ]+)\}, "(\w*)",\s*"((?:[^"\\]|\\.)*)"\}',
                 re.S)


def rows() -> list[tuple[str, str, list[str], str]]:
    text = SOURCE.read_text()
    body = text[text.index("const RpcRoleRule kTable[] = {"):]
    body = body[:body.index("\n};")]
    found = []
    for service, method, cells, _target, note in ROW.findall(body):
        grants = [c.strip() for c in cells.split(",")]
        if len(grants) != len(COLUMNS):
            raise SystemExit(f"{method}: {len(grants)} cells, expected {len(COLUMNS)}")
        found.append((SERVICES[service], method, grants, note))
    if len(found) != body.count('", {'):
        raise SystemExit("some rows of kTable were not understood")
    return found


def table() -> str:
    lines = ["| RPC | " + " | ".join(COLUMNS) + " | note |",
             "|---|" + "---|" * len(COLUMNS) + "---|"]
    for service, method, grants, note in rows():
        cells = " | ".join(CELLS[g] for g in grants)
        lines.append(f"| {service}.{method} | {cells} | {note} |")
    return "\n".join(lines)


def main() -> int:
    return readme_block.main(__doc__.splitlines()[0], BEGIN, END, table, "role table",
                             "common/src/rpc_roles.cc", "tools/docs/rpc_roles_table.py")


if __name__ == "__main__":
    sys.exit(main())
