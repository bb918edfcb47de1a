#!/usr/bin/python3
"""Fault test: readiness says SERVING only while calls can succeed (issue 22, item 12).

About 10 s after a Redis restart, with readiness SERVING, a plain GetRequest once answered
UNAVAILABLE "the audit log cannot be written; retry later" while every service logged
"redis did not answer within 500ms": every call, reads included, writes its audit record
(an EVALSHA that appends to a stream), while readiness only sent PING, which Redis answers
in cases where writes fail or stall. These tests run intake (and, for the restarts, its
three siblings under load) against a private redis-server and check through the public
gRPC API that:

- after each of several restarts (with the default 10 s relay leases and 1 s probes),
  reads issued once readiness says SERVING, and for the next 20 s while it says SERVING,
  either succeed or are followed at once by NOT_SERVING: readiness sees what the calls
  see, even a stall it cannot foresee;
- while Redis is loading its data (LOADING), readiness is NOT_SERVING;
- while Redis answers PING but refuses writes (maxmemory reached) or holds them (CLIENT
  PAUSE WRITE, what a stalled disk under appendfsync always looks like to a client),
  readiness is NOT_SERVING, and SERVING again afterwards with reads that succeed.

Run by ctest (label ``fault``) as::

    /usr/bin/python3 tests/fault/redis_readiness_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import sys
import time
import unittest
import uuid

import fault_harness as fh

rc = fh.rc
base = fh.base
grpc = fh.grpc

ISSUER = base.ISSUER
RESTARTS = 3
READS_AFTER_READY = 40
WATCH_AFTER_RESTART_S = 20.0


class ReadinessTest(unittest.TestCase):
    def setUp(self):
        self.cluster = fh.Cluster("redis-readiness", redis_args=("--appendfsync", "always"))
        # The defaults, as in the incident: relay leases of 10 s (the harness shortens them)
        # and a readiness probe every second.
        for service in self.cluster.services.values():
            service.process.argv = [a for a in service.process.argv
                                    if a not in ("--relay-lease=2s",
                                                 "--health-probe-interval=200ms")]
        self.addCleanup(self.cluster.stop)
        self.cluster.start()
        self.intake = self.cluster.services["intake"]
        channel = rc.connect(self.intake.addr, ISSUER)
        self.addCleanup(channel.close)
        self.stub = rc.stubs().intake_grpc.IntakeServiceStub(channel)
        pb = rc.stubs()
        self.ids = [
            self.stub.SubmitRequest(pb.intake.SubmitRequestRequest(
                request_id=str(uuid.uuid4()), content=rc.example_eio_content()),
                timeout=5.0).request.id
            for _ in range(3)]

    def readiness(self) -> str:
        try:
            return rc.health_check(self.intake.addr, self.intake.service_name, timeout=1.0)
        except grpc.RpcError as error:
            return error.code().name

    def read(self, i: int):
        """One GetRequest; None when it succeeded, else (code name, details)."""
        pb = rc.stubs()
        try:
            self.stub.GetRequest(pb.intake.GetRequestRequest(id=self.ids[i % len(self.ids)]),
                                 timeout=3.0)
            return None
        except grpc.RpcError as error:
            return (error.code().name, error.details())

    def noticed(self, within: float = 2.5) -> bool:
        """Whether readiness says NOT_SERVING at some point in the next ``within`` s."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.readiness() != "SERVING":
                return True
            time.sleep(0.02)
        return False

    def wait_readiness(self, want: str, timeout: float) -> float:
        """Polls intake's readiness until ``want``; returns the seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            if self.readiness() == want:
                return time.monotonic() - start
            if time.monotonic() >= deadline:
                self.fail(f"intake readiness not {want} within {timeout:.0f}s:\n"
                          + self.intake.process.log_tail())
            time.sleep(0.05)

    def test_reads_succeed_once_readiness_says_serving_after_restarts(self):
        load = fh.LoadGenerator(self.cluster, threads=4, rate=5.0)
        load.start()
        self.addCleanup(load.stop)
        failures = []  # (restart, seconds after restart, code, details): not noticed
        noticed = []   # the same, for failures readiness reported within 2.5 s
        for restart in range(RESTARTS):
            self.cluster.kill_redis()
            self.wait_readiness("NOT_SERVING", 5.0)
            time.sleep(1.0)  # an outage of a second, as an orchestrator's restart would be
            self.cluster.redis.start()
            restarted = time.monotonic()

            # Readiness is sampled, so it cannot foresee a stall: a read that fails while
            # readiness said SERVING is tolerated only if readiness then goes NOT_SERVING
            # within 2.5 s (the next probe, a second later, and its timeout). The old
            # readiness (PING once a second) did not see the calls' timeouts.
            def check(before: str, outcome) -> None:
                if outcome is None or before != "SERVING":
                    return
                entry = (restart, round(time.monotonic() - restarted, 2), *outcome)
                (noticed if self.noticed() else failures).append(entry)

            self.wait_readiness("SERVING", 20.0)
            for i in range(READS_AFTER_READY):
                check("SERVING", self.read(i))
            # Keep reading for the next seconds (the incident came ~10 s after the restart,
            # when the relays' lanes resumed all at once after their leases ran out).
            i = 0
            while time.monotonic() - restarted < WATCH_AFTER_RESTART_S:
                before = self.readiness()
                check(before, self.read(i))
                i += 1
            fh.log(f"restart {restart + 1}: {READS_AFTER_READY + i} reads; failures readiness "
                   f"noticed {noticed}; not noticed {failures}")
        self.assertEqual(failures, [], "reads failed while readiness said SERVING")

    def test_loading_redis_is_not_serving(self):
        redis = self.cluster.redis
        # Enough keys that loading them with a delay per key takes seconds; the AOF is
        # rewritten so they are in its RDB preamble, which key-load-delay slows down.
        redis.command("EVAL", "for i = 1, 20000 do redis.call('SET', 'pad:' .. i, "
                      "'xxxxxxxxxxxxxxxx') end return 1", "0")
        redis.command("BGREWRITEAOF")
        def rewritten() -> bool:
            info = redis.command("INFO", "persistence")
            return "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info

        base._poll(rewritten, 30.0, "AOF rewrite done")
        self.cluster.kill_redis()
        self.wait_readiness("NOT_SERVING", 5.0)
        argv = list(redis.process.argv)
        redis.process.argv.extend(["--key-load-delay", "250",
                                   "--loading-process-events-interval-bytes", "1024"])
        redis.process.start()
        redis.process.argv[:] = argv
        def still_loading() -> bool:
            try:
                redis.command("PING", timeout=1.0)
                return False
            except (RuntimeError, OSError) as error:
                return "LOADING" in str(error)

        samples = []  # readiness while Redis says LOADING, after a probe interval
        loading_since = None
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            try:
                if redis.command("PING", timeout=1.0) == "PONG":
                    break
            except (RuntimeError, OSError) as error:
                if "LOADING" in str(error):  # else: not listening yet
                    loading_since = loading_since or time.monotonic()
                    # Past a probe interval (1 s) and its timeout, readiness must know.
                    if time.monotonic() - loading_since > 2.0:
                        sample = self.readiness()
                        if still_loading():  # the sample was taken while loading
                            samples.append(sample)
            time.sleep(0.05)
        self.assertIsNotNone(loading_since, "redis-server was never seen LOADING")
        self.assertTrue(samples, "no readiness sample while loading")
        self.assertEqual(set(samples), {"NOT_SERVING"},
                         f"readiness while Redis was loading: {samples}")
        self.wait_readiness("SERVING", 20.0)
        self.assertEqual([o for o in map(self.read, range(10)) if o is not None], [])

    def test_redis_refusing_writes_is_not_serving(self):
        redis = self.cluster.redis
        self.wait_readiness("SERVING", 5.0)
        redis.command("CONFIG", "SET", "maxmemory", "1")
        try:
            self.assertEqual(redis.command("PING"), "PONG")
            self.wait_readiness("NOT_SERVING", 5.0)
            outcome = self.read(0)
            self.assertIsNotNone(outcome, "a read succeeded although its audit record "
                                 "cannot be written")
        finally:
            redis.command("CONFIG", "SET", "maxmemory", "0")
        self.wait_readiness("SERVING", 10.0)
        self.assertEqual([o for o in map(self.read, range(10)) if o is not None], [])

    def test_redis_holding_writes_is_not_serving(self):
        redis = self.cluster.redis
        self.wait_readiness("SERVING", 5.0)
        redis.command("CLIENT", "PAUSE", "5000", "WRITE")
        paused_until = time.monotonic() + 5.0
        self.assertEqual(redis.command("PING"), "PONG")
        took = self.wait_readiness("NOT_SERVING", 4.0)
        self.assertLess(time.monotonic(), paused_until, f"noticed only after {took:.1f}s")
        self.wait_readiness("SERVING", 15.0)
        self.assertEqual([o for o in map(self.read, range(10)) if o is not None], [])


def main() -> int:
    return base.run_tests("rogatory-fault-redis-readiness-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
