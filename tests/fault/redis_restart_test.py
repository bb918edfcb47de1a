#!/usr/bin/python3
"""Fault test: redis-server killed with SIGKILL and restarted (AOF, appendfsync always)
under a steady load.

Redis runs with ``appendonly yes`` and ``appendfsync always``, so every write it answered
is on disk before the answer. Four issuing authorities submit EIOs (retrying UNAVAILABLE
and DEADLINE_EXCEEDED with the same request_id) while redis-server is killed twice and
started again on the same port and data directory after DOWN_SECONDS. The four services
are never restarted: their readiness must go NOT_SERVING and back to SERVING by itself,
every acknowledged submission must be in intake and fully processed exactly once. Prints
``FAULT redis-restart: submissions=N acknowledged=N ... redis_kills=2 lost=0 duplicates=0``.

Run by ctest (label ``fault``) as::

    /usr/bin/python3 tests/fault/redis_restart_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import sys
import time
import unittest

import fault_harness as fh

rc = fh.rc
LOAD_SECONDS = 24.0
KILL_AT_S = (5.0, 14.0)
DOWN_SECONDS = 2.0


class RedisRestartTest(unittest.TestCase):
    def setUp(self):
        self.cluster = fh.Cluster("redis-restart",
                                  redis_args=("--appendfsync", "always"))
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def test_no_acknowledged_submission_lost_and_services_recover_without_restart(self):
        cluster = self.cluster
        pids = cluster.pids()
        load = fh.LoadGenerator(cluster, threads=4, rate=5.0)
        begin = time.monotonic()
        load.start()
        recoveries = []  # seconds from redis-server's restart to all four SERVING again
        for at in KILL_AT_S:
            time.sleep(max(0.0, begin + at - time.monotonic()))
            cluster.kill_redis()
            fh.log(f"killed redis-server at {time.monotonic() - begin:.1f}s")
            for service in cluster.services.values():
                service.wait_health(service.service_name, "NOT_SERVING", timeout=5.0)
                self.assertEqual(rc.health_check(service.addr, "", timeout=1.0), "SERVING",
                                 f"{service.name}: liveness left SERVING with Redis down")
            time.sleep(DOWN_SECONDS)
            cluster.redis.start()
            restarted = time.monotonic()
            for service in cluster.services.values():
                service.wait_health(service.service_name, "SERVING", timeout=20.0)
            recoveries.append(round(time.monotonic() - restarted, 2))
            fh.log(f"redis-server back; all services SERVING after {recoveries[-1]}s")
        time.sleep(max(0.0, begin + LOAD_SECONDS - time.monotonic()))
        load.stop()
        late_acks = load.finish()
        outcome = fh.verify_processed(cluster, load)

        print(fh.figures_line(
            "redis-restart", load, outcome, acknowledged_after_load=late_acks,
            retried_calls=load.retried_calls, redis_kills=len(KILL_AT_S),
            ready_again_s=max(recoveries), notifications=outcome.notifications,
            settle_s=round(outcome.settle_seconds, 1)), flush=True)
        fh.log(f"calls by outcome: {load.codes()}")
        self.assertEqual(cluster.pids(), pids, "a service was restarted")
        self.assertTrue(all(s.process.running() for s in cluster.services.values()),
                        "a service died")
        self.assertEqual(load.unexpected, [], "submissions failed with unexpected errors")
        self.assertGreater(len(load.acked), 100, "too little load to mean anything")
        self.assertEqual(len(outcome.lost), 0, outcome.summary())
        self.assertEqual(len(outcome.duplicates), 0, outcome.summary())


def main() -> int:
    return fh.base.run_tests("rogatory-fault-redis-restart-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
