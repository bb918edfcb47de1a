#!/usr/bin/python3
"""The example page (examples/web) in headless Chromium against the local system (issue 20).

A private Redis, the four real services, rogatory-gateway and a static server for the page
(its own origin, allowed by the gateway's CORS setting), all on free loopback ports. Two
tabs of Debian's /usr/bin/chromium, driven through examples/web/e2e/driver.mjs
(playwright-core), play the French issuing judge and the German executing authority:

1. the issuer signs in with a development token from the gateway and submits the sample
   EIO (samples/requests/eio-fr-de.json); the page shows it in the worklist;
2. the translation happens as in the demo, natively (a document upload is client-streaming,
   which a browser cannot do through the gateway yet);
3. the executor signs in, sees the forwarded request, acknowledges it and moves it to
   RECOGNISED with the page's buttons; its worklist (open requests, soonest next deadline
   first) shows each new status and, after the acknowledgment, the next deadline; the
   buttons are the request's allowed_actions (no acknowledge button once acknowledged, no
   executing-side move on the issuer's page);
4. the issuer's page, open all along, shows the acknowledgment arriving as a live
   notification (Subscribe through the gateway) and the new status in its worklist.

Run by ctest as::

    /usr/bin/python3 tests/e2e/browser_e2e_test.py --bin-dir <build>/bin
"""

from __future__ import annotations

import functools
import http.server
import json
import pathlib
import subprocess
import sys
import threading

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import intake_e2e_test as base  # noqa: E402
import gateway_support as gw  # noqa: E402

rc = base.rc
sys.path.insert(0, str(base.REPO_ROOT / "tools" / "rogatoryctl"))
import journeys as j  # noqa: E402

PAGE_DIR = base.REPO_ROOT / "examples" / "web" / "dist"
DRIVER = base.REPO_ROOT / "examples" / "web" / "e2e" / "driver.mjs"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
WAIT_MS = 30_000


class BrowserStepError(Exception):
    """A browser step that did not succeed (an element not there in time, say)."""


class Driver:
    """The Node process that drives Chromium; one command, one answer."""

    def __init__(self, log_path: pathlib.Path):
        self.log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            [gw.NODE, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, cwd=DRIVER.parent, text=True, bufsize=1)

    def __call__(self, cmd: str, **args):
        self.popen.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise AssertionError(f"browser driver exited ({self.popen.poll()}) during {cmd}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise BrowserStepError(f"browser step {cmd} {args}: {reply['error']}")
        return reply["value"]

    def close(self) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.popen.stdin.flush()
                self.popen.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait()
        self.log.close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the page's requests are not worth a log line
        pass


class BrowserTest(base.E2ETestCase):
    SERVICES = ("intake", "routing", "deadlines", "notification")

    @classmethod
    def setUpClass(cls) -> None:
        gw.require_web_build(PAGE_DIR / "index.html", PAGE_DIR / "app.js")
        base._require([CHROMIUM, pathlib.Path(gw.NODE)])
        super().setUpClass()
        handler = functools.partial(QuietHandler, directory=str(PAGE_DIR))
        cls.page_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=cls.page_server.serve_forever, daemon=True).start()
        cls.addClassCleanup(cls.page_server.shutdown)
        cls.origin = f"http://127.0.0.1:{cls.page_server.server_address[1]}"
        ports = {name: s.port for name, s in cls.services.items()}
        cls.gateway = gw.GatewayProcess(
            cls.workdir, ports,
            [f"--allowed-origins={cls.origin}", "--dev-token",
             f"--dev-token-key-file={rc.DEV_KEY_FILE}"])
        cls.addClassCleanup(cls.gateway.stop)
        cls.gateway.start()
        cls.svc = j.Services(*(cls.services[n].addr
                               for n in ("intake", "routing", "deadlines", "notification")))
        cls.addClassCleanup(cls.svc.close)
        cls.browser = Driver(cls.workdir / "browser.log")
        cls.addClassCleanup(cls.browser.close)

    def open_signed_in(self, name: str, sub: str, state: str, role: str) -> None:
        b = self.browser
        b("open", page=name, url=f"{self.origin}/index.html?gateway={self.gateway.base_url}")
        b("fill", page=name, selector="#sub", value=sub)
        b("fill", page=name, selector="#state", value=state)
        b("select", page=name, selector="#role", value=role)
        b("click", page=name, selector="#signin-button")
        b("wait_text", page=name, selector="#whoami", contains=f"Signed in as {sub}",
          timeout_ms=WAIT_MS)

    def page_state(self, page: str) -> dict:
        """What a page shows, for failure messages."""
        b = self.browser
        return {"stream": b("texts", page=page, selector="#stream-status"),
                "notifications": b("texts", page=page, selector="#notifications li"),
                "error": b("texts", page=page, selector="#error")}

    def row_status(self, page: str, request_id: str, status: str) -> str:
        return self.browser("wait_text", page=page,
                            selector=f'#worklist tr[data-request-id="{request_id}"] td.status',
                            contains=status, timeout_ms=WAIT_MS)

    def test_submission_transition_and_live_notification_show_on_the_page(self):
        b = self.browser
        issuer = rc.Caller("FR-TJ-PARIS-JI", "FR", ("issuing",))

        # 1. The issuer submits the sample from the page; it shows in the worklist.
        self.open_signed_in("issuer", "FR-TJ-PARIS-JI", "FR", "issuing")
        b("click", page="issuer", selector="#submit-button")
        result = b("wait_text", page="issuer", selector="#submit-result",
                   contains="Submitted", timeout_ms=WAIT_MS)
        rid = b("attr", page="issuer", selector="#submit-result", name="data-request-id")
        self.assertIn(rid, result)
        row = b("wait_text", page="issuer", selector=f'#worklist tr[data-request-id="{rid}"]',
                contains="EIO", timeout_ms=WAIT_MS)
        self.assertIn("DE", row)
        self.assertEqual(b("texts", page="issuer", selector="#error"), [""])
        # The request the page submitted is the sample, as intake stored it.
        stored = j.get(self.svc, issuer, rid)
        self.assertEqual(stored.content.issuer_reference, "JI-SAMPLE-0001 (fictitious)")

        # 2. Translation, natively, as in the demo: the form, a translator, forwarded.
        pb = rc.stubs()
        j.wait(lambda: j.get(self.svc, issuer, rid).status
               == pb.types.REQUEST_STATUS_TRANSLATION_PENDING, 30, "translation pending")
        j.upload(self.svc, issuer, rid, j.FORM_FR, "fr", title="Form")
        translator = rc.Caller("XL-FR-DE-BROWSER", "FR", ("translator",))
        job = j.claim_for(self.svc, translator, rid, "fr", "de")
        j.translate(self.svc, translator, job)
        forwarded = j.wait_status(self.svc, issuer, rid, pb.types.REQUEST_STATUS_FORWARDED, 30)
        executor = forwarded.executing_authority
        self.row_status("issuer", rid, "FORWARDED")  # the issuer's page followed along

        # 3. The executing authority acknowledges and recognises it from its page.
        self.open_signed_in("executor", executor.authority_id, executor.state, "executing")
        self.row_status("executor", rid, "FORWARDED")
        b("click", page="executor",
          selector=f'#worklist tr[data-request-id="{rid}"] button.acknowledge')
        self.row_status("executor", rid, "ACKNOWLEDGED")
        executing = rc.Caller(executor.authority_id, executor.state, ("executing",))
        row_of = f'#worklist tr[data-request-id="{rid}"]'

        # The worklist shows the request's next deadline (kept by intake from deadline
        # events), as GetRequest gives it. The acknowledgement's own deadline events (the
        # acknowledge limit stopped, the next one started) arrive asynchronously, so the rule
        # is read again on each try: the page must show whatever GetRequest says now.
        acknowledged = j.wait(lambda: (r := j.get(self.svc, executing, rid)).next_deadline
                              .HasField("due_time") and r, 30, "a next deadline on the request")
        self.assertTrue(acknowledged.next_deadline.rule_id)

        def deadline_shown() -> bool:
            rule = j.get(self.svc, executing, rid).next_deadline.rule_id
            if not rule:
                return False  # between one deadline's stop and the next one's start
            b("click", page="executor", selector="#refresh-button")
            b("wait_text", page="executor", selector=f"{row_of} td.deadline",
              contains=f"{rule} due", timeout_ms=2000)
            return True

        base._poll(deadline_shown, 30, "the executor's worklist shows the next deadline")
        # Its buttons are the allowed actions, no more: acknowledging again is not offered,
        # and the moves offered are exactly the ones the service lists for this caller.
        self.assertEqual(b("texts", page="executor", selector=f"{row_of} button.acknowledge"),
                         [])
        allowed = sorted(pb.types.RequestStatus.Name(a.target_status)
                         .removeprefix("REQUEST_STATUS_")
                         for a in acknowledged.allowed_actions
                         if a.action == pb.intake.REQUEST_ACTION_TRANSITION)
        self.assertIn("RECOGNISED", allowed)
        self.assertEqual(sorted(b("texts", page="executor",
                                  selector=f"{row_of} select.target option")), allowed)
        # The issuing side may not make the executing side's moves: no such option, no
        # acknowledge button on its page.
        self.row_status("issuer", rid, "ACKNOWLEDGED")
        self.assertEqual(b("texts", page="issuer", selector=f"{row_of} button.acknowledge"), [])
        self.assertNotIn("RECOGNISED",
                         b("texts", page="issuer", selector=f"{row_of} select.target option"))

        # 4. The issuer's open page is told, live, and shows the new status.
        try:
            note = b("wait_text", page="issuer", selector="#notifications li",
                     contains=f"REQUEST_ACKNOWLEDGED {rid}", timeout_ms=WAIT_MS)
        except BrowserStepError as error:
            raise AssertionError(f"{error}; the issuer's page shows: {self.page_state('issuer')}")
        self.assertIn(rid, note)
        self.row_status("issuer", rid, "ACKNOWLEDGED")

        # A transition: RECOGNISED. The deadline it must meet may still be starting
        # (deadline-tracking learns of triggers by events): then the page shows the refusal
        # and the executor presses again, as a person would.
        def recognised() -> bool:
            b("select", page="executor",
              selector=f'#worklist tr[data-request-id="{rid}"] select.target',
              value="RECOGNISED")
            b("click", page="executor",
              selector=f'#worklist tr[data-request-id="{rid}"] button.transition')
            # The page answers with the new status or the refusal; a BrowserStepError
            # (neither yet) makes the poll try again.
            b("wait_text", page="executor", timeout_ms=5000,
              selector=f'#worklist tr[data-request-id="{rid}"] td.status, #error',
              pattern="RECOGNISED|FailedPrecondition|Aborted")
            statuses = b("texts", page="executor",
                         selector=f'#worklist tr[data-request-id="{rid}"] td.status')
            return statuses == ["RECOGNISED"]

        base._poll(recognised, 30, "the executor's page moved the request to RECOGNISED")
        self.row_status("executor", rid, "RECOGNISED")
        self.row_status("issuer", rid, "RECOGNISED")
        self.assertEqual(j.get(self.svc, issuer, rid).status,
                         pb.types.REQUEST_STATUS_RECOGNISED)


if __name__ == "__main__":
    sys.exit(base.run_tests("rogatory-browser-e2e-", __doc__.splitlines()[0]))
