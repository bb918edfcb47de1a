#!/usr/bin/python3
"""End-to-end test of the tamper-evident audit log over a real rogatory-intake.

Calls that touch a request leave chained entries (who, when, what, the justification of
reads); AuditService lists and verifies them for auditors only; chain heads are exported
to a file; an entry edited in Redis, and the newest entries cut off (with the head
rewritten), are detected, the latter against the exported head; a chain continued after a
rotation of the audit key verifies with both keys and names the key it lacks without. Run by ctest as::

    /usr/bin/python3 tests/e2e/audit_e2e_test.py --bin-dir <build>/bin [unittest args]

The process, Redis and fixture helpers are those of ``intake_e2e_test.py``.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import intake_e2e_test as base  # noqa: E402
from intake_e2e_test import rc, grpc  # noqa: E402

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
AUDITOR = rc.Caller("EU-AUDIT-1", "FR", ("auditor",))
JUSTIFICATION = (("x-rogatory-justification", "review-of-execution"),)


class AuditE2ETest(base.E2ETestCase):
    """The audit log records accesses and detects tampering in Redis."""

    @classmethod
    def setUpClass(cls) -> None:
        base._require([pathlib.Path(base.REDIS_SERVER), pathlib.Path(REDIS_CLI),
                       base.BIN_DIR / "rogatory-intake"])
        cls.workdir = pathlib.Path(tempfile.mkdtemp(prefix=cls.__name__ + "-",
                                                    dir=base.WORK_ROOT))
        cls.redis = base.RedisServer(cls.workdir)
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.export_dir = cls.workdir / "audit-export"
        cls.export_dir.mkdir()
        key_file = cls.workdir / "audit.key"
        key_file.write_text("e2e-audit-key-kept-outside-redis-0123456789\n")
        grpc_ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        service = base.ServiceProcess("intake", cls.redis, cls.workdir, grpc_ports)
        service.process.argv += [f"--audit-key-file={key_file}",
                                 f"--audit-export-dir={cls.export_dir}",
                                 "--audit-export-interval=200ms",
                                 "--audit-seal-interval=20ms"]
        cls.addClassCleanup(service.stop)
        service.start()
        cls.services = {"intake": service}

    def audit_stub(self, caller=AUDITOR):
        channel = rc.connect(self.services["intake"].addr, caller)
        self.addCleanup(channel.close)
        return rc.stubs().audit_grpc.AuditServiceStub(channel)

    def cli(self, *args: str) -> list[str]:
        out = subprocess.run([REDIS_CLI, "-p", str(self.redis.port), "--raw", *args],
                             check=True, capture_output=True, text=True, timeout=10).stdout
        return [line for line in out.splitlines() if line]

    def entries(self, request_id: str, minimum: int):
        pb = rc.stubs()
        audit = self.audit_stub()

        def listed():
            r = audit.ListAuditEntries(pb.audit.ListAuditEntriesRequest(
                request_id=request_id), timeout=5.0)
            return list(r.entries) if len(r.entries) >= minimum else None

        return base._poll(listed, 15.0, f"{minimum} audit entries sealed")

    def exported_head(self, request_id: str, sequence: int):
        def find():
            for path in self.export_dir.glob("audit-heads-*.jsonl"):
                for line in path.read_text().splitlines():
                    batch = json.loads(line)
                    self.assertEqual(batch["kind"], "audit chain heads")
                    self.assertRegex(batch["batch_mac"], "^[0-9a-f]{64}$")
                    for head in batch["heads"]:
                        if head["request_id"] == request_id and head["sequence"] >= sequence:
                            return head
            return None

        return base._poll(find, 15.0, "chain head exported")

    def verify(self, request_id: str, expected=None):
        pb = rc.stubs()
        request = pb.audit.VerifyAuditChainRequest(request_id=request_id)
        if expected is not None:
            request.expected_head.sequence = expected["sequence"]
            request.expected_head.mac = expected["mac"]
        return self.audit_stub().VerifyAuditChain(request, timeout=10.0)

    def test_accesses_are_recorded_and_tampering_is_detected(self):
        pb = rc.stubs()
        intake = self.intake_stub()
        request = self.submit(intake)
        intake.GetRequest(pb.intake.GetRequestRequest(id=request.id), metadata=JUSTIFICATION,
                          timeout=5.0)

        entries = self.entries(request.id, 2)
        submitted, read = entries[0], entries[1]
        self.assertEqual(submitted.sequence, 1)
        self.assertEqual(submitted.method, "SubmitRequest")
        self.assertEqual(submitted.kind, pb.audit.AUDIT_ACCESS_KIND_CHANGE)
        self.assertEqual(submitted.caller_authority_id, base.ISSUER.authority_id)
        self.assertEqual(submitted.outcome, "OK")
        self.assertEqual(read.method, "GetRequest")
        self.assertEqual(read.kind, pb.audit.AUDIT_ACCESS_KIND_READ)
        self.assertEqual(read.justification, "review-of-execution")
        self.assertEqual(list(read.caller_roles), ["issuing"])

        verdict = self.verify(request.id)
        self.assertEqual(verdict.verdict, pb.audit.AUDIT_VERDICT_INTACT, verdict.problem)
        self.assertGreaterEqual(verdict.entries_checked, 2)

        # Only auditors and operators reach the audit log.
        self.assertRpcCode(grpc.StatusCode.PERMISSION_DENIED,
                           self.audit_stub(base.ISSUER).VerifyAuditChain,
                           pb.audit.VerifyAuditChainRequest(request_id=request.id), timeout=5.0)
        self.assertRpcCode(grpc.StatusCode.INVALID_ARGUMENT, self.audit_stub().VerifyAuditChain,
                           pb.audit.VerifyAuditChainRequest(), timeout=5.0)

        # The head exported to the file verifies against the chain.
        head = self.exported_head(request.id, 2)
        verdict = self.verify(request.id, head)
        self.assertEqual(verdict.verdict, pb.audit.AUDIT_VERDICT_INTACT, verdict.problem)

        # Someone with write access to Redis cuts the newest entries and rewrites the head.
        entries = self.entries(request.id, head["sequence"] + 1)
        shard = request.id.split("-")[1]
        chain = f"rg:{{s{shard}}}:audit:chain:{request.id}"
        heads = f"rg:{{s{shard}}}:audit:heads"
        keep = head["sequence"] - 1
        self.cli("LTRIM", chain, "0", str(keep - 1))
        kept = entries[keep - 1]
        self.cli("HSET", heads, request.id, f"{kept.sequence} {kept.mac}")
        verdict = self.verify(request.id, head)
        self.assertEqual(verdict.verdict, pb.audit.AUDIT_VERDICT_TAMPERED)
        self.assertEqual(verdict.first_bad_sequence, keep + 1)

        # An edited entry (who submitted it) is detected without any export.
        other = self.submit(intake)
        self.entries(other.id, 1)
        other_chain = f"rg:{{s{other.id.split('-')[1]}}}:audit:chain:{other.id}"
        original = self.cli("LINDEX", other_chain, "0")[0]
        forged = original.replace(base.ISSUER.authority_id, "X" * len(base.ISSUER.authority_id))
        self.assertNotEqual(forged, original)
        self.cli("LSET", other_chain, "0", forged)
        verdict = self.verify(other.id)
        self.assertEqual(verdict.verdict, pb.audit.AUDIT_VERDICT_TAMPERED)
        self.assertEqual(verdict.first_bad_sequence, 1)
        self.assertIn("edited", verdict.problem)


class AuditKeyRotationE2ETest(base.E2ETestCase):
    """A chain begun under one audit key and continued after a rotation verifies with both
    keys (issue 21, item 1), through the real service restarted on a key set."""

    KEY_A = "e2e-audit-key-A-kept-outside-redis-0123456789"
    KEY_B = "e2e-audit-key-B-after-the-rotation-0123456789"

    # The same setup and helpers as AuditE2ETest (its own Redis, intake, export folder).
    setUpClass = classmethod(AuditE2ETest.setUpClass.__func__)
    audit_stub = AuditE2ETest.audit_stub
    entries = AuditE2ETest.entries
    verify = AuditE2ETest.verify

    def key_file(self) -> pathlib.Path:
        return self.workdir / "audit.key"  # the file the service reads

    def restart_with_keys(self, text: str) -> None:
        self.key_file().write_text(text)
        service = self.services["intake"]
        service.stop()
        service.start()

    def exported_heads(self, request_id: str, sequence: int):
        def find():
            for path in self.export_dir.glob("audit-heads-*.jsonl"):
                for line in path.read_text().splitlines():
                    for head in json.loads(line)["heads"]:
                        if head["request_id"] == request_id and head["sequence"] >= sequence:
                            return head
            return None

        return base._poll(find, 15.0, "chain head exported")

    def test_chain_verifies_across_a_rotation_and_names_the_missing_key(self):
        pb = rc.stubs()
        self.restart_with_keys(self.KEY_A + "\n")  # today's single key file
        request = self.submit(self.intake_stub())
        before = self.entries(request.id, 1)  # sealed under A (id "default": bare hex MACs)
        for entry in before:
            self.assertRegex(entry.mac, "^[0-9a-f]{64}$")

        # Rotation: A kept under its id "default", B current.
        self.restart_with_keys(json.dumps(
            {"current": "2026-12", "keys": {"default": self.KEY_A, "2026-12": self.KEY_B}}))
        self.intake_stub().GetRequest(pb.intake.GetRequestRequest(id=request.id),
                                      metadata=JUSTIFICATION, timeout=5.0)
        # (Listing and verifying are themselves audited: entries keep arriving.)
        read = base._poll(lambda: next((e for e in self.entries(request.id, 1)
                                        if e.method == "GetRequest"), None),
                          15.0, "the read after the rotation sealed")
        self.assertRegex(read.mac, "^2026-12:[0-9a-f]{64}$")
        verdict = self.verify(request.id)
        self.assertEqual(verdict.verdict, pb.audit.AUDIT_VERDICT_INTACT, verdict.problem)
        self.assertGreater(verdict.entries_checked, len(before))
        # The exported head, MACed with B, is accepted as an expected head and matches.
        head = self.exported_heads(request.id, read.sequence)
        self.assertTrue(head["mac"].startswith("2026-12:"), head)
        verdict = self.verify(request.id, head)
        self.assertEqual(verdict.verdict, pb.audit.AUDIT_VERDICT_INTACT, verdict.problem)

        # A is dropped too early: verification fails at the first entry, naming the key.
        self.restart_with_keys(json.dumps({"current": "2026-12", "keys": {"2026-12": self.KEY_B}}))
        verdict = self.verify(request.id)
        self.assertEqual(verdict.verdict, pb.audit.AUDIT_VERDICT_TAMPERED)
        self.assertEqual(verdict.first_bad_sequence, 1)
        self.assertIn('audit key "default"', verdict.problem)


def main() -> int:
    return base.run_tests("rogatory-audit-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
