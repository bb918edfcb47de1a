#!/usr/bin/python3
"""End-to-end tests of a failed start: each of the four binaries exits 1 with a JSON log line
naming the cause when its gRPC port or its metrics port is taken, or a setting is bad.

Issue 22, item 11: notification used to die of SIGSEGV (exit 139) when its port was taken,
because its background threads outlived the platform they use. A failed start must always
end with a non-zero exit status, never a signal, and say why on stderr. Each case runs
several times: the crash was a race.

Run by ctest as::

    /usr/bin/python3 tests/e2e/failed_start_e2e_test.py --bin-dir <build>/bin

Reuses the process fixtures of intake_e2e_test.py (a private redis-server, so the services'
threads talk to a real Redis as they would in production).
"""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, ports)

NAMES = ("intake", "routing", "deadlines", "notification")
TRIES = 3
EXIT_TIMEOUT_S = 30.0


class FailedStartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER)]
                      + [base.BIN_DIR / f"rogatory-{n}" for n in NAMES])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix="failed-start-",
                                                    dir=base.WORK_ROOT))
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()

    def occupy(self) -> int:
        """A loopback port held by a listening socket until the test ends."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        return sock.getsockname()[1]

    def run_service(self, name: str, grpc_port: int, metrics_port: int,
                    *extra: str) -> subprocess.CompletedProcess:
        argv = [str(base.BIN_DIR / f"rogatory-{name}"),
                f"--listen=127.0.0.1:{grpc_port}",
                f"--metrics-listen=127.0.0.1:{metrics_port}",
                f"--redis-url={self.redis.url}",
                "--health-probe-interval=100ms",
                *base.AUTH_ARGS, *extra]
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=base._child_env(),
                                  timeout=EXIT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            self.fail(f"rogatory-{name} still running {EXIT_TIMEOUT_S:.0f} s after a start "
                      "that should have failed")

    def assertFailedStart(self, result: subprocess.CompletedProcess, code: int,
                          names: str) -> None:
        stderr = result.stderr.decode(errors="replace")
        self.assertEqual(result.returncode, code,
                         f"exit status {result.returncode} (negative: killed by signal "
                         f"{-result.returncode}); stderr:\n{stderr[-3000:]}")
        errors = []
        for line in stderr.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") == "error":
                errors.append(entry)
        self.assertTrue(errors, f"no JSON error line on stderr:\n{stderr[-3000:]}")
        self.assertTrue(any(names in json.dumps(entry) for entry in errors),
                        f"no JSON error line names {names!r}: {errors}")

    def test_grpc_port_taken_exits_1_naming_the_port(self):
        for name in NAMES:
            for attempt in range(TRIES):
                with self.subTest(service=name, attempt=attempt):
                    port = self.occupy()
                    result = self.run_service(name, port, base.free_port())
                    self.assertFailedStart(result, 1, f"127.0.0.1:{port}")

    def test_metrics_port_taken_exits_1_naming_the_port(self):
        for name in NAMES:
            for attempt in range(TRIES):
                with self.subTest(service=name, attempt=attempt):
                    port = self.occupy()
                    result = self.run_service(name, base.free_port(), port)
                    self.assertFailedStart(result, 1, f"127.0.0.1:{port}")

    def test_bad_setting_found_after_metrics_started_exits_1_naming_it(self):
        # The audit key file is read once the metrics exposer and Redis client run.
        missing = self.workdir / "no-such-key"
        for name in NAMES:
            with self.subTest(service=name):
                result = self.run_service(name, base.free_port(), base.free_port(),
                                          f"--audit-key-file={missing}")
                self.assertFailedStart(result, 1, str(missing))

    def test_bad_setting_exits_2_naming_it(self):
        for name in NAMES:
            with self.subTest(service=name):
                result = self.run_service(name, base.free_port(), base.free_port(),
                                          "--redis-timeout=forever")
                self.assertFailedStart(result, 2, "redis-timeout")


def main() -> int:
    return base.run_tests("rogatory-failed-start-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
