#!/usr/bin/python3
"""The data layout recorded in Redis, with the real intake binary and rogatory-migrate
(issue 17, item 9; issue 21: "changing redisShards orphans existing data").

- A first start records the layout (version and shard count).
- A start with another shard count exits 1 naming both counts, and leaves the record.
- Data written before layouts were recorded (no record) makes a service refuse to start
  and name rogatory-migrate; `rogatory-migrate apply` refuses a shard count the data does
  not fit, records the right one, and the service then starts and serves the request it
  accepted before, unchanged.
- A service started before its Redis waits for the layout check (it gives up after 60 s)
  and serves once Redis answers.

Run by ctest as::

    /usr/bin/python3 tests/e2e/data_layout_e2e_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, ports)

LAYOUT_KEY = "rg:{meta}:layout"
EXIT_TIMEOUT_S = 30.0


class DataLayoutTest(base.E2ETestCase):
    SERVICES = ()

    def intake(self, shards: int) -> base.ServiceProcess:
        ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        service = base.ServiceProcess("intake", self.redis, self.workdir, ports)
        service.process.argv.append(f"--redis-shards={shards}")
        self.addCleanup(service.stop)
        return service

    def run_intake_expecting_refusal(self, shards: int) -> str:
        service = self.intake(shards)
        service.start(wait=False)
        code = service.process.wait(EXIT_TIMEOUT_S)
        log = service.log_path.read_text(errors="replace")
        self.assertEqual(code, 1, f"intake with {shards} shards exited with {code}:\n{log[-3000:]}")
        errors = [json.loads(line) for line in log.splitlines()
                  if line.startswith("{") and '"cannot start"' in line]
        self.assertTrue(errors, f"no 'cannot start' line:\n{log[-3000:]}")
        return json.dumps(errors[-1])

    def migrate(self, *args: str) -> tuple[int, dict]:
        result = subprocess.run(
            [str(base.BIN_DIR / "rogatory-migrate"), *args, f"--redis-url={self.redis.url}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=base._child_env(), timeout=EXIT_TIMEOUT_S, check=False)
        lines = result.stdout.decode().strip().splitlines()
        self.assertTrue(lines, f"rogatory-migrate printed nothing: {result.stderr.decode()}")
        return result.returncode, json.loads(lines[-1])

    def test_layout_recorded_then_enforced_and_migrated(self):
        base._require([base.BIN_DIR / "rogatory-migrate"])
        # A new installation: the first start records the current version (4) with its 4
        # shards.
        first = self.intake(4)
        first.start()
        self.assertEqual(self.redis.command("HGET", LAYOUT_KEY, "shards"), "4")
        self.assertEqual(self.redis.command("HGET", LAYOUT_KEY, "version"), "4")
        stub = self.intake_stub(first)
        submitted = self.submit(stub)
        first.stop()

        # Another shard count would orphan the request: refused, naming both counts.
        refusal = self.run_intake_expecting_refusal(8)
        self.assertIn("4 shards", refusal)
        self.assertIn("redis-shards is 8", refusal)
        self.assertEqual(self.redis.command("HGET", LAYOUT_KEY, "shards"), "4")

        code, status = self.migrate("status")
        self.assertEqual((code, status["recorded"]), (0, {"version": 4, "shards": 4}))
        code, refused = self.migrate("apply", "--redis-shards=8")
        self.assertEqual(code, 1, refused)
        self.assertFalse(refused["ok"])

        # Data as the previous version wrote it: no record. Refused until migrated.
        self.assertEqual(self.redis.command("DEL", LAYOUT_KEY), 1)
        # A key of shard 3, so the shard count the data needs is known to be at least 4.
        self.redis.command("SET", "rg:{s3}:layout-probe", "1")
        refusal = self.run_intake_expecting_refusal(4)
        self.assertIn("rogatory-migrate", refusal)
        self.assertIsNone(self.redis.command("HGET", LAYOUT_KEY, "version"))

        code, dry = self.migrate("apply", "--redis-shards=4", "--dry-run=true")
        self.assertEqual(code, 0, dry)
        self.assertIsNone(dry["before"])
        # Record the layout, the worklist rows, the request counts, the per-shard document usage.
        self.assertEqual(len(dry["steps"]), 4)
        self.assertIsNone(self.redis.command("HGET", LAYOUT_KEY, "version"))

        code, too_few = self.migrate("apply", "--redis-shards=2")
        self.assertEqual(code, 1, too_few)
        self.assertIn("shard 3", too_few["error"])
        self.assertIsNone(self.redis.command("HGET", LAYOUT_KEY, "version"))

        code, applied = self.migrate("apply", "--redis-shards=4")
        self.assertEqual(code, 0, applied)
        self.assertEqual(applied["after"], {"version": 4, "shards": 4})
        code, again = self.migrate("apply", "--redis-shards=4")
        self.assertEqual((code, again["steps"]), (0, []))

        # Migrated: the service starts and serves what it accepted before.
        second = self.intake(4)
        second.start()
        read = self.get(self.intake_stub(second), submitted.id)
        self.assertEqual(read.content, submitted.content)
        self.assertEqual(read.id, submitted.id)

    def test_service_started_before_redis_waits_for_it_then_serves(self):
        # A pod started before its Redis: the service waits (up to 60 s) for the data
        # layout check instead of exiting, and serves once Redis answers.
        self.redis.stop()
        self.addCleanup(lambda: None if self.redis.process.running() else self.redis.start())
        service = self.intake(4)
        service.start(wait=False)

        def waiting() -> bool:
            if not service.process.running():
                raise AssertionError("intake exited while Redis was down:\n"
                                     + service.process.log_tail())
            return "waiting for Redis to check the data layout" in service.log_path.read_text(
                errors="replace")

        base._poll(waiting, EXIT_TIMEOUT_S, "intake waiting for Redis")
        self.redis.start()
        service.wait_ready()
        submitted = self.submit(self.intake_stub(service))
        self.assertEqual(self.get(self.intake_stub(service), submitted.id).id, submitted.id)


def main() -> int:
    return base.run_tests("rogatory-data-layout-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
