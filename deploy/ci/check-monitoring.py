#!/usr/bin/python3
"""Checks Rogatory's Grafana dashboard and Prometheus alerts, statically and against a
Prometheus that scrapes the running services.

Static (always):
  - the dashboard provisions through Grafana's file or sidecar provisioning: no
    `__inputs`, a `datasource` variable that every panel and query uses, `namespace` and
    `job` variables that every query filters on (two releases never add up);
  - every alert has a `runbook_url` whose path (after /blob/<branch>/) is a file of this
    repository, and every runbook page names its alert.
With --prometheus (deploy/ci/prometheus-check.sh, after deploy/ci/smoke.py's traffic):
  - every dashboard query, variables set to "all", returns at least one series (waits up
    to --wait seconds for rates and the lease holders' gauges);
  - every metric an alerting or recording rule selects exists, with every label its
    matchers name (and, for `=` matchers, that value), and every label it aggregates by
    exists on one of the expression's metrics (target labels such as namespace or pod
    excepted: the local Prometheus has none). An alert expression itself rightly returns
    nothing while all is well, so the selectors are checked, not the expressions.

    /usr/bin/python3 deploy/ci/check-monitoring.py [--prometheus http://127.0.0.1:9090]
Prints what it checked; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import time
import urllib.parse
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
#: Labels Prometheus or the Prometheus Operator add to every target (not in /metrics).
TARGET_LABELS = {"namespace", "pod", "instance", "job", "service", "container", "endpoint",
                 "replica"}
KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan"}
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
TOKENS = re.compile(
    r"\b(?:on|ignoring|group_left|group_right)\s*\([^)]*\)"  # vector matching: skipped
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?P<matchers>\{[^}]*\})?(?P<call>\s*\()?"
    r"|(?P<bare>\{[^}]*\})")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The (metric name, [(label, op, value)]) of every vector selector of a PromQL
    expression (a rough tokenizer, enough for the rules and dashboards written here)."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = GROUPING.sub(" ", expr)
    found = []
    for m in TOKENS.finditer(expr):
        name = m.group("name")
        if m.group("bare"):
            raise ValueError(f"selector without a metric name in {expr!r}")
        if name is None or m.group("call") or name in KEYWORDS:
            continue
        matchers = MATCHER.findall(m.group("matchers") or "")
        found.append((name, [(label, op, bytes(value, "utf-8").decode("unicode_escape"))
                             for label, op, value in matchers]))
    return found


def grouping_labels(expr: str) -> set[str]:
    labels = set()
    for group in GROUPING.findall(expr):
        labels.update(x.strip() for x in group.split(",") if x.strip())
    return labels


def load_rules(path: pathlib.Path) -> list[dict]:
    import yaml  # python3-yaml, as promtool's files are YAML

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """Every query of the dashboard with its variables set to "all"."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in (("$__rate_interval", "1m"), ("$namespace", ".*"),
                               ("$job", ".*"), ("$service", "rogatory\\\\..*"),
                               ("$method", ".*")):
                expr = expr.replace(var, value)
            if "$" in expr:
                raise AssertionError(f"panel {panel['title']!r}: unknown variable in {expr}")
            out.append((expr, f"panel {panel['title']!r} ({target['refId']})"))
    return out


def check_static(dashboard: dict, rules: list[dict]) -> list[str]:
    errors = []
    if "__inputs" in dashboard or "__requires" in dashboard:
        errors.append("dashboard: __inputs/__requires make it an export for manual import; "
                      "file and sidecar provisioning do not resolve them")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        errors.append("dashboard: no `datasource` variable of type datasource")
    for name in ("namespace", "job"):
        if name not in variables:
            errors.append(f"dashboard: no `{name}` variable")
    if variables.get("namespace", {}).get("includeAll") or variables.get(
            "namespace", {}).get("multi"):
        errors.append("dashboard: `namespace` must be single-valued (releases never add up)")
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"panel {panel['title']!r}: datasource is not ${{datasource}}")
        for target in panel.get("targets", []):
            if target.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"panel {panel['title']!r}: a query's datasource is not "
                              "${datasource}")
            if 'namespace=~"$namespace"' not in target["expr"]:
                errors.append(f"panel {panel['title']!r}: query not filtered by namespace")
    for rule in rules:
        if "alert" not in rule:
            continue
        url = rule.get("annotations", {}).get("runbook_url", "")
        m = re.search(r"/blob/[^/]+/(.+)$", url)
        if not m or not (REPO / m.group(1)).is_file():
            errors.append(f"alert {rule['alert']}: runbook_url {url!r} is not a file here")
        elif rule["alert"] not in (REPO / m.group(1)).read_text(encoding="utf-8"):
            errors.append(f"alert {rule['alert']}: its runbook does not name it")
    return errors


class Prometheus:
    def __init__(self, base: str):
        self.base = base.rstrip("/")

    def get(self, path: str, params: list[tuple[str, str]]) -> object:
        url = f"{self.base}{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} failed: {body}")
        return body["data"]

    def query(self, expr: str) -> list:
        return self.get("/api/v1/query", [("query", expr)])["result"]

    def series(self, name: str) -> list[dict]:
        now = time.time()
        return self.get("/api/v1/series", [("match[]", name), ("start", str(now - 600)),
                                           ("end", str(now))])


def check_panels(prom: Prometheus, dashboard: dict, wait: float) -> list[str]:
    queries = dashboard_queries(dashboard)
    empty = dict(queries)
    deadline = time.monotonic() + wait
    while True:
        for expr in list(empty):
            if prom.query(expr):  # raises on a PromQL error
                del empty[expr]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(f"[check-monitoring] dashboard: {len(queries) - len(empty)} of {len(queries)} "
          "queries return series")
    return [f"{what} returns no series: {expr}" for expr, what in empty.items()]


def check_rule_selectors(prom: Prometheus, rules: list[dict]) -> list[str]:
    errors = []
    recorded = {r["record"] for r in rules if "record" in r}
    cache: dict[str, list[dict]] = {}
    checked = 0
    for rule in rules:
        what = f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"
        expr = rule["expr"]
        labels_seen: set[str] = set()
        for name, matchers in selectors(expr):
            if name in recorded:
                continue
            if name not in cache:
                cache[name] = prom.series(name)
            series = cache[name]
            checked += 1
            if not series:
                errors.append(f"{what}: metric {name} is not exported")
                continue
            for s in series:
                labels_seen.update(s)
            for label, op, value in matchers:
                have = [s for s in series if label in s]
                if not have:
                    errors.append(f"{what}: {name} has no label {label}")
                elif op == "=" and not any(s[label] == value for s in have):
                    errors.append(f'{what}: no {name}{{{label}="{value}"}} series')
        for label in grouping_labels(expr) - TARGET_LABELS:
            if labels_seen and label not in labels_seen:
                errors.append(f"{what}: aggregates by {label}, which none of its metrics has")
    print(f"[check-monitoring] rules: {len(rules)} rules, {checked} selectors exist with "
          "their labels")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", type=pathlib.Path,
                        default=REPO / "deploy" / "grafana" / "rogatory-overview.json")
    parser.add_argument("--rules", type=pathlib.Path,
                        default=REPO / "deploy" / "prometheus" / "rules" / "rogatory-alerts.yaml")
    parser.add_argument("--prometheus", default="", help="Prometheus base URL")
    parser.add_argument("--wait", type=float, default=60.0)
    args = parser.parse_args()

    dashboard = json.loads(args.dashboard.read_text(encoding="utf-8"))
    rules = load_rules(args.rules)
    errors = check_static(dashboard, rules)
    alerts = sum(1 for r in rules if "alert" in r)
    print(f"[check-monitoring] static: {len(dashboard['panels'])} panels provision "
          f"(datasource, namespace, job variables); {alerts} alerts with runbooks")
    if args.prometheus and not errors:
        prom = Prometheus(args.prometheus)
        errors += check_panels(prom, dashboard, args.wait)
        errors += check_rule_selectors(prom, rules)
    for e in errors:
        print(f"[check-monitoring] FAILED: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
