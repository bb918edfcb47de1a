#!/usr/bin/python3
"""Fault test: Redis paused (CLIENT PAUSE ALL) for longer than the RPC deadline.

Four issuing authorities submit EIOs with a CALL_TIMEOUT_S deadline (retrying UNAVAILABLE
and DEADLINE_EXCEEDED with the same request_id) while Redis is paused for PAUSE_MS. During
the pause:

- every SubmitRequest must end promptly, within its deadline plus MARGIN_S, with
  UNAVAILABLE or DEADLINE_EXCEEDED (or OK if it got through before the pause): nothing
  hangs;
- every service's liveness (health "") answers SERVING, each check within 1 s.

After the pause, new submissions succeed again, and every submission acknowledged (before,
during or after the pause, including those first answered with an error and retried) is in
intake and fully processed exactly once. Prints ``FAULT redis-pause: ...``.

Run by ctest (label ``fault``) as::

    /usr/bin/python3 tests/fault/redis_pause_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import sys
import threading
import time
import unittest

import fault_harness as fh

grpc, rc = fh.grpc, fh.rc
PAUSE_MS = 5000
CALL_TIMEOUT_S = 1.5
MARGIN_S = 0.5
LOAD_BEFORE_S = 4.0
LOAD_AFTER_S = 6.0


class RedisPauseTest(unittest.TestCase):
    def setUp(self):
        self.cluster = fh.Cluster("redis-pause")
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def test_callers_fail_fast_health_answers_and_all_recovers(self):
        cluster = self.cluster
        load = fh.LoadGenerator(cluster, threads=4, rate=5.0, call_timeout=CALL_TIMEOUT_S)
        health: list[tuple[str, float, str]] = []  # (service, seconds, outcome)
        probing = threading.Event()

        def probe_liveness():
            channels = {n: rc.connect(s.addr) for n, s in cluster.services.items()}
            try:
                while probing.is_set():
                    for name, channel in channels.items():
                        started = time.monotonic()
                        try:
                            outcome = rc.health_check(channel, "", timeout=1.0)
                        except grpc.RpcError as error:
                            outcome = error.code().name
                        health.append((name, time.monotonic() - started, outcome))
                    time.sleep(0.1)
            finally:
                for channel in channels.values():
                    channel.close()

        load.start()
        time.sleep(LOAD_BEFORE_S)
        probing.set()
        prober = threading.Thread(target=probe_liveness, daemon=True)
        prober.start()
        self.assertEqual(cluster.redis.command("CLIENT", "PAUSE", str(PAUSE_MS), "ALL"), "OK")
        paused_at = time.monotonic()
        pause_end = paused_at + PAUSE_MS / 1000.0
        fh.log(f"Redis paused for {PAUSE_MS} ms")
        time.sleep(max(0.0, pause_end - time.monotonic()))
        probing.clear()
        prober.join(timeout=10)
        # After the pause: how long until a new submission is acknowledged again.
        recovered_after = None
        deadline = time.monotonic() + 15.0
        while recovered_after is None and time.monotonic() < deadline:
            fresh = [s for s in load.samples if s.start >= pause_end and s.code == "OK"]
            if fresh:
                recovered_after = min(s.start + s.seconds for s in fresh) - pause_end
            else:
                time.sleep(0.05)
        time.sleep(LOAD_AFTER_S)
        load.stop()
        late_acks = load.finish()
        outcome = fh.verify_processed(cluster, load)

        during = [s for s in load.samples if paused_at <= s.start < pause_end - CALL_TIMEOUT_S]
        slow = [s for s in during if s.seconds > CALL_TIMEOUT_S + MARGIN_S]
        wrong = [s for s in during if s.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "OK")]
        failed_fast = [s for s in during if s.code != "OK"]
        liveness_bad = [h for h in health if h[2] != "SERVING" or h[1] >= 1.0]
        print(fh.figures_line(
            "redis-pause", load, outcome, acknowledged_after_load=late_acks,
            pause_ms=PAUSE_MS, call_deadline_s=CALL_TIMEOUT_S,
            calls_during_pause=len(during),
            failed_during_pause=len(failed_fast),
            slowest_call_during_pause_s=round(max((s.seconds for s in during), default=0), 2),
            liveness_checks=len(health),
            slowest_liveness_s=round(max((h[1] for h in health), default=0), 3),
            recovered_after_s=None if recovered_after is None else round(recovered_after, 2),
            settle_s=round(outcome.settle_seconds, 1)), flush=True)
        fh.log(f"calls by outcome: {load.codes()}; during the pause: "
               f"{sorted({s.code for s in during})}")
        self.assertGreater(len(during), 8, "too few calls during the pause to mean anything")
        self.assertEqual(len(failed_fast), len(during),
                         "a submission succeeded while Redis was paused")
        self.assertEqual([(s.code, round(s.seconds, 2)) for s in wrong + slow], [],
                         f"calls during the pause must end within {CALL_TIMEOUT_S + MARGIN_S}s "
                         "with UNAVAILABLE or DEADLINE_EXCEEDED")
        self.assertEqual(liveness_bad[:10], [], "liveness stalled or left SERVING")
        self.assertEqual({h[0] for h in health}, set(cluster.services),
                         "some service's liveness was never sampled")
        self.assertIsNotNone(recovered_after, "no submission succeeded after the pause")
        self.assertEqual(load.unexpected, [], "submissions failed with unexpected errors")
        self.assertEqual(len(outcome.lost), 0, outcome.summary())
        self.assertEqual(len(outcome.duplicates), 0, outcome.summary())


def main() -> int:
    return fh.base.run_tests("rogatory-fault-redis-pause-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
