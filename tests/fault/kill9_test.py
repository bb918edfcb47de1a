#!/usr/bin/python3
"""Fault test: kill -9 of each service at random moments under a steady load.

Four issuing authorities submit EIOs (AIP-155 request_id, retrying UNAVAILABLE and
DEADLINE_EXCEEDED with the same request_id) for LOAD_SECONDS while each of the four
services is killed with SIGKILL twice, at a random moment of its own time slot, and
started again at once (same ports and settings, as an orchestrator would). Then every
acknowledged submission must be found in intake and fully processed exactly once: one
ROUTING_DECIDED, its deadline started once per rule, each notification in each authority's
inbox once, and no request beyond the submissions. Prints a line
``FAULT kill9: submissions=N acknowledged=N ... killed=K lost=0 duplicates=0``.

Run by ctest (label ``fault``) as::

    /usr/bin/python3 tests/fault/kill9_test.py --bin-dir <build>/bin

FAULT_SEED=<n> in the environment replays one kill schedule (the seed is printed).
"""

from __future__ import annotations

import os
import random
import sys
import time
import unittest

import fault_harness as fh

LOAD_SECONDS = 40.0
KILLS_PER_SERVICE = 2
#: The first kill slot starts this long after the load (so there is work in flight).
FIRST_SLOT_S = 2.0


class Kill9Test(unittest.TestCase):
    def setUp(self):
        self.cluster = fh.Cluster("kill9")
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def test_every_acknowledged_submission_is_processed_exactly_once(self):
        seed = int(os.environ.get("FAULT_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        # Notification's two kills go in the first half: fan-out entries its killed
        # process had read are claimed by the next one after 30 s (by design), and the
        # test should not wait longer than that after the load.
        slots = 4 * KILLS_PER_SERVICE
        early = fh.shuffled(["notification"] * KILLS_PER_SERVICE
                            + ["intake", "routing"], rng)
        late = fh.shuffled(["intake", "routing", "deadlines", "deadlines"], rng)
        schedule = early + late
        assert len(schedule) == slots
        slot = (LOAD_SECONDS - FIRST_SLOT_S - 3.0) / slots
        fh.log(f"seed={seed} schedule={schedule}")

        load = fh.LoadGenerator(self.cluster, threads=4, rate=5.0)
        kills: list[tuple[str, float, float]] = []  # (service, at, seconds until ready)
        errors: list[str] = []

        # The kills and restarts run on this (the main) thread: the services are started
        # with a parent-death signal, which Linux ties to the thread that started them.
        load.start()
        begin = time.monotonic()
        for index, name in enumerate(schedule):
            at = begin + FIRST_SLOT_S + slot * index + rng.uniform(0.0, slot * 0.6)
            time.sleep(max(0.0, at - time.monotonic()))
            killed_at = time.monotonic()
            self.cluster.kill(name)
            time.sleep(rng.uniform(0.0, 0.5))  # down a moment, as in a real restart
            try:
                self.cluster.services[name].start()
            except AssertionError as error:
                errors.append(str(error))
                break
            kills.append((name, round(killed_at - begin, 1),
                          round(time.monotonic() - killed_at, 2)))
            fh.log(f"killed {name} at {kills[-1][1]}s, ready again after {kills[-1][2]}s")
        time.sleep(max(0.0, begin + LOAD_SECONDS - time.monotonic()))
        load.stop()
        self.assertEqual(errors, [], "a killed service did not come back")
        late_acks = load.finish()
        outcome = fh.verify_processed(self.cluster, load)

        line = fh.figures_line(
            "kill9", load, outcome, acknowledged_after_load=late_acks,
            retried_calls=load.retried_calls, killed=len(kills),
            notifications=outcome.notifications,
            settle_s=round(outcome.settle_seconds, 1), seed=seed)
        fh.log(f"calls by outcome: {load.codes()}; kills (service, at s, ready after s): "
               f"{kills}")
        print(line, flush=True)
        self.assertEqual(load.unexpected, [], "submissions failed with unexpected errors")
        self.assertEqual(len(kills), 4 * KILLS_PER_SERVICE)
        self.assertGreater(len(load.acked), 100, "too little load to mean anything")
        self.assertEqual(len(outcome.lost), 0, outcome.summary())
        self.assertEqual(len(outcome.duplicates), 0, outcome.summary())


def main() -> int:
    return fh.base.run_tests("rogatory-fault-kill9-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
