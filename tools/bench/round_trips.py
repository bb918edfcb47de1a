#!/usr/bin/python3
"""Redis commands per call of intake's, routing's and deadlines' operations (issue 17).

Starts a private redis-server and the four services from --bin-dir (so the same script
measures any build, old or new: it talks to the services only over gRPC, with the test
clock on), then performs each operation one at a time and counts, with Redis MONITOR, the
commands the serving service sent in the operation's window:

- "sent": commands the service's own connections sent (each EVALSHA and each plain command
  is one; one after another they are one round trip each, in a pipeline they share one);
- "run": everything Redis executed for them, the commands the scripts ran included.

Background work of the same service in the window (leases, polls, the relay) is kept out:
each call is repeated --reps times and the smallest count is kept (background work only
ever adds). Operations that are themselves background work (an event handled, a timer
fired, an erasure) are measured over the window from their trigger until their effect is
visible, leaving out the commands of the services' periodic loops (LOOPS, by first key):
those figures are per item of a batch where one trigger sets off several; stream upkeep set off by a moved test clock (XTRIM, XGROUP, XINFO) and the outbox relay's commands
(woken by a call's commit, shared by the batch it delivers) are never counted. A call's
audit append is counted (issue 11's budget counts it too).

    /usr/bin/python3 tools/bench/round_trips.py --bin-dir build/bin [--reps 3] [--json out]
    /usr/bin/python3 tools/bench/round_trips.py --compare before.json after.json  # Markdown
    /usr/bin/python3 tools/bench/round_trips.py --bin-dir build/bin --worklist  # issue 19/20

--worklist measures only issue 19's list figure: a full page of 50 under a filter matching 1
in 20 of the caller's 1,000 requests (urgent and open, soonest next deadline first), with
its commands and its sequential round-trip waves. MONITOR shows when Redis ran each command,
not when the service sent it: a wave here is a run of the service's commands with no gap of
--wave-gap-ms between two of them (a pipelined wave's commands arrive together; the next
wave waits for the replies and the service's work on them). intake_round_trips_test counts
the same waves exactly at the client.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Optional

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import intake_e2e_test as base  # noqa: E402  (processes, Redis, stubs)

rc = base.rc
grpc = base.grpc
sys.path.insert(0, str(REPO / "tools" / "rogatoryctl"))
import journeys as j  # noqa: E402

SERVICES = ("intake", "routing", "deadlines", "notification")
#: Stream upkeep each service runs when its clock moves (trimming, consumer groups): not
#: part of any operation, and a moved test clock sets it off in a window.
UPKEEP = {"XGROUP", "XINFO", "XTRIM"}
#: The relay's reads of an outbox and its delivery state: woken by a call's commit, but
#: background work shared by every event of the batch, so not counted with the call.
RELAY = ("outbox:", "relay:")
#: First keys of the services' periodic loops, polled whatever happens: left out of the
#: windows of background operations (an event, a timer, an erasure). A timer's own claim is
#: one of those polls (`dl:timers`), so a fired timer's figure is what firing it cost beyond
#: the claim poll every shard takes every interval anyway.
LOOPS = {"audit:lease", "dl:timers", "rt:leases", "idx:closed", "dl:stats", "dl:open",
         "rg:testclock:offset", "denials", "rt:pairs", "intake", "rg:layout"}
LINE = re.compile(r'^(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$')


def first_key(command: str) -> str:
    """The kind of a MONITOR command line's first key: shard and ids left out
    ('rg:{s3}:rt:job:tj-3-ab12...' -> 'rt:job')."""
    tokens = re.findall(r'"((?:[^"\\]|\\.)*)"', command)
    name = tokens[0].upper() if tokens else ""
    key = tokens[3] if name in ("EVALSHA", "EVAL") and len(tokens) > 3 else \
        (tokens[1] if len(tokens) > 1 else "")
    key = re.sub(r"^rg:\{s\d+\}:", "", key)
    parts = key.split(":")
    while len(parts) > 1 and (re.search(r"\d", parts[-1]) and len(parts[-1]) > 6
                              or "-" in parts[-1] or parts[-1].isupper()):
        parts.pop()
    return ":".join(parts)


class Monitor:
    """redis-cli MONITOR into a list of (time, client, command line), in a thread."""

    def __init__(self, port: int):
        self.lines: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(["redis-cli", "-p", str(port), "MONITOR"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, errors="replace")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            m = LINE.match(line.rstrip("\n"))
            if m:
                with self.lock:
                    self.lines.append((float(m.group(1)), m.group(2), m.group(3)))

    def between(self, t0: float, t1: float) -> list[tuple[float, str, str]]:
        with self.lock:
            return [x for x in self.lines if t0 <= x[0] < t1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


class Bench:
    def __init__(self, bin_dir: pathlib.Path, reps: int):
        base.BIN_DIR = bin_dir
        self.reps = reps
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="rogatory-round-trips-"))
        base.WORK_ROOT = self.work
        self.redis = base.RedisServer(self.work)
        self.redis.start()
        ports = {name: base.free_port() for name in base.SERVICE_NAMES}
        self.services = {}
        for name in SERVICES:
            s = base.ServiceProcess(name, self.redis, self.work, ports)
            argv = s.process.argv
            # Quiet loops: the relay and the fan-out are woken by commits, so long poll
            # intervals only remove idle polling from the windows.
            argv[:] = [a for a in argv if not a.startswith(("--relay-poll-interval",
                                                            "--health-probe-interval"))]
            argv += ["--test-clock=true", "--relay-poll-interval=5s",
                     "--health-probe-interval=5s"]
            if name == "intake":
                argv += ["--retention-closed=72h", "--retention-tombstone=720h",
                         "--retention-sweep-interval=1s"]
            if name == "notification":
                argv.append("--notification-poll-interval=5s")
            s.start(wait=False)
            self.services[name] = s
        for s in self.services.values():
            s.wait_ready()
        self.svc = j.Services(*(self.services[n].addr for n in SERVICES))
        self.monitor = Monitor(self.redis.port)
        self.ports: dict[str, str] = {}
        self.rows: list[dict] = []
        self.idle: dict[str, float] = {}

    def stop(self) -> None:
        self.monitor.stop()
        self.svc.close()
        for s in self.services.values():
            s.stop()
        self.redis.stop()

    def _refresh_ports(self) -> None:
        out = subprocess.run(["ss", "-tnpH", "state", "established",
                              f"dport = :{self.redis.port}"],
                             capture_output=True, text=True).stdout
        for name, s in self.services.items():
            pid = s.process.pid
            for line in out.splitlines():
                if f"pid={pid}," in line:
                    self.ports[line.split()[2].rsplit(":", 1)[1]] = name

    def count(self, lines, service: str,
              loops: bool = True) -> tuple[int, int, dict[str, int]]:
        """(sent, run, sent by command) of `service` in `lines`; a script's own commands
        ("lua") follow its EVALSHA and belong to its sender."""
        sent = run = 0
        kinds: dict[str, int] = {}
        owner: Optional[str] = None
        for _, client, command in lines:
            if client == "lua":
                if owner == service:
                    run += 1
                continue
            owner = self.ports.get(client.rsplit(":", 1)[-1])
            if owner != service:
                continue
            name = command.split(" ", 1)[0].strip('"').upper()
            if name in UPKEEP or first_key(command).startswith(RELAY) or \
                    (not loops and first_key(command) in LOOPS):
                owner = None
                continue
            sent += 1
            run += 1
            kind = f"{name}({first_key(command)})"
            kinds[kind] = kinds.get(kind, 0) + 1
        return sent, run, kinds

    def measure(self, name: str, service: str, op: Callable[[], object],
                settle: float = 0.3, background: bool = False) -> object:
        """Runs `op` --reps times (each after the previous one's echoes settled) and keeps
        the smallest count. `op` returns its result; the last one is returned."""
        best = None
        result = None
        for _ in range(self.reps):
            self._refresh_ports()
            time.sleep(settle)
            t0 = time.time()
            result = op()
            t1 = time.time()
            time.sleep(0.05)
            self._refresh_ports()
            sent, run, kinds = self.count(self.monitor.between(t0, t1), service,
                                          loops=not background)
            if best is None or (sent, run) < (best[0], best[1]):
                best = (sent, run, kinds, t1 - t0)
        row = {"operation": name, "service": service, "sent": best[0], "run": best[1],
               "commands": best[2], "background": background}
        self.rows.append(row)
        print(f"{service:10} {name:45} sent {best[0]:5}  run {best[1]:6}  "
              f"{' '.join(f'{k}={v}' for k, v in sorted(best[2].items()))}", flush=True)
        return result

    def window(self, name: str, services: list[str], op: Callable[[], object], per: int,
               idle: dict[str, float]) -> None:
        """One window from `op`'s start until it returned plus a short settle, per `per`
        items, with each service's idle rate times the window subtracted."""
        self._refresh_ports()
        t0 = time.time()
        op()
        time.sleep(0.5)
        t1 = time.time()
        lines = self.monitor.between(t0, t1)
        for service in services:
            sent, run, kinds = self.count(lines, service, loops=False)
            row = {"operation": name, "service": service, "sent": round(sent / per, 1),
                   "run": round(run / per, 1), "commands": kinds, "background": True,
                   "window_s": round(t1 - t0, 2)}
            self.rows.append(row)
            print(f"{service:10} {name:45} sent {row['sent']:5}  run {row['run']:6}  "
                  f"(window {t1 - t0:.1f}s, {sent} sent) "
                  f"{' '.join(f'{k}={v}' for k, v in sorted(kinds.items()))}", flush=True)

    def idle_rates(self, seconds: float = 3.0) -> dict[str, float]:
        self._refresh_ports()
        t0 = time.time()
        time.sleep(seconds)
        lines = self.monitor.between(t0, t0 + seconds)
        self.idle = {s: self.count(lines, s)[0] / seconds for s in SERVICES}
        return self.idle


def compare(before: pathlib.Path, after: pathlib.Path) -> str:
    """A Markdown table of two runs' rows, matched by service and operation."""
    old = {(r["service"], r["operation"]): r for r in json.loads(before.read_text())}
    lines = ["| service | operation | sent before | sent after | run before | run after |",
             "|---|---|---|---|---|---|"]
    for r in json.loads(after.read_text()):
        o = old.get((r["service"], r["operation"]), {})
        lines.append(f"| {r['service']} | {r['operation']} | {o.get('sent', '?')} | "
                     f"{r['sent']} | {o.get('run', '?')} | {r['run']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=pathlib.Path)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--compare", type=pathlib.Path, nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--worklist", action="store_true",
                        help="only the filtered worklist page of 50 (issue 19's list figure)")
    parser.add_argument("--wave-gap-ms", type=float, default=0.5)
    args = parser.parse_args()
    if args.compare:
        print(compare(*args.compare))
        return 0
    if not args.bin_dir:
        parser.error("--bin-dir is required")
    rc.stubs()
    b = Bench(args.bin_dir.resolve(), args.reps)
    try:
        if args.worklist:
            run_worklist(b, args.wave_gap_ms)
        else:
            run(b)
        if args.json:
            args.json.write_text(json.dumps(b.rows, indent=1))
    finally:
        b.stop()
    return 0


def waves_of(lines, service: str, b: Bench, gap_s: float) -> int:
    """Runs of `service`'s own commands in `lines` separated by gaps of at least `gap_s`
    (a script's commands run inside its EVALSHA and are not counted)."""
    times = [t for t, client, _ in lines
             if client != "lua" and b.ports.get(client.rsplit(":", 1)[-1]) == service]
    if not times:
        return 0
    return 1 + sum(1 for a, c in zip(times, times[1:]) if c - a >= gap_s)


def run_worklist(b: Bench, gap_ms: float) -> None:
    """A full page of 50 under a filter matching 1 in 20 of the caller's requests."""
    pb = rc.stubs()
    svc = b.svc
    judge = j.JUDGE
    total, every = 1000, 20
    t0 = time.time()
    from concurrent.futures import ThreadPoolExecutor

    def submit(i: int) -> None:
        content = j.eio_content()
        content.urgency = pb.types.URGENCY_URGENT if i % every == 0 else \
            pb.types.URGENCY_NORMAL
        j.submit(svc, judge, content)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(total)))
    print(f"submitted {total} requests ({total // every} urgent) in {time.time() - t0:.0f}s",
          flush=True)
    time.sleep(3)  # routing's and deadline-tracking's echoes settle
    intake = svc.intake(judge)
    query = pb.intake.ListRequestsRequest(
        page_size=50, urgency=pb.types.URGENCY_URGENT, open_only=True,
        order_by=pb.intake.REQUEST_ORDER_NEXT_DUE_TIME)
    page = b.measure("ListRequests worklist page of 50 (1 in 20 match)", "intake",
                     lambda: intake.ListRequests(query, timeout=10))
    print(f"page: {len(page.requests)} requests, next token {'set' if page.next_page_token else 'empty'}")
    best = None
    for _ in range(b.reps):
        b._refresh_ports()
        time.sleep(0.3)
        t0 = time.time()
        intake.ListRequests(query, timeout=10)
        t1 = time.time()
        time.sleep(0.05)
        lines = b.monitor.between(t0, t1)
        waves = waves_of(lines, "intake", b, gap_ms / 1000)
        best = waves if best is None else min(best, waves)
    b.rows[-1]["waves"] = best
    print(f"intake     worklist page of 50: {b.rows[-1]['sent']} commands sent, "
          f"{best} waves (gap >= {gap_ms} ms)", flush=True)
    # The same filter for an auditor, who lists every request: the shards' indexes in
    # rounds (the path every list took before the worklist rows), for comparison in the
    # same run.
    auditor = svc.intake(rc.Caller("EU-AUDITOR-1", "BE", ("auditor",)))
    every = pb.intake.ListRequestsRequest(page_size=50, urgency=pb.types.URGENCY_URGENT,
                                          open_only=True)
    got = b.measure("ListRequests auditor page of 50 (1 in 20 match, index rounds)", "intake",
                    lambda: auditor.ListRequests(every, timeout=10))
    print(f"auditor page: {len(got.requests)} requests", flush=True)


def run(b: Bench) -> None:
    pb = rc.stubs()
    svc = b.svc
    judge, translator, prosecutor = j.JUDGE, j.TRANSLATOR, j.DE_PROSECUTOR
    idle = b.idle_rates()
    print("idle commands/s: " + ", ".join(f"{k} {v:.1f}" for k, v in idle.items()))

    # ---- intake ------------------------------------------------------------------
    for _ in range(12):
        j.submit(svc, judge, j.eio_content())
    made = []
    b.measure("SubmitRequest", "intake",
              lambda: made.append(j.submit(svc, judge, j.eio_content())) or made[-1])
    request = made[-1]
    b.measure("GetRequest", "intake", lambda: j.get(svc, judge, request.id))
    intake = svc.intake(judge)
    first = b.measure("ListRequests page 1 (of 5)", "intake", lambda: intake.ListRequests(
        pb.intake.ListRequestsRequest(page_size=5), timeout=10))
    b.measure("ListRequests page 2 (of 5)", "intake", lambda: intake.ListRequests(
        pb.intake.ListRequestsRequest(page_size=5, page_token=first.next_page_token),
        timeout=10))
    b.measure("GetRequestHistory (event replay)", "intake", lambda: intake.GetRequestHistory(
        pb.intake.GetRequestHistoryRequest(id=request.id, page_size=1000), timeout=10))

    # ---- routing: the decision and the jobs ----------------------------------------------
    j.wait(lambda: j.jobs_of(svc, judge, request.id) or True, 10, "routing decided")
    decided = []

    def submit_and_route():
        r = j.submit(svc, judge, j.eio_content())
        decided.append(r)
        j.wait(lambda: svc.routing(judge).GetRoutingDecision(
            pb.routing.GetRoutingDecisionRequest(request_id=r.id), timeout=10), 10,
            "a routing decision")
        return r
    b.measure("event: request submitted -> decision (background)", "routing", submit_and_route,
              background=True)

    def upload_and_queue():
        r = j.submit(svc, judge, j.eio_content())
        j.wait(lambda: svc.routing(judge).GetRoutingDecision(
            pb.routing.GetRoutingDecisionRequest(request_id=r.id), timeout=10), 10,
            "a routing decision")
        j.upload(svc, judge, r.id, j.FORM_FR, "fr")
        return j.wait(lambda: j.jobs_of(svc, judge, r.id), 10, "a translation job")
    # Queued jobs to list, claim and complete (their creation is not measured).
    for _ in range(3 * b.reps + 3):
        upload_and_queue()
    routing = svc.routing(translator)
    b.measure("ListTranslationJobs (one request)", "routing",
              lambda: j.jobs_of(svc, judge, decided[-1].id))
    queue = b.measure("ListTranslationJobs claimable page 1 (of 2)", "routing",
                      lambda: routing.ListTranslationJobs(pb.routing.ListTranslationJobsRequest(
                          queue=pb.routing.TRANSLATION_JOB_QUEUE_CLAIMABLE, page_size=2,
                          source_languages=["fr"], target_languages=["de"]), timeout=10))
    b.measure("ListTranslationJobs claimable page 2 (of 2)", "routing",
              lambda: routing.ListTranslationJobs(pb.routing.ListTranslationJobsRequest(
                  queue=pb.routing.TRANSLATION_JOB_QUEUE_CLAIMABLE, page_size=2,
                  page_token=queue.next_page_token, source_languages=["fr"],
                  target_languages=["de"]), timeout=10))
    claimed = []

    def claim():
        job = svc.routing(translator).ClaimTranslationJob(pb.routing.ClaimTranslationJobRequest(
            request_id=j.key(), source_languages=["fr"], target_languages=["de"]),
            timeout=10).job
        claimed.append(job)
        return job
    b.measure("ClaimTranslationJob", "routing", claim)
    job = claimed[-1]
    b.measure("GetTranslationJob", "routing", lambda: routing.GetTranslationJob(
        pb.routing.GetTranslationJobRequest(job_id=job.id), timeout=10))
    b.measure("ListTranslationJobs held", "routing",
              lambda: routing.ListTranslationJobs(pb.routing.ListTranslationJobsRequest(
                  queue=pb.routing.TRANSLATION_JOB_QUEUE_HELD), timeout=10))
    b.measure("HeartbeatTranslationJob", "routing", lambda: routing.HeartbeatTranslationJob(
        pb.routing.HeartbeatTranslationJobRequest(job_id=job.id, lease_token=job.lease_token),
        timeout=10))
    for _ in range(2 * b.reps + 3):  # more held jobs: the completions below need them
        claim()
    ready = []
    for c in claimed:
        j.wait(lambda: j.download(svc, translator, c.request_id, c.document_id), 20,
               "the source readable by its translator")
        doc = j.upload(svc, translator, c.request_id, j.FORM_DE, "de",
                       kind=pb.intake.DOCUMENT_KIND_TRANSLATION, translation_of=c.document_id)
        ready.append((c, doc))

    def complete():
        c, doc = ready.pop()
        return routing.CompleteTranslationJob(pb.routing.CompleteTranslationJobRequest(
            request_id=j.key(), job_id=c.id, lease_token=c.lease_token,
            translated_document_id=doc.id, translated_document_sha256=doc.sha256), timeout=10)
    b.measure("CompleteTranslationJob", "routing", complete)

    # ---- deadlines -----------------------------------------------------------------------
    # A completed translation forwards the request, which starts its EIO_ACKNOWLEDGE limit.
    def complete_and_start():
        c = ready[-1][0]
        complete()
        return j.wait(lambda: j.deadlines_of(svc, prosecutor, c.request_id), 10,
                      "a deadline started")
    b.measure("event: request forwarded -> deadline started (background)", "deadlines",
              complete_and_start, background=True)
    while ready:
        complete_and_start()
    forwarded = [c.request_id for c in claimed]
    deadlines = svc.deadlines(prosecutor)
    b.measure("ListDeadlines (one request)", "deadlines",
              lambda: j.deadlines_of(svc, prosecutor, forwarded[-1]))
    page = b.measure("ListDeadlines page 1 (of 2)", "deadlines", lambda: deadlines.ListDeadlines(
        pb.deadlines.ListDeadlinesRequest(page_size=2), timeout=10))
    b.measure("ListDeadlines page 2 (of 2)", "deadlines", lambda: deadlines.ListDeadlines(
        pb.deadlines.ListDeadlinesRequest(page_size=2, page_token=page.next_page_token),
        timeout=10))
    one = j.deadlines_of(svc, prosecutor, forwarded[-1])[0]
    b.measure("GetDeadline", "deadlines", lambda: deadlines.GetDeadline(
        pb.deadlines.GetDeadlineRequest(deadline_id=one.id), timeout=10))

    # Timers: every forwarded request's EIO_ACKNOWLEDGE limit (a week) fires at once after
    # the clock moves 8 days; one window, the deadline loops' idle polling subtracted.
    def all_overdue():
        return all(d.state == pb.deadlines.DEADLINE_STATE_OVERDUE
                   for rid in forwarded for d in j.deadlines_of(svc, prosecutor, rid)
                   if d.rule_id == "EIO_ACKNOWLEDGE")
    b.window(f"timer claim + fire (per timer, of {len(forwarded)})", ["deadlines"],
             lambda: (j.advance_clock(svc, 8 * j.DAY_S),
                      j.wait(all_overdue, 30, "every acknowledgement limit missed")),
             len(forwarded), idle)

    # ---- erasure -------------------------------------------------------------------------
    victims = forwarded
    for rid in victims:
        j.withdraw(svc, judge, rid, "NO_LONGER_NEEDED")
    time.sleep(1.0)

    def erased():
        return all(not j.deadlines_of(svc, prosecutor, rid) for rid in victims)
    b.window(f"erasure of personal data (per request, of {len(victims)})",
             ["intake", "routing", "deadlines"],
             lambda: (j.advance_clock(svc, 73 * 3600), j.wait(erased, 30, "erased")),
             len(victims), idle)


if __name__ == "__main__":
    sys.exit(main())
