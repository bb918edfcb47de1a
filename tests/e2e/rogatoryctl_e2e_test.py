#!/usr/bin/python3
"""rogatoryctl for operators, against the four real services (issue 21, item 6).

- `--version` names the project's version; every operator command's --help exits 0;
- with `--output json` an error is one JSON object on stderr (status, message, exit code,
  field violations), and the exit code is the documented one;
- webhook subscriptions: create, list, rotate the secret, delete;
- dead letters: list (every page) and redrive;
- audit: a request's entries over more than one page, and its chain verified; callers who
  may not read audit entries are refused, and their refusals are in the denial log;
- deadline operations: get, suspend, resume, complete, each by a side the role table
  allows;
- the zipapp (build_zipapp.py) runs outside the checkout without generating stubs.

    /usr/bin/python3 tests/e2e/rogatoryctl_e2e_test.py --bin-dir <build>/bin [unittest args]
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import workflow_e2e_test as wf  # noqa: E402  (fixtures: the four services, Ctl)

base, rc, j = wf.base, wf.rc, wf.j
AUDITOR = rc.Caller("AUDIT-FR-CNIL", "FR", ("auditor",))
BUILD_ZIPAPP = base.REPO_ROOT / "tools" / "rogatoryctl" / "build_zipapp.py"


def project_version() -> str:
    text = (base.REPO_ROOT / "CMakeLists.txt").read_text()
    return re.search(r"project\(\s*rogatory\s+VERSION\s+([0-9.]+)", text).group(1)


class OperatorCommandsTest(wf.Ctl, wf.WorkflowTestCase):
    """The operator commands against Redis and the four services."""

    # Subscriptions to a closed loopback port: creation passes the SSRF guard's address
    # check (lifted for tests), nothing is ever delivered off this machine.
    SERVICE_ARGS = {"notification": ("--webhook-allow-private-addresses=true",
                                     "--webhook-allowed-ports=9")}


    def error_of(self, result) -> dict:
        """The JSON error object rogatoryctl wrote on stderr."""
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        return json.loads(lines[0])["error"]

    def forwarded_eio(self) -> str:
        """An EIO from the French judge, translated and forwarded to Germany."""
        request = j.submit(self.svc, j.JUDGE, j.eio_content())
        document = j.upload(self.svc, j.JUDGE, request.id, j.FORM_FR, "fr")
        job = j.claim_for(self.svc, j.TRANSLATOR, request.id, "fr", "de")
        self.assertEqual(job.document_id, document.id)
        j.translate(self.svc, j.TRANSLATOR, job)
        j.wait_status(self.svc, j.DE_PROSECUTOR, request.id,
                      rc.stubs().types.REQUEST_STATUS_FORWARDED)
        return request.id

    def test_version_and_help(self):
        result = self.ctl(None, "--version", output_json=False)
        self.assertRegex(result.stdout, rf"^rogatoryctl {re.escape(project_version())} ")
        for command in (["subscriptions"], ["subscriptions", "create"],
                        ["subscriptions", "list"], ["subscriptions", "delete"],
                        ["subscriptions", "rotate-secret"], ["dead-letters"],
                        ["dead-letters", "list"], ["dead-letters", "redrive"], ["audit"],
                        ["audit", "entries"], ["audit", "verify"], ["audit", "denials"],
                        ["deadlines", "get"],
                        ["deadlines", "complete"], ["deadlines", "cancel"],
                        ["deadlines", "suspend"], ["deadlines", "resume"],
                        ["deadlines", "extend"]):
            with self.subTest(command=" ".join(command)):
                result = self.ctl(None, *command, "--help", output_json=False)
                self.assertIn("usage: rogatoryctl", result.stdout)
                self.assertIn("exit codes:", result.stdout)

    def test_errors_as_json(self):
        request = j.submit(self.svc, j.JUDGE, j.eio_content())
        missing = request.id[:-6] + ("000000" if not request.id.endswith("000000")
                                     else "111111")
        error = self.error_of(self.ctl(j.JUDGE, "request", "get", missing, expect=3))
        self.assertEqual((error["status"], error["exitCode"]), ("NOT_FOUND", 3))
        self.assertIn(missing, error["message"])

        workdir = pathlib.Path(tempfile.mkdtemp(dir=self.workdir))
        bad = workdir / "bad.json"
        bad.write_text('{"instrument": "INSTRUMENT_EIO", "requestedState": "germany"}')
        error = self.error_of(self.ctl(j.JUDGE, "request", "submit", str(bad), expect=4))
        self.assertEqual(error["status"], "INVALID_ARGUMENT")
        self.assertIn("content.requested_state",
                      [v["field"] for v in error.get("fieldViolations", [])])
        # A failure of rogatoryctl itself (no such file) is JSON too.
        error = self.error_of(self.ctl(j.JUDGE, "request", "submit", str(workdir / "none.json"),
                                       expect=4))
        self.assertEqual((error["status"], error["exitCode"]), ("CLI", 4))
        # Tables keep text errors.
        result = self.ctl(j.JUDGE, "request", "get", missing, expect=3, output_json=False)
        self.assertTrue(result.stderr.startswith("rogatoryctl: NOT_FOUND: "), result.stderr)

    def test_subscriptions(self):
        owner = j.DE_PROSECUTOR
        created = self.ctl(owner, "subscriptions", "create", "http://127.0.0.1:9/hook",
                           "--event-type", "request_recognised", "--state", "fr")
        sid = created["subscription"]["id"]
        self.assertTrue(created["signingSecret"])
        self.assertEqual(created["subscription"]["filter"],
                         {"eventTypes": ["EVENT_TYPE_REQUEST_RECOGNISED"], "states": ["FR"]})
        listed = self.ctl(owner, "subscriptions", "list")["subscriptions"]
        self.assertIn(sid, [s["id"] for s in listed])
        # Another authority neither sees nor deletes it.
        self.assertNotIn(sid, [s["id"] for s in self.ctl(j.JUDGE, "subscriptions", "list")
                               .get("subscriptions", [])])
        self.ctl(j.JUDGE, "subscriptions", "delete", sid, expect=3)
        rotated = self.ctl(owner, "subscriptions", "rotate-secret", sid,
                           "--previous-valid-for", "1h")
        self.assertNotEqual(rotated["signingSecret"], created["signingSecret"])
        self.assertTrue(rotated["previousSecretExpireTime"])
        table = self.ctl(owner, "subscriptions", "list", output_json=False)
        self.assertIn(sid, table.stdout)
        self.ctl(owner, "subscriptions", "delete", sid)
        self.assertNotIn(sid, [s["id"] for s in self.ctl(owner, "subscriptions", "list")
                               .get("subscriptions", [])])
        error = self.error_of(self.ctl(owner, "subscriptions", "create", "ftp://x/y",
                                       expect=4))
        self.assertEqual(error["status"], "INVALID_ARGUMENT")

    def test_dead_letters(self):
        listed = self.ctl(j.OPERATOR, "dead-letters", "list", "--all", "--page-size", "2")
        self.assertEqual(listed.get("deadLetters", []), [])
        # A dead letter's id is "<subscription id>/<event id>".
        sid = self.ctl(j.DE_PROSECUTOR, "subscriptions", "create",
                       "http://127.0.0.1:9/hook")["subscription"]["id"]
        self.ctl(j.OPERATOR, "dead-letters", "redrive", f"{sid}/01none", expect=3)
        self.ctl(j.OPERATOR, "dead-letters", "redrive", "not-a-dead-letter", expect=4)

    def test_audit_entries_and_verification(self):
        request = j.submit(self.svc, j.JUDGE, j.eio_content())
        for _ in range(3):  # Each read is an audit entry of its own.
            j.get(self.svc, j.JUDGE, request.id)

        def entries():
            found = self.ctl(AUDITOR, "audit", "entries", request.id, "--all",
                             "--page-size", "2").get("entries", [])
            return found if len(found) >= 4 else None
        found = j.wait(entries, 20, "four audit entries sealed")
        self.assertEqual([int(e["sequence"]) for e in found], list(range(1, len(found) + 1)))
        first_page = self.ctl(AUDITOR, "audit", "entries", request.id, "--page-size", "2")
        self.assertEqual(len(first_page["entries"]), 2)
        self.assertTrue(first_page["nextPageToken"])

        verified = self.ctl(AUDITOR, "audit", "verify", request.id, "--via", "deadlines")
        self.assertEqual(verified["verdict"], "AUDIT_VERDICT_INTACT")
        head = pathlib.Path(tempfile.mkdtemp(dir=self.workdir)) / "head.json"
        head.write_text(json.dumps(verified["head"]))
        self.ctl(AUDITOR, "audit", "verify", request.id, "--expected-head", str(head))
        table = self.ctl(AUDITOR, "audit", "verify", request.id, output_json=False)
        self.assertTrue(table.stdout.startswith("INTACT: "), table.stdout)
        # Authorities do not read the audit log; their refusals are in the denial log.
        self.ctl(j.JUDGE, "audit", "entries", request.id, expect=5)
        self.ctl(j.JUDGE, "audit", "verify", request.id, expect=5)
        denials = j.wait(lambda: (lambda d: d if len(d) >= 2 else None)(
            self.ctl(AUDITOR, "audit", "denials", j.JUDGE.authority_id, "--all",
                     "--page-size", "1").get("denials", [])), 20, "two denials logged")
        methods = [d["method"] for d in denials]
        self.assertIn("ListAuditEntries", methods)
        self.assertIn("VerifyAuditChain", methods)
        self.assertEqual({d["callerAuthorityId"] for d in denials}, {j.JUDGE.authority_id})

    def test_deadline_operations(self):
        rid = self.forwarded_eio()
        deadlines = j.wait(lambda: (lambda d: d if len(d) == 2 else None)(
            self.ctl(j.DE_PROSECUTOR, "deadlines", "list", "--request", rid)
            .get("deadlines", [])), 20, "two deadlines")
        by_rule = {d["ruleId"]: d for d in deadlines}
        acknowledge = by_rule["EIO_ACKNOWLEDGE"]["id"]
        recognition = by_rule["EIO_RECOGNITION"]["id"]

        got = self.ctl(j.DE_PROSECUTOR, "deadlines", "get", recognition)
        self.assertEqual((got["id"], got["state"]), (recognition, "DEADLINE_STATE_RUNNING"))
        # Operators suspend and resume, with a reason; the parties do not (role table).
        self.ctl(j.DE_PROSECUTOR, "deadlines", "suspend", recognition, "--reason",
                 "AWAITING_SUPPLEMENT", expect=5)
        suspended = self.ctl(j.OPERATOR, "deadlines", "suspend", recognition, "--reason",
                             "AWAITING_SUPPLEMENT")
        self.assertEqual(suspended["state"], "DEADLINE_STATE_SUSPENDED")
        resumed = self.ctl(j.OPERATOR, "deadlines", "resume", recognition, "--reason",
                           "SUPPLEMENT_RECEIVED")
        self.assertEqual(resumed["state"], "DEADLINE_STATE_RUNNING")
        # The issuing side does not complete the executing side's time limit.
        self.ctl(j.JUDGE, "deadlines", "complete", acknowledge, expect=5)
        met = self.ctl(j.DE_PROSECUTOR, "deadlines", "complete", acknowledge, "--reason",
                       "ACKNOWLEDGED")
        self.assertEqual(met["state"], "DEADLINE_STATE_MET")
        self.ctl(j.DE_PROSECUTOR, "deadlines", "get", "dl-none", expect=3)

    def test_zipapp_runs_outside_the_checkout(self):
        outside = pathlib.Path(tempfile.mkdtemp(dir=self.workdir))
        pyz = outside / "rogatoryctl.pyz"
        built = subprocess.run([sys.executable, str(BUILD_ZIPAPP), str(pyz)],
                               capture_output=True, text=True, timeout=120, check=False)
        self.assertEqual(built.returncode, 0, built.stderr)
        # No stubs may be generated where it runs: it carries its own.
        stubs = outside / "stubs-must-stay-empty"
        stubs.mkdir()
        self.ctl_env = {"ROGATORY_PYSTUBS_DIR": str(stubs)}
        self.CTL_ARGV = (str(pyz),)
        try:
            version = self.ctl(None, "--version", output_json=False).stdout
            self.assertRegex(version, rf"^rogatoryctl {re.escape(project_version())} "
                                      r"\(zipapp, commit \S+\)")
            health = self.ctl(None, "health")
            self.assertEqual({s["readiness"] for s in health["services"]}, {"SERVING"})
            token = self.ctl(None, "token", "mint", "--key-file",
                             str(base.REPO_ROOT / "deploy" / "dev-auth" / "keys.json"),
                             "--sub", j.JUDGE.authority_id, "--state", "FR", "--roles",
                             "issuing", "--ttl", "10m")["token"]
            request = j.submit(self.svc, j.JUDGE, j.eio_content())
            got = self.ctl(None, "--token", token, "request", "get", request.id)
            self.assertEqual(got["id"], request.id)
        finally:
            del self.ctl_env
            del self.CTL_ARGV
        self.assertEqual(list(stubs.iterdir()), [])
        shutil.rmtree(outside, ignore_errors=True)


def main() -> int:
    return base.run_tests("rogatory-rogatoryctl-e2e-", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
