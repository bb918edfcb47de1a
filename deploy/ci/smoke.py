#!/usr/bin/python3
"""Smoke check of a running Rogatory deployment (the compose stack in CI).

Waits until each service answers SERVING on liveness ("") and on its readiness name,
submits one European Investigation Order (made-up data) to intake and reads it back, and,
with --prometheus, waits until Prometheus holds the gRPC latency histogram series the
Grafana dashboard queries (grpc_server_handling_seconds_bucket) for intake's
SubmitRequest. Prints only ids, statuses and counts. Exits 1 on any failure.

    /usr/bin/python3 deploy/ci/smoke.py --intake 127.0.0.1:25051 \\
        --routing 127.0.0.1:25052 --deadlines 127.0.0.1:25053 \\
        --notification 127.0.0.1:25054 [--prometheus http://127.0.0.1:29090]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "pyclient"))
import rogatory_client as rc  # noqa: E402

JUDGE = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))

#: Series the dashboard's latency panels need, per (query, what it shows).
DASHBOARD_QUERIES = (
    ('grpc_server_handling_seconds_bucket{grpc_service="rogatory.intake.v1.IntakeService",'
     'grpc_method="SubmitRequest"}', "intake SubmitRequest latency buckets"),
    ('histogram_quantile(0.99, sum by (grpc_service, grpc_method, le) '
     '(rate(grpc_server_handling_seconds_bucket[1m])))', "p99 per service and method"),
    ("sum by (grpc_service) (rate(grpc_server_handled_total[1m]))", "request rate"),
    ("rogatory_redis_up", "Redis reachability per instance"),
)


def prometheus_query(base: str, query: str) -> list:
    url = f"{base.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {body}")
    return body["data"]["result"]


def dashboard_queries(path: pathlib.Path) -> list[tuple[str, str]]:
    """Every query of the Grafana dashboard, with its variables set to "all"."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (target["expr"].replace("$__rate_interval", "1m")
                    .replace("$service", "rogatory\\\\..*").replace("$method", ".*")
                    .replace("$namespace", ".*").replace("$job", ".*"))
            queries.append((expr, f"dashboard panel {panel['title']!r}"))
    return queries


def check_dashboard(base: str, path: pathlib.Path) -> None:
    """Every dashboard query is valid PromQL for this Prometheus; the gRPC panels (whose
    metrics every service exports) show data."""
    empty = []
    for query, what in dashboard_queries(path):
        result = prometheus_query(base, query)  # raises on a PromQL error
        # Every service exports these (panels filtered on error codes may rightly be empty).
        if "grpc_server_" in query and "grpc_code" not in query and not result:
            raise AssertionError(f"{what} shows no data: {query}")
        if not result:
            empty.append(what)
    print(f"prometheus: {len(dashboard_queries(path))} dashboard queries valid; "
          f"without data yet (metrics not exported yet or no traffic): {len(empty)}")
    for what in sorted(set(empty)):
        print(f"   {what}")


def wait_for_prometheus(base: str, timeout: float) -> None:
    """Waits until every dashboard query returns at least one series."""
    for query, what in DASHBOARD_QUERIES:
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = prometheus_query(base, query)
            except OSError:
                result = []
            if result:
                print(f"prometheus: {what}: {len(result)} series")
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus has no series for {what}: {query}")
            time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intake", required=True)
    parser.add_argument("--routing", required=True)
    parser.add_argument("--deadlines", required=True)
    parser.add_argument("--notification", required=True)
    parser.add_argument("--prometheus", default="", help="Prometheus base URL")
    parser.add_argument("--dashboard", default=str(
        pathlib.Path(__file__).resolve().parents[1] / "grafana" / "rogatory-overview.json"),
        help="Grafana dashboard whose queries are checked against Prometheus")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args()

    pb = rc.stubs()
    services = (
        ("intake", args.intake, rc.INTAKE_SERVICE),
        ("routing", args.routing, rc.ROUTING_SERVICE),
        ("deadlines", args.deadlines, rc.DEADLINE_SERVICE),
        ("notification", args.notification, rc.NOTIFICATION_SERVICE),
    )
    for name, addr, full_name in services:
        for service_name in ("", full_name):
            rc.wait_for_health(addr, service_name, "SERVING", timeout=args.wait)
        print(f"health: {name:<13} {addr:<16} liveness SERVING, {full_name} SERVING")

    with rc.connect(args.intake, JUDGE) as channel:
        intake = pb.intake_grpc.IntakeServiceStub(channel)
        submitted = intake.SubmitRequest(
            pb.intake.SubmitRequestRequest(request_id=str(uuid.uuid4()),
                                           content=rc.example_eio_content()),
            timeout=10.0).request
        if not submitted.id:
            raise AssertionError("SubmitRequest returned no id")
        read = intake.GetRequest(pb.intake.GetRequestRequest(id=submitted.id),
                                 timeout=10.0).request
        if read.id != submitted.id:
            raise AssertionError("GetRequest returned another request")
        print(f"submit: {submitted.id} {pb.types.RequestStatus.Name(read.status)}")

    if args.prometheus:
        wait_for_prometheus(args.prometheus, args.wait)
        check_dashboard(args.prometheus, pathlib.Path(args.dashboard))
    print("smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
