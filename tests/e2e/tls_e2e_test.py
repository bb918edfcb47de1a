#!/usr/bin/python3
"""End-to-end tests of transport security: mutual TLS between clients and services and
between services (intake's outbox relay delivering to routing), the plaintext health-only
probe port, certificate rotation without restart, and start-up refusal of bad TLS settings.

Run by ctest as::

    /usr/bin/python3 tests/e2e/tls_e2e_test.py --bin-dir <build>/bin [unittest args]

Certificates come from deploy/tls/make-certs.sh (OpenSSL). Reuses the process fixtures of
intake_e2e_test.py. Nothing is skipped: a missing binary, redis-server or openssl fails.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import grpc  # noqa: E402
import intake_e2e_test as base  # noqa: E402  (fixtures: processes, Redis, services)

rc = base.rc
ISSUER = base.ISSUER
MAKE_CERTS = base.REPO_ROOT / "deploy" / "tls" / "make-certs.sh"


def make_certs(out: pathlib.Path, renew: str = "") -> None:
    env = dict(os.environ, ROGATORY_TLS_RENEW=renew)
    subprocess.run([str(MAKE_CERTS), str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL, timeout=60)


def served_certificate_sha256(port: int, certs: pathlib.Path) -> str:
    """Handshakes with 127.0.0.1:port as the test client and returns the SHA-256 of the
    certificate the server presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(certs / "ca.crt"))
    context.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def file_certificate_sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(path.read_text())).hexdigest()


class MutualTlsTest(unittest.TestCase):
    """intake and routing with tls=mtls, each with a plaintext health port."""

    SERVICES = ("intake", "routing")

    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER), MAKE_CERTS]
                      + [base.BIN_DIR / f"rogatory-{name}" for name in cls.SERVICES])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix=cls.__name__ + "-",
                                                    dir=base.WORK_ROOT))
        cls.certs = cls.workdir / "certs"
        make_certs(cls.certs)
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        grpc_ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        cls.services = {}
        cls.health_ports = {}
        for name in cls.SERVICES:
            service = base.ServiceProcess(name, cls.redis, cls.workdir, grpc_ports)
            cls.health_ports[name] = base.free_port()
            service.process.argv += [
                "--tls=mtls",
                f"--tls-cert-file={cls.certs / (name + '.crt')}",
                f"--tls-key-file={cls.certs / (name + '.key')}",
                f"--tls-ca-file={cls.certs / 'ca.crt'}",
                "--tls-reload-interval=1s",
                f"--health-listen=127.0.0.1:{cls.health_ports[name]}",
            ]
            cls.addClassCleanup(service.stop)
            service.start(wait=False)
            cls.services[name] = service
        for name in cls.SERVICES:
            cls.wait_probe(name, "", "SERVING")
            cls.wait_probe(name, base.SERVICE_NAMES[name], "SERVING")

    @classmethod
    def probe_channel(cls, name: str) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{cls.health_ports[name]}")

    @classmethod
    def wait_probe(cls, name: str, health_name: str, want: str, timeout: float = 20.0):
        service = cls.services[name]

        def probe() -> bool:
            if not service.process.running():
                raise AssertionError(f"{name} exited:\n" + service.process.log_tail())
            with cls.probe_channel(name) as channel:
                return rc.health_check(channel, health_name, timeout=1.0) == want

        base._poll(probe, timeout, f"{name} probe-port health {health_name or '<server>'} {want}")

    def tls(self, with_client_cert: bool = True) -> rc.TlsFiles:
        if with_client_cert:
            return rc.TlsFiles(str(self.certs / "ca.crt"), str(self.certs / "client.crt"),
                               str(self.certs / "client.key"))
        return rc.TlsFiles(str(self.certs / "ca.crt"))

    def channel(self, name: str, tls, caller=ISSUER) -> grpc.Channel:
        channel = rc.connect(self.services[name].addr, caller, tls=tls)
        self.addCleanup(channel.close)
        return channel

    def test_client_with_certificate_is_served_and_relay_delivers_over_mtls(self):
        pb = rc.stubs()
        intake = pb.intake_grpc.IntakeServiceStub(self.channel("intake", self.tls()))
        routing = pb.routing_grpc.TranslationRoutingServiceStub(
            self.channel("routing", self.tls()))
        submitted = intake.SubmitRequest(pb.intake.SubmitRequestRequest(
            request_id=str(uuid.uuid4()), content=rc.example_eio_content()), timeout=5).request

        def decided():
            try:
                return routing.GetRoutingDecision(
                    pb.routing.GetRoutingDecisionRequest(request_id=submitted.id),
                    timeout=2).decision
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                raise

        # Only intake's relay, a TLS client presenting intake's certificate, can have
        # carried the request to routing.
        decision = rc.poll_until(decided, timeout=15)
        self.assertEqual(decision.request_id, submitted.id)

    def test_client_without_certificate_is_refused(self):
        with self.assertRaises(grpc.RpcError) as raised:
            rc.health_check(self.channel("intake", self.tls(with_client_cert=False)), "",
                            timeout=3)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_plaintext_client_is_refused_on_the_main_port(self):
        channel = grpc.insecure_channel(self.services["intake"].addr)
        self.addCleanup(channel.close)
        with self.assertRaises(grpc.RpcError) as raised:
            rc.health_check(channel, "", timeout=3)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_health_port_answers_serving_for_server_and_readiness_name(self):
        for name in self.SERVICES:
            for health_name in ("", base.SERVICE_NAMES[name]):
                with self.subTest(service=name, health_name=health_name or "<server>"):
                    with self.probe_channel(name) as channel:
                        self.assertEqual(rc.health_check(channel, health_name), "SERVING")

    def test_health_port_serves_neither_reflection_nor_application_services(self):
        pb = rc.stubs()
        with self.probe_channel("intake") as channel:
            with self.assertRaises(grpc.RpcError) as raised:
                rc.list_services(channel)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
            intake = pb.intake_grpc.IntakeServiceStub(channel)
            with self.assertRaises(grpc.RpcError) as raised:
                intake.GetRequest(pb.intake.GetRequestRequest(id="x"), timeout=3)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        # The main port, over mTLS, still lists them.
        services = rc.list_services(self.channel("intake", self.tls()))
        self.assertIn(rc.INTAKE_SERVICE, services)
        self.assertIn(rc.REFLECTION_SERVICE, services)

    def test_rotated_certificate_is_served_to_new_connections_without_restart(self):
        port = self.services["intake"].port
        before = served_certificate_sha256(port, self.certs)
        self.assertEqual(before, file_certificate_sha256(self.certs / "intake.crt"))
        make_certs(self.certs, renew="intake")
        after_file = file_certificate_sha256(self.certs / "intake.crt")
        self.assertNotEqual(before, after_file)
        rc.poll_until(lambda: served_certificate_sha256(port, self.certs) == after_file,
                      timeout=15, description="intake serving the renewed certificate")
        self.assertTrue(self.services["intake"].process.running())
        # Clients keep working with the renewed certificate.
        with rc.connect(self.services["intake"].addr, tls=self.tls()) as channel:
            self.assertEqual(rc.health_check(channel, rc.INTAKE_SERVICE), "SERVING")


class ProbeReadinessTest(unittest.TestCase):
    """The probe port mirrors readiness: NOT_SERVING while Redis is down, SERVING again
    after, and liveness stays SERVING throughout."""

    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER), MAKE_CERTS,
                       base.BIN_DIR / "rogatory-intake"])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix=cls.__name__ + "-",
                                                    dir=base.WORK_ROOT))
        cls.certs = cls.workdir / "certs"
        make_certs(cls.certs)
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        grpc_ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        cls.service = base.ServiceProcess("intake", cls.redis, cls.workdir, grpc_ports)
        cls.health_port = base.free_port()
        cls.service.process.argv += [
            "--tls=tls",
            f"--tls-cert-file={cls.certs / 'intake.crt'}",
            f"--tls-key-file={cls.certs / 'intake.key'}",
            f"--health-listen=127.0.0.1:{cls.health_port}",
        ]
        cls.addClassCleanup(cls.service.stop)
        cls.service.start(wait=False)

    def status(self, health_name: str) -> str:
        with grpc.insecure_channel(f"127.0.0.1:{self.health_port}") as channel:
            return rc.health_check(channel, health_name, timeout=1.0)

    def test_probe_port_readiness_follows_redis_and_liveness_stays_serving(self):
        rc.poll_until(lambda: self.status(rc.INTAKE_SERVICE) == "SERVING", timeout=20)
        # Server-side TLS: a client with only the CA is served on the main port.
        with rc.connect(self.service.addr,
                        tls=rc.TlsFiles(str(self.certs / "ca.crt"))) as channel:
            self.assertEqual(rc.health_check(channel, rc.INTAKE_SERVICE), "SERVING")
        self.redis.stop()
        try:
            rc.poll_until(lambda: self.status(rc.INTAKE_SERVICE) == "NOT_SERVING", timeout=10)
            self.assertEqual(self.status(""), "SERVING")
        finally:
            self.redis.start()
        rc.poll_until(lambda: self.status(rc.INTAKE_SERVICE) == "SERVING", timeout=20)

    def test_drain_turns_probe_port_readiness_not_serving_before_it_closes(self):
        # Its own service, so that stopping it disturbs the class's service not at all.
        grpc_ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        service = base.ServiceProcess("intake", self.redis, self.workdir, grpc_ports)
        health_port = base.free_port()
        service.process.argv += [
            "--tls=tls",
            f"--tls-cert-file={self.certs / 'intake.crt'}",
            f"--tls-key-file={self.certs / 'intake.key'}",
            f"--health-listen=127.0.0.1:{health_port}",
            "--shutdown-grace=3s",
        ]
        self.addCleanup(service.stop)
        service.start(wait=False)
        probe = grpc.insecure_channel(f"127.0.0.1:{health_port}")
        self.addCleanup(probe.close)
        rc.poll_until(lambda: rc.health_check(probe, rc.INTAKE_SERVICE, timeout=1.0)
                      == "SERVING", timeout=20)
        # A Watch stream on the probe port sees readiness go NOT_SERVING on SIGTERM.
        pb = rc.stubs()
        watch = pb.health_grpc.HealthStub(probe).Watch(
            pb.health.HealthCheckRequest(service=rc.INTAKE_SERVICE), timeout=15)
        first = next(watch)
        self.assertEqual(first.status, pb.health.HealthCheckResponse.SERVING)
        service.process.signal(15)
        second = next(watch)
        self.assertEqual(second.status, pb.health.HealthCheckResponse.NOT_SERVING)
        self.assertEqual(service.process.wait(15), 0)


class BadTlsSettingsTest(unittest.TestCase):
    """A service refuses to start, with exit code 2 and a message naming the setting, when
    its TLS files are missing or do not fit together."""

    def run_service(self, *flags: str) -> tuple[int, str]:
        binary = base.BIN_DIR / "rogatory-intake"
        base._require([binary])
        result = subprocess.run(
            [str(binary), "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0", *flags],
            capture_output=True, text=True, timeout=15, env=base._child_env())
        return result.returncode, result.stdout + result.stderr

    def test_missing_and_mismatched_files_exit_2_naming_the_setting(self):
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="BadTls-", dir=base.WORK_ROOT))
        certs = workdir / "certs"
        make_certs(certs)
        cases = {
            "tls-cert-file": ["--tls=tls", f"--tls-cert-file={workdir / 'absent.crt'}",
                              f"--tls-key-file={certs / 'intake.key'}"],
            "tls-key-file": ["--tls=tls", f"--tls-cert-file={certs / 'intake.crt'}",
                             f"--tls-key-file={certs / 'routing.key'}"],
            "tls-ca-file": ["--tls=mtls", f"--tls-cert-file={certs / 'intake.crt'}",
                            f"--tls-key-file={certs / 'intake.key'}"],
        }
        for setting, flags in cases.items():
            with self.subTest(setting=setting):
                code, output = self.run_service(*flags)
                self.assertEqual(code, 2, output)
                self.assertIn(f"setting '{setting}'", output)


if __name__ == "__main__":
    sys.exit(base.run_tests("rogatory-tls-e2e-", __doc__.splitlines()[0]))
