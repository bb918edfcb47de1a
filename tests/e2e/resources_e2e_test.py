#!/usr/bin/python3
"""What callers without a token can make a service spend: metrics series and log lines.

Run by ctest (labels e2e, security) as::

    /usr/bin/python3 tests/e2e/resources_e2e_test.py --bin-dir <build>/bin [unittest args]

A real rogatory-routing binary with token authentication (the development key set) and
its own redis-server. Raw gRPC calls with no token:

* 5,000 calls to method names the service does not serve leave its /metrics page within
  1 MB of its size before (issue 16, item 9): unknown methods share one label value.
* 200 calls, half well-formed and half whose bytes do not parse, write at most a few log
  lines (issue 16, item 12): such failures are summarized, rate-limited, not logged one
  line each.

Bounds are on sizes and counts, never on timings. Process handling comes from
intake_e2e_test.py.
"""

from __future__ import annotations

import pathlib
import sys
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import grpc  # noqa: E402
import intake_e2e_test as base  # noqa: E402  (processes, Redis, services)

rc = base.rc

#: The metrics page may grow by less than this after the unknown-method calls.
METRICS_GROWTH_BOUND = 1 << 20
UNKNOWN_METHOD_CALLS = 5000
#: Calls without a token in the log test, and the log lines they may cause at most.
UNAUTHENTICATED_CALLS = 200
LOG_LINE_BOUND = 5

GET_DECISION = f"/{rc.ROUTING_SERVICE}/GetRoutingDecision"


def _identity(data: bytes) -> bytes:
    return data


def invalid_utf8_request() -> bytes:
    """Field 1 (request_id, a string) holding bytes that are not UTF-8: does not parse."""
    value = b"\xff\xfe\xfd"
    return b"\x0a" + bytes([len(value)]) + value


def well_formed_request() -> bytes:
    value = str(uuid.uuid4()).encode()
    return b"\x0a" + bytes([len(value)]) + value


class ResourcesE2ETest(base.E2ETestCase):
    SERVICES = ("routing",)

    def setUp(self):
        self.routing = self.services["routing"]
        self.channel = grpc.insecure_channel(self.routing.addr)
        self.addCleanup(self.channel.close)

    def metrics_page(self) -> bytes:
        with urllib.request.urlopen(self.routing.metrics_url, timeout=10) as response:
            return response.read()

    def raw_calls(self, methods_and_bodies, expect: set[grpc.StatusCode]) -> None:
        """Raw unary calls without a token, 200 in flight at a time; each must fail with
        one of `expect`."""
        batch = []

        def drain():
            for method, future in batch:
                try:
                    future.result()
                    self.fail(f"{method} answered OK without a token")
                except grpc.RpcError as error:
                    self.assertIn(error.code(), expect, f"{method}: {error.details()}")
            batch.clear()

        for method, body in methods_and_bodies:
            call = self.channel.unary_unary(method, request_serializer=_identity,
                                            response_deserializer=_identity)
            batch.append((method, call.future(body, timeout=30)))
            if len(batch) >= 200:
                drain()
        drain()

    def log_lines(self) -> list[str]:
        return self.routing.log_path.read_text(errors="replace").splitlines()

    def test_unknown_methods_do_not_grow_the_metrics_page(self):
        # One call of a served method first, so its series exist before the baseline.
        self.raw_calls([(GET_DECISION, well_formed_request())],
                       {grpc.StatusCode.UNAUTHENTICATED})
        before = self.metrics_page()
        token = uuid.uuid4().hex[:8]
        self.raw_calls(
            ((f"/probe{token}.Service{i}/Method{i}" if i % 2 else
              f"/{rc.ROUTING_SERVICE}/NoSuch{token}{i}", b"")
             for i in range(UNKNOWN_METHOD_CALLS)),
            {grpc.StatusCode.UNIMPLEMENTED})
        after = self.metrics_page()
        self.assertFalse(token.encode() in after,
                         f"the probe's method names are label values ({len(after)} bytes)")
        self.assertIn(b'grpc_method="unknown"', after)
        self.assertLess(len(after) - len(before), METRICS_GROWTH_BOUND,
                        f"/metrics grew from {len(before)} to {len(after)} bytes")

    def test_calls_without_a_token_do_not_write_a_line_each(self):
        # Every call of the test is in flight or answered once raw_calls returns, and a
        # line is written before its call is answered: counting then sees every line.
        self.raw_calls([(GET_DECISION, well_formed_request())],
                       {grpc.StatusCode.UNAUTHENTICATED})
        before = len(self.log_lines())
        calls = []
        for i in range(UNAUTHENTICATED_CALLS):
            calls.append((GET_DECISION,
                          invalid_utf8_request() if i % 2 else well_formed_request()))
        self.raw_calls(calls, {grpc.StatusCode.UNAUTHENTICATED,
                               grpc.StatusCode.INVALID_ARGUMENT})
        lines = self.log_lines()
        new_lines = lines[before:]
        self.assertLessEqual(len(new_lines), LOG_LINE_BOUND, "\n".join(new_lines[:20]))
        # They are not silent either: a summary names the kind of refusal.
        self.assertTrue([line for line in lines if "(summary)" in line
                         and '"kind":"unauthenticated"' in line], "no summary line")


if __name__ == "__main__":
    sys.exit(base.run_tests("rogatory-resources-", __doc__.splitlines()[0]))
