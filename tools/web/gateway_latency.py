#!/usr/bin/python3
"""Measures what rogatory-gateway adds to a call: GetRequest natively (Python gRPC, one
channel) and through the gateway (Connect JSON and gRPC-Web binary, one keep-alive HTTP/1.1
connection each), sequentially, against the same private Redis + rogatory-intake.

    /usr/bin/python3 tools/web/gateway_latency.py [--bin-dir build/bin] [--calls 500]

Prints median, p90 and p99 per path and the difference of medians. A figure for the README,
never a test: it depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import intake_e2e_test as base  # noqa: E402
import gateway_support as gw  # noqa: E402

rc = base.rc


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))] * 1000  # noqa: E731
    return f"median {statistics.median(s) * 1000:6.2f} ms  p90 {pick(0.9):6.2f} ms  p99 {pick(0.99):6.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", type=pathlib.Path, default=REPO / "build" / "bin")
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    base.BIN_DIR = args.bin_dir.resolve()
    gw.require_web_build()
    work = pathlib.Path(tempfile.mkdtemp(prefix="rogatory-gw-latency-"))
    redis = base.RedisServer(work)
    redis.start()
    ports = {n: base.free_port() for n in ("intake", "routing", "deadlines", "notification")}
    intake = base.ServiceProcess("intake", redis, work, ports)
    intake.start()
    gateway = gw.GatewayProcess(work, ports)
    gateway.start()
    try:
        issuer = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))
        token = issuer.bearer_token()
        channel = rc.connect(intake.addr, issuer)
        stub = rc.stubs().intake_grpc.IntakeServiceStub(channel)
        pb = rc.stubs()
        rid = stub.SubmitRequest(pb.intake.SubmitRequestRequest(
            request_id=str(uuid.uuid4()), content=rc.example_eio_content()), timeout=10).request.id
        get = pb.intake.GetRequestRequest(id=rid)

        def native() -> None:
            stub.GetRequest(get, timeout=5)

        conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
        body_json = json.dumps({"id": rid}).encode()
        headers_json = {"content-type": "application/json", "authorization": f"Bearer {token}"}

        def connect_json() -> None:
            conn.request("POST", "/rogatory.intake.v1.IntakeService/GetRequest", body_json,
                         headers_json)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status

        conn2 = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
        body_web = gw.frame(get.SerializeToString())
        headers_web = {"content-type": "application/grpc-web+proto",
                       "authorization": f"Bearer {token}"}

        def grpc_web() -> None:
            conn2.request("POST", "/rogatory.intake.v1.IntakeService/GetRequest", body_web,
                          headers_web)
            resp = conn2.getresponse()
            resp.read()
            assert resp.status == 200, resp.status

        results = {}
        for name, fn in (("native gRPC", native), ("gateway, Connect JSON", connect_json),
                         ("gateway, gRPC-Web binary", grpc_web)):
            for _ in range(50):  # warm-up: connections, JIT
                fn()
            samples = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t0)
            results[name] = samples
            print(f"{name:26s} {percentiles(samples)}  ({args.calls} sequential calls)")
        base_median = statistics.median(results["native gRPC"])
        for name in ("gateway, Connect JSON", "gateway, gRPC-Web binary"):
            print(f"added by the gateway ({name.split(', ')[1]}): "
                  f"{(statistics.median(results[name]) - base_median) * 1000:+.2f} ms (median)")
        channel.close()
    finally:
        gateway.stop()
        intake.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
