#!/usr/bin/python3
"""End-to-end tests of production's start-up rules (issue 16, item 14), on the real binaries.

With ``--env=production`` a service exits 2 naming the setting when gRPC has no TLS (unless
``--tls-terminated-by-mesh=true``, which it warns about), when metrics listen on every
interface, or when the Redis password is in ``--redis-url``; it serves no reflection. The
Redis password comes from ``--redis-password-file``: a service started the way
deploy/local/run.sh starts it (and its redis-server) shows no password in
/proc/<pid>/cmdline.

Run by ctest as::

    /usr/bin/python3 tests/e2e/production_start_e2e_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import tempfile
import unittest

import grpc

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, ports)

rc = base.rc
NAMES = ("intake", "routing", "deadlines", "notification")
EXIT_TIMEOUT_S = 30.0
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
# A ServerReflectionRequest with list_services = "" (field 7, length 0).
LIST_SERVICES = b"\x3a\x00"


def _ec_pair(directory: pathlib.Path, name: str) -> tuple[str, str]:
    private = subprocess.run(
        "openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt",
        shell=True, check=True, capture_output=True, text=True).stdout
    public = subprocess.run(["openssl", "ec", "-pubout"], input=private, check=True,
                            capture_output=True, text=True).stdout
    (directory / f"{name}.key").write_text(private)
    return private, public


def _write_secret(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


class PasswordRedis(base.RedisServer):
    """The tests' private redis-server (intake_e2e_test.RedisServer), asking for a password
    given in a config file (as deploy/local/run.sh does), never on its command line."""

    def __init__(self, workdir: pathlib.Path):
        super().__init__(workdir)
        self.password = secrets.token_urlsafe(24)
        self.password_file = _write_secret(workdir / "redis-password", self.password + "\n")
        conf = _write_secret(workdir / "redis.conf", f'requirepass "{self.password}"\n')
        argv = self.process.argv
        argv.insert(1, str(conf))
        argv[argv.index("--appendonly") + 1] = "no"

    def answers(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(128).startswith(b"-NOAUTH")


class ProductionStartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER)]
                      + [base.BIN_DIR / f"rogatory-{n}" for n in NAMES])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix="production-start-",
                                                    dir=base.WORK_ROOT))
        cls.redis = PasswordRedis(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        # Production keys: an identity provider's and the services' (ES256, bound to what
        # they sign), the services' signing key, the audit key.
        _, idp_public = _ec_pair(cls.workdir, "idp")
        svc_private, svc_public = _ec_pair(cls.workdir, "services")
        cls.keys = _write_secret(cls.workdir / "keys.json", json.dumps({"keys": [
            {"kid": "idp", "alg": "ES256", "subjects": "authorities",
             "public_key_pem": idp_public},
            {"kid": "svc", "alg": "ES256", "subjects": "services",
             "public_key_pem": svc_public}]}))
        cls.service_key = _write_secret(cls.workdir / "service-key.json", json.dumps(
            {"kid": "svc", "alg": "ES256", "subjects": "services",
             "private_key_pem": svc_private}))
        cls.audit_key = _write_secret(cls.workdir / "audit.key", secrets.token_hex(32))

    def production_args(self, name: str, grpc_port: int) -> list[str]:
        return [str(base.BIN_DIR / f"rogatory-{name}"), "--env=production",
                f"--listen=127.0.0.1:{grpc_port}",
                f"--metrics-listen=127.0.0.1:{base.free_port()}",
                f"--redis-url={self.redis.url}",
                f"--redis-password-file={self.redis.password_file}",
                f"--auth-keys={self.keys}", f"--service-token-key={self.service_key}",
                f"--audit-key-file={self.audit_key}", "--health-probe-interval=100ms",
                "--shutdown-grace=1s"]

    def run_to_exit(self, argv: list[str]) -> tuple[int, str]:
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=base._child_env(),
                                    timeout=EXIT_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            self.fail(f"{argv[0]} still running {EXIT_TIMEOUT_S:.0f} s after a start that "
                      "should have failed")
        return result.returncode, result.stderr.decode(errors="replace")

    def assertRefusedNaming(self, argv: list[str], setting: str) -> str:
        code, stderr = self.run_to_exit(argv)
        self.assertEqual(code, 2, f"exit status {code}; stderr:\n{stderr[-3000:]}")
        errors = [line for line in stderr.splitlines()
                  if line.startswith("{") and json.loads(line).get("level") == "error"]
        self.assertTrue(any(f"setting '{setting}'" in line for line in errors),
                        f"no JSON error line names setting '{setting}':\n{stderr[-3000:]}")
        return stderr

    def start(self, name: str, argv: list[str]) -> base.ManagedProcess:
        process = base.ManagedProcess(f"rogatory-{name}", argv, self.workdir / f"{name}.log")
        process.start()
        self.addCleanup(process.stop)
        return process

    def wait_serving(self, process: base.ManagedProcess, addr: str, health: str) -> None:
        def serving() -> bool:
            if not process.running():
                raise AssertionError(f"{process.name} exited with "
                                     f"{process.popen.returncode}:\n{process.log_tail()}")
            return rc.health_check(addr, health, timeout=1.0) == "SERVING"

        # Readiness follows a write to Redis: SERVING proves the password from the file.
        base._poll(serving, base.STARTUP_TIMEOUT_S, f"{process.name} SERVING")

    def reflection_code(self, addr: str) -> grpc.StatusCode:
        with grpc.insecure_channel(addr) as channel:
            call = channel.stream_stream(REFLECTION)
            try:
                for _ in call(iter([LIST_SERVICES]), timeout=5):
                    pass
            except grpc.RpcError as error:
                return error.code()
        return grpc.StatusCode.OK

    def assertNoPasswordIn(self, pid: int) -> None:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        self.assertTrue(cmdline, f"no command line for pid {pid}")
        self.assertNotIn(self.redis.password.encode(), cmdline)

    def test_production_without_tls_exits_2_naming_the_setting(self):
        for name in NAMES:
            with self.subTest(service=name):
                self.assertRefusedNaming(self.production_args(name, base.free_port()), "tls")

    def test_production_behind_a_mesh_starts_warns_and_serves_no_reflection(self):
        port = base.free_port()
        process = self.start("intake", self.production_args("intake", port)
                             + ["--tls-terminated-by-mesh=true"])
        addr = f"127.0.0.1:{port}"
        self.wait_serving(process, addr, base.SERVICE_NAMES["intake"])
        log = process.log_path.read_text(errors="replace")
        warnings = [line for line in log.splitlines()
                    if line.startswith("{") and json.loads(line).get("level") == "warn"]
        self.assertTrue(any("tls-terminated-by-mesh" in line for line in warnings),
                        f"no warning about tls-terminated-by-mesh:\n{log[-3000:]}")
        self.assertEqual(self.reflection_code(addr), grpc.StatusCode.UNIMPLEMENTED)
        self.assertNoPasswordIn(process.pid)

    def test_production_refuses_metrics_on_every_interface(self):
        argv = self.production_args("intake", base.free_port()) + [
            "--tls-terminated-by-mesh=true", f"--metrics-listen=0.0.0.0:{base.free_port()}"]
        self.assertRefusedNaming(argv, "metrics-listen")

    def test_production_refuses_a_password_in_the_redis_url(self):
        argv = [a for a in self.production_args("intake", base.free_port())
                if not a.startswith("--redis-password-file=")]
        argv = [a if not a.startswith("--redis-url=")
                else f"--redis-url=redis://:{self.redis.password}@127.0.0.1:{self.redis.port}/0"
                for a in argv] + ["--tls-terminated-by-mesh=true"]
        stderr = self.assertRefusedNaming(argv, "redis-url")
        self.assertNotIn(self.redis.password, stderr)

    def test_started_as_deploy_local_starts_it_no_password_is_on_a_command_line(self):
        # deploy/local/run.sh: development, the development key set, the test clock, the
        # password in a file for the service and in a config file for redis-server.
        port = base.free_port()
        argv = [str(base.BIN_DIR / "rogatory-intake"), "--env=development",
                f"--listen=127.0.0.1:{port}", f"--metrics-listen=127.0.0.1:{base.free_port()}",
                f"--redis-url={self.redis.url}",
                f"--redis-password-file={self.redis.password_file}", "--test-clock=true",
                f"--auth-keys={rc.DEV_KEY_FILE}", f"--service-token-key={rc.DEV_KEY_FILE}",
                "--health-probe-interval=100ms", "--shutdown-grace=1s"]
        process = self.start("intake-dev", argv)
        addr = f"127.0.0.1:{port}"
        self.wait_serving(process, addr, base.SERVICE_NAMES["intake"])
        self.assertNoPasswordIn(process.pid)
        self.assertNoPasswordIn(self.redis.process.pid)
        # Development still serves reflection.
        self.assertEqual(self.reflection_code(addr), grpc.StatusCode.OK)


def main() -> int:
    return base.run_tests("rogatory-production-start-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
