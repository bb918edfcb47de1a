#!/usr/bin/python3
"""rogatory-migrate on a Redis Cluster (issue 18): given the cluster's seeds (or one address
and --redis-cluster=true), `apply` records the data layout on the node that owns its key and
`status` reads it back, as the services and the chart's migration Job give it.

Starts a six-node cluster (3 primaries, 3 replicas) on free loopback ports, as
tests/support/redis_cluster.cc does. Run by ctest as::

    /usr/bin/python3 tests/e2e/migrate_cluster_e2e_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN_DIR = pathlib.Path(__file__).resolve().parents[2] / "build" / "bin"
NODES = 6
PASSWORD = "migrate-cluster-test-password"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ, REDISCLI_AUTH=PASSWORD),
                          check=False).stdout


class MigrateOnClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = pathlib.Path(tempfile.mkdtemp(prefix="rogatory-migrate-cluster-"))
        cls.ports = []
        cls.processes = []
        for i in range(NODES):
            port, bus = free_port(), free_port()
            node_dir = cls.dir / str(i)
            node_dir.mkdir()
            conf = node_dir / "redis.conf"
            conf.write_text(f'requirepass "{PASSWORD}"\nmasterauth "{PASSWORD}"\n')
            cls.processes.append(subprocess.Popen(
                ["redis-server", str(conf), "--bind", "127.0.0.1", "--port", str(port),
                 "--dir", str(node_dir), "--save", "", "--appendonly", "no",
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-port", str(bus), "--cluster-node-timeout", "1500",
                 "--logfile", str(node_dir / "redis.log")],
                stdin=subprocess.DEVNULL))
            cls.ports.append(port)
        deadline = time.monotonic() + 15
        for port in cls.ports:
            while cli(port, "ping").strip() != "PONG":
                assert time.monotonic() < deadline, f"node {port} did not answer PING"
                time.sleep(0.05)
        out = cli(cls.ports[0], "--cluster", "create",
                  *[f"127.0.0.1:{p}" for p in cls.ports], "--cluster-replicas", "1",
                  "--cluster-yes")
        assert "All 16384 slots covered" in out, out
        deadline = time.monotonic() + 30
        while sum("cluster_state:ok" in cli(p, "cluster", "info") for p in cls.ports) < NODES:
            assert time.monotonic() < deadline, "the cluster did not reach cluster_state:ok"
            time.sleep(0.1)
        cls.password_file = cls.dir / "password"
        cls.password_file.write_text(PASSWORD)

    @classmethod
    def tearDownClass(cls):
        for p in cls.processes:
            p.kill()
            p.wait()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        cli(self.ports[0], "-c", "del", "rg:{meta}:layout")

    def migrate(self, url: str, *args: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROGATORY_")}
        result = subprocess.run(
            [str(BIN_DIR / "rogatory-migrate"), *args, f"--redis-url={url}",
             f"--redis-password-file={self.password_file}", "--redis-shards=16",
             "--redis-timeout=10s"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(result.returncode, 0, f"{args}: {result.stdout}{result.stderr}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def check_apply_then_status(self, url: str, *extra: str):
        applied = self.migrate(url, "apply", *extra)
        self.assertTrue(applied["ok"], applied)
        self.assertEqual(applied["after"]["shards"], 16, applied)
        self.assertEqual(cli(self.ports[0], "-c", "exists", "rg:{meta}:layout").strip(), "1")
        status = self.migrate(url, "status", *extra)
        self.assertEqual(status["recorded"], applied["after"], status)

    def test_seeds(self):
        seeds = ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])
        self.check_apply_then_status(f"redis://{seeds}/0")

    def test_one_address_and_cluster_flag(self):
        # A node that does not own the layout key's slot: only a cluster client finds it.
        self.check_apply_then_status(f"redis://127.0.0.1:{self.ports[0]}/0",
                                     "--redis-cluster=true")


def main() -> int:
    global BIN_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=pathlib.Path, default=BIN_DIR)
    args, rest = parser.parse_known_args()
    BIN_DIR = args.bin_dir.resolve()
    program = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
