#!/usr/bin/python3
"""The README's table of instruments and time limits, made from the deadline rules data.

    tools/docs/rules_table.py            # prints the table (Markdown)
    tools/docs/rules_table.py --write    # replaces the table in README.md
    tools/docs/rules_table.py --check    # exit 1 if README.md's table differs (a test)

The table stands in README.md between the two marker lines below; it is never edited by
hand, so it cannot drift from services/deadlines/data/rules.json.
"""

from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import readme_block  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
RULES = REPO / "services" / "deadlines" / "data" / "rules.json"
BEGIN = "<!-- rules-table:begin (tools/docs/rules_table.py --write) -->"
END = "<!-- rules-table:end -->"

INSTRUMENTS = {
    "INSTRUMENT_MLA": "Mutual legal assistance",
    "INSTRUMENT_EIO": "European Investigation Order",
    "INSTRUMENT_EAW": "European Arrest Warrant",
    "INSTRUMENT_EXTRADITION": "Extradition",
    "INSTRUMENT_PROVISIONAL_ARREST": "Provisional arrest",
    "INSTRUMENT_FREEZING_ORDER": "Freezing / confiscation order",
    "INSTRUMENT_PRODUCTION_ORDER": "European Production Order",
}


def short(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


def period(rule: dict) -> str:
    unit = "h" if rule.get("unit") == "PERIOD_UNIT_HOURS" else " days"
    text = f"{rule.get('length', '?')}{unit}"
    if rule.get("kind") == "DEADLINE_KIND_ABSOLUTE_MAXIMUM":
        text += " (never exceeds)"
    if rule.get("unit") == "PERIOD_UNIT_DAYS" and rule.get("regulation118271"):
        text += ", Reg. 1182/71"
    urgencies = [short(u, "URGENCY_").lower() for u in rule.get("urgencies", [])
                 if u != "URGENCY_UNSPECIFIED"]
    if urgencies:
        text += " (" + " or ".join(urgencies) + " only)"
    return text


def trigger(rule: dict) -> str:
    if not rule.get("trigger"):
        return "started by hand (`StartDeadline`)"
    return "`" + short(rule["trigger"], "EVENT_TYPE_") + "`"


def events(names: list[str]) -> str:
    return ", ".join("`" + short(n, "EVENT_TYPE_") + "`" for n in names) or "-"


def source(rule: dict) -> str:
    return rule.get("legalBasis", "").replace("|", "\\|")


def table() -> str:
    rules = json.loads(RULES.read_text())["rules"]
    order = list(INSTRUMENTS)
    rules.sort(key=lambda r: (order.index(r["instrument"]) if r["instrument"] in order
                              else len(order)))
    lines = ["| instrument | rule | limit | starts on | met by | legal source |",
             "|---|---|---|---|---|---|"]
    for rule in rules:
        lines.append("| " + " | ".join([
            INSTRUMENTS.get(rule["instrument"], rule["instrument"]),
            f"`{rule['id']}`",
            period(rule),
            trigger(rule),
            events(rule.get("satisfiedBy", [])),
            source(rule),
        ]) + " |")
    lines += ["", "What each rule's source says of its length and of the event that starts it:", ""]
    lines += [f"- `{rule['id']}`: {rule.get('source', '(no source given)')}" for rule in rules]
    missing = sorted(set(INSTRUMENTS) - {r["instrument"] for r in rules})
    if missing:
        raise SystemExit(f"rules.json has no rule for {', '.join(missing)}")
    return "\n".join(lines)


def main() -> int:
    return readme_block.main(__doc__.splitlines()[0], BEGIN, END, table, "rules table",
                             "rules.json", "tools/docs/rules_table.py")


if __name__ == "__main__":
    sys.exit(main())
