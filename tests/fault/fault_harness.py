"""Shared machinery of the fault tests (tests/fault/*_test.py).

The fault tests run the four real binaries against a private ``redis-server`` (the process
fixtures of ``tests/e2e/intake_e2e_test.py``), put them under a steady load of submissions,
break something (a service killed with SIGKILL, Redis killed or paused) and then check,
only through the public gRPC APIs, that every acknowledged submission was fully processed
exactly once.

Pieces:

- :class:`Cluster`: Redis and the four services, started through ``ServiceProcess`` (so
  they follow whatever authentication the platform requires), with settings that keep the
  recovery times of a test short (relay lease, poll intervals, heartbeats).
- :class:`LoadGenerator`: several threads, each an issuing authority of its own, submitting
  EIOs at a steady rate with an AIP-155 ``request_id`` and retrying UNAVAILABLE and
  DEADLINE_EXCEEDED with the SAME ``request_id`` (a retry after a lost acknowledgement must
  not create a second request). ``finish`` retries every submission that never got an
  answer until it does, so at the end every submission is acknowledged and the number of
  requests intake holds must equal the number of submissions.
- :func:`verify_processed`: waits until every acknowledged request is processed and counts
  what was lost and what was duplicated (intake, routing, deadlines, notification inboxes).
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Callable, Optional

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "e2e"))

import intake_e2e_test as base  # noqa: E402  (processes, Redis, ports, logs, run_tests)
from intake_e2e_test import grpc, rc  # noqa: E402

#: Codes after which a submission is retried with the same request_id.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
#: The competent authority routing picks for an EIO to Germany.
EXECUTING = rc.Caller("DE-PROSECUTOR", "DE", ("executing",))
#: Deadline-tracking's events carry the triggering event's RequestFacts, so notification
#: knows whom a DEADLINE_STARTED concerns even when it arrives before intake's
#: REQUEST_SUBMITTED (the relays are independent): a missing one counts as lost.
STRICT_DEADLINE_NOTIFICATIONS = True
#: How long processing may take after the load stops (covers notification's 30 s claim of
#: fan-out entries that a killed replica had read but not acknowledged).
SETTLE_TIMEOUT_S = 75.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------------------


class Cluster:
    """A private redis-server and the four services, each restartable on its own ports."""

    NAMES = ("intake", "routing", "deadlines", "notification")

    def __init__(self, name: str, redis_args: tuple[str, ...] = (),
                 service_args: tuple[str, ...] = ()):
        base._require([pathlib.Path(base.REDIS_SERVER)]
                      + [base.BIN_DIR / f"rogatory-{n}" for n in self.NAMES])
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix=name + "-", dir=base.WORK_ROOT))
        self.redis = base.RedisServer(self.workdir)
        self.redis.process.argv.extend(redis_args)
        ports = {n: base.free_port() for n in base.SERVICE_NAMES}
        self.services: dict[str, base.ServiceProcess] = {}
        for n in self.NAMES:
            service = base.ServiceProcess(n, self.redis, self.workdir, ports)
            # Short leases so a restarted process takes over its relay lanes quickly (the
            # default 10 s is for real deployments); quick heartbeats end inbox reads.
            service.process.argv.extend(["--relay-lease=2s", *service_args])
            if n == "notification":
                service.process.argv.extend(["--heartbeat-interval=300ms",
                                             "--notification-poll-interval=20ms"])
            self.services[n] = service

    def start(self) -> None:
        self.redis.start()
        for service in self.services.values():
            service.start(wait=False)
        for service in self.services.values():
            service.wait_ready()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        self.redis.stop()

    def addr(self, name: str) -> str:
        return self.services[name].addr

    def pids(self) -> dict[str, int]:
        return {n: s.process.pid for n, s in self.services.items()}

    def kill(self, name: str) -> None:
        """SIGKILL of one service (no drain, no clean-up), waiting until it is gone."""
        process = self.services[name].process
        process.popen.kill()
        process.popen.wait()

    def dump_stacks(self, name: str) -> str:
        """Writes every thread's stack of a live service (gdb) to the work directory, for
        a service that stopped answering; returns the file's path."""
        path = self.workdir / f"{name}.stacks"
        pid = self.services[name].process.pid
        try:
            with open(path, "w") as out:
                subprocess.run(["gdb", "-batch", "-p", str(pid), "-ex", "thread apply all bt"],
                               stdout=out, stderr=subprocess.STDOUT, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            return f"(no stacks: {error})"
        return str(path)

    def kill_redis(self) -> None:
        self.redis.process.popen.kill()
        self.redis.process.popen.wait()


# --------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Submission:
    key: str                      # AIP-155 request_id
    issuer: rc.Caller
    content: object               # the RequestContent, identical on every retry
    request_id: str = ""          # intake's id, once acknowledged
    acked_during_load: bool = False
    attempts: int = 0
    #: The answer came from an earlier attempt's request (created before the answered
    #: attempt began): a retry after a lost acknowledgement, replayed by idempotency.
    replayed: bool = False


@dataclasses.dataclass
class CallSample:
    """One SubmitRequest call: when it started, how long it took, and its outcome."""
    start: float
    seconds: float
    code: str


class LoadGenerator:
    """Steady submissions from ``threads`` issuing authorities, ``rate`` per second each."""

    def __init__(self, cluster: Cluster, threads: int = 4, rate: float = 5.0,
                 call_timeout: float = 2.0):
        self.cluster = cluster
        self.threads = threads
        self.interval = 1.0 / rate
        self.call_timeout = call_timeout
        self.issuers = [rc.Caller(f"FR-TJ-FAULT-{i}", "FR", ("issuing",))
                        for i in range(threads)]
        self.submissions: list[Submission] = []
        self.samples: list[CallSample] = []
        self.unexpected: list[str] = []
        self.retried_calls = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    # Runs ------------------------------------------------------------------------------

    def start(self) -> None:
        for issuer in self.issuers:
            worker = threading.Thread(target=self._run, args=(issuer,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _run(self, issuer: rc.Caller) -> None:
        pb = rc.stubs()
        channel, stub = self._stub(issuer)
        next_at = time.monotonic()
        pending: Optional[Submission] = None
        while not self._stop.is_set():
            if pending is None:
                # In German: routing forwards it at once (no translation), so the competent
                # authority receives it and the EIO limits start (Directive 2014/41 Art
                # 16(1), 12(3) count from that reception, not from the submission).
                pending = Submission(str(uuid.uuid4()), issuer, rc.example_eio_content(
                    issuing_authority_id=issuer.authority_id, source_language="de"))
                with self._lock:
                    self.submissions.append(pending)
            outcome, channel, stub = self._call(pb, channel, stub, pending)
            if outcome == "ok":
                pending.acked_during_load = True
                pending = None
                next_at = max(next_at + self.interval, time.monotonic() - 1.0)
                self._stop.wait(max(0.0, next_at - time.monotonic()))
            elif outcome == "retry":
                self._stop.wait(0.05)
            else:
                pending = None
        channel.close()

    def _stub(self, issuer: rc.Caller):
        channel = rc.connect(self.cluster.addr("intake"), issuer)
        return channel, rc.stubs().intake_grpc.IntakeServiceStub(channel)

    def _call(self, pb, channel, stub, submission: Submission):
        """One attempt. Returns ("ok"|"retry"|"fail", channel, stub)."""
        submission.attempts += 1
        if submission.attempts > 1:
            with self._lock:
                self.retried_calls += 1
        started = time.monotonic()
        started_wall = time.time()
        try:
            response = stub.SubmitRequest(pb.intake.SubmitRequestRequest(
                request_id=submission.key, content=submission.content),
                timeout=self.call_timeout)
            code = "OK"
        except grpc.RpcError as error:
            response, code = None, error.code().name
            if error.code() not in RETRYABLE:
                with self._lock:
                    self.unexpected.append(f"{code}: {error.details()}")
        with self._lock:
            self.samples.append(CallSample(started, time.monotonic() - started, code))
        if response is not None:
            if submission.request_id and submission.request_id != response.request.id:
                with self._lock:
                    self.unexpected.append(
                        f"request_id {submission.key} answered {submission.request_id} "
                        f"then {response.request.id}")
            submission.request_id = response.request.id
            created = response.request.create_time
            submission.replayed = (submission.attempts > 1 and created.seconds
                                   + created.nanos / 1e9 < started_wall - 0.05)
            return "ok", channel, stub
        if code == "UNAVAILABLE":
            # A fresh channel connects at once; the old one may sit in reconnect backoff
            # for seconds after the server came back.
            channel.close()
            channel, stub = self._stub(submission.issuer)
        return ("retry" if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else "fail"), \
            channel, stub

    def finish(self, timeout: float = 30.0) -> int:
        """Retries every unanswered submission (same request_id) until it is answered.

        Returns how many were answered only now. Raises AssertionError if some stay
        unanswered after ``timeout`` seconds with all services up.
        """
        pb = rc.stubs()
        late = [s for s in self.submissions if not s.request_id]
        deadline = time.monotonic() + timeout
        for submission in late:
            channel, stub = self._stub(submission.issuer)
            while True:
                outcome, channel, stub = self._call(pb, channel, stub, submission)
                if outcome != "retry":
                    break
                if time.monotonic() > deadline:
                    stacks = self.cluster.dump_stacks("intake")
                    raise AssertionError(
                        f"submission {submission.key} still unanswered after "
                        f"{timeout:.0f}s with all services up (last: {self.samples[-1]}); "
                        f"intake's threads: {stacks}")
                time.sleep(0.1)
            channel.close()
        return len(late)

    # Figures ---------------------------------------------------------------------------

    @property
    def acked(self) -> list[Submission]:
        return [s for s in self.submissions if s.request_id]

    def codes(self) -> dict[str, int]:
        return dict(collections.Counter(s.code for s in self.samples))


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    lost: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)
    #: Deadline events of acknowledged requests that reached no inbox (KNOWN_DEFECTS).
    unaddressed: list[str] = dataclasses.field(default_factory=list)
    settle_seconds: float = 0.0
    notifications: int = 0

    def summary(self, limit: int = 15) -> str:
        return ("lost:\n  " + "\n  ".join(self.lost[:limit])
                + "\nduplicates:\n  " + "\n  ".join(self.duplicates[:limit]))


def _retrying(call, *args, **kwargs):
    """``call(*args, **kwargs)``, retried on UNAVAILABLE and DEADLINE_EXCEEDED for up to
    10 s, as a client should: reads are audited, so a read is a Redis write too, and on a
    loaded machine with appendfsync always one may time out now and then."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            return call(*args, **kwargs)
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def _event_name(pb, event_type: int) -> str:
    return pb.events.EventType.Name(event_type).removeprefix("EVENT_TYPE_")


class _Reader:
    """Reads intake, routing and deadlines for one issuer."""

    def __init__(self, cluster: Cluster, issuer: rc.Caller):
        pb = rc.stubs()
        self.pb = pb
        self.channels = [rc.connect(cluster.addr(n), issuer)
                         for n in ("intake", "routing", "deadlines")]
        self.intake = pb.intake_grpc.IntakeServiceStub(self.channels[0])
        self.routing = pb.routing_grpc.TranslationRoutingServiceStub(self.channels[1])
        self.deadlines = pb.deadlines_grpc.DeadlineServiceStub(self.channels[2])

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def history(self, request_id: str) -> list:
        events, token = [], ""
        while True:
            response = _retrying(
                self.intake.GetRequestHistory, self.pb.intake.GetRequestHistoryRequest(
                    id=request_id, page_size=100, page_token=token), timeout=5.0)
            events.extend(response.events)
            token = response.next_page_token
            if not token:
                return events

    def processed(self, request_id: str) -> bool:
        kinds = {_event_name(self.pb, e.type) for e in self.history(request_id)}
        return {"REQUEST_SUBMITTED", "ROUTING_DECIDED", "DEADLINE_STARTED"} <= kinds


def _read_inbox(cluster: Cluster, who: rc.Caller, done: Callable[[list], bool],
                timeout: float) -> list:
    """Every notification in ``who``'s inbox, oldest first, once ``done(notifications)`` is
    true after a heartbeat (the stream caught up), or whatever is there at ``timeout``."""
    pb = rc.stubs()
    deadline = time.monotonic() + timeout
    got: list = []
    while True:
        got = []
        with rc.connect(cluster.addr("notification"), who) as channel:
            stub = pb.notification_grpc.NotificationServiceStub(channel)
            stream = stub.Subscribe(pb.notification.SubscribeRequest(
                start_position=pb.notification.START_POSITION_OLDEST),
                timeout=max(1.0, deadline - time.monotonic() + 5.0))
            try:
                for item in stream:
                    if item.HasField("notification"):
                        got.append(item.notification)
                    elif done(got) or time.monotonic() > deadline:
                        return got
            except grpc.RpcError as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"Subscribe for {who.authority_id}: {error}")
            finally:
                stream.cancel()
        time.sleep(0.2)


def verify_processed(cluster: Cluster, load: LoadGenerator,
                     settle_timeout: float = SETTLE_TIMEOUT_S) -> Outcome:
    """Waits until every acknowledged submission is processed, then counts the lost and
    the duplicated.

    Lost: an acknowledged submission that intake does not return, or whose routing
    decision, deadline or notifications did not happen within ``settle_timeout``.
    Duplicated: more requests in intake than submissions (per issuer), a second
    ROUTING_DECIDED or DEADLINE_STARTED of one rule in a request's history, a second
    deadline of one rule, the same event twice in an inbox.
    """
    pb = rc.stubs()
    outcome = Outcome()
    started = time.monotonic()
    deadline = started + settle_timeout
    readers = {issuer.authority_id: _Reader(cluster, issuer) for issuer in load.issuers}
    try:
        acked = load.acked
        # 1. Every acknowledged request is in intake, with the content submitted.
        for s in acked:
            reader = readers[s.issuer.authority_id]
            try:
                got = _retrying(reader.intake.GetRequest,
                                pb.intake.GetRequestRequest(id=s.request_id),
                                timeout=5.0).request
                if got.content != s.content:
                    outcome.lost.append(f"{s.request_id}: content differs")
            except grpc.RpcError as error:
                outcome.lost.append(f"{s.request_id}: GetRequest {error.code().name}")

        # 2. No request in intake beyond the submissions (a retry made no second one).
        listed: dict[str, str] = {}
        for issuer in load.issuers:
            token = ""
            while True:
                response = _retrying(
                    readers[issuer.authority_id].intake.ListRequests,
                    pb.intake.ListRequestsRequest(page_size=500, page_token=token),
                    timeout=10.0)
                for r in response.requests:
                    listed[r.id] = r.content.issuing_authority.authority_id
                token = response.next_page_token
                if not token:
                    break
        per_issuer = collections.Counter(listed.values())
        for issuer in load.issuers:
            submitted = sum(1 for s in load.submissions if s.issuer == issuer)
            if per_issuer[issuer.authority_id] > submitted:
                outcome.duplicates.append(
                    f"{issuer.authority_id}: intake holds {per_issuer[issuer.authority_id]} "
                    f"requests for {submitted} submissions")
        known = {s.request_id for s in acked}
        for request_id in sorted(set(listed) - known):
            outcome.duplicates.append(f"{request_id}: in intake but never acknowledged")

        log(f"verify: checked intake's requests at {time.monotonic() - started:.1f}s")
        # 3. Processed: routing decided and the deadline started, as intake recorded them.
        waiting = list(acked)
        while waiting and time.monotonic() < deadline:
            still = []
            for s in waiting:
                try:
                    if not readers[s.issuer.authority_id].processed(s.request_id):
                        still.append(s)
                except grpc.RpcError:
                    still.append(s)
            waiting = still
            if waiting:
                time.sleep(0.5)
        for s in waiting:
            outcome.lost.append(f"{s.request_id}: not processed within {settle_timeout:.0f}s")

        log(f"verify: all acknowledged requests processed at {time.monotonic() - started:.1f}s")
        # 4. Exactly once: history, routing decision, deadlines.
        for s in acked:
            reader = readers[s.issuer.authority_id]
            history = reader.history(s.request_id)
            ids = collections.Counter(e.event_id for e in history)
            for event_id, count in ids.items():
                if count > 1:
                    outcome.duplicates.append(f"{s.request_id}: event {event_id} x{count}")
            kinds = collections.Counter(_event_name(pb, e.type) for e in history)
            for kind in ("REQUEST_SUBMITTED", "ROUTING_DECIDED"):
                if kinds[kind] > 1:
                    outcome.duplicates.append(f"{s.request_id}: {kind} x{kinds[kind]}")
            started_rules = collections.Counter(
                e.deadline.rule_id for e in history
                if e.type == pb.events.EVENT_TYPE_DEADLINE_STARTED)
            for rule, count in started_rules.items():
                if count > 1:
                    outcome.duplicates.append(f"{s.request_id}: DEADLINE_STARTED {rule} x{count}")
            try:
                decision = _retrying(
                    reader.routing.GetRoutingDecision,
                    pb.routing.GetRoutingDecisionRequest(request_id=s.request_id),
                    timeout=5.0).decision
                if decision.request_id != s.request_id:
                    outcome.lost.append(f"{s.request_id}: routing decision for another id")
            except grpc.RpcError as error:
                outcome.lost.append(f"{s.request_id}: GetRoutingDecision {error.code().name}")
            deadlines = _retrying(
                reader.deadlines.ListDeadlines,
                pb.deadlines.ListDeadlinesRequest(target_request_id=s.request_id),
                timeout=5.0).deadlines
            rules = collections.Counter(d.rule_id for d in deadlines)
            if rules["EIO_ACKNOWLEDGE"] == 0:
                outcome.lost.append(f"{s.request_id}: no EIO_ACKNOWLEDGE deadline")
            for rule, count in rules.items():
                if count > 1:
                    outcome.duplicates.append(f"{s.request_id}: {count} deadlines of {rule}")

        log(f"verify: history, routing and deadlines checked at {time.monotonic() - started:.1f}s")
        # 5. Notifications: each inbox has each event of each request once. The issuer is
        #    told of everything; the executing authority, learned from the routing
        #    decision, of the decision and the status change that follows it.
        #    Deadline events are checked for "at most once" only, and the ones that reached
        #    no one are counted apart (Outcome.unaddressed): they name no parties, so
        #    notification sends them to the parties it learned from earlier events, and
        #    one that arrives before the request's first intake or routing event reaches
        #    no one. That is a known defect (KNOWN_DEFECTS below), not a fault effect: it
        #    happens whenever deadlines' relay is quicker than intake's.
        by_issuer = collections.defaultdict(list)
        for s in acked:
            by_issuer[s.issuer.authority_id].append(s.request_id)
        expectations = [(issuer, set(by_issuer[issuer.authority_id]),
                         ("REQUEST_SUBMITTED", "REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY",
                          "ROUTING_DECIDED")
                         + (("DEADLINE_STARTED",) if STRICT_DEADLINE_NOTIFICATIONS else ()))
                        for issuer in load.issuers]
        expectations.append((EXECUTING, known,
                             ("REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY", "ROUTING_DECIDED")))
        for who, request_ids, wanted in expectations:
            def counts(notes, request_ids=request_ids):
                c = collections.Counter()
                for n in notes:
                    if n.event.request_id in request_ids and not n.reannouncement:
                        c[(n.event.request_id, _event_name(pb, n.event.type))] += 1
                return c

            def complete(notes, request_ids=request_ids, wanted=wanted):
                c = counts(notes)
                return all(c[(r, k)] >= 1 for r in request_ids for k in wanted)

            notes = _read_inbox(cluster, who, complete,
                                max(5.0, deadline - time.monotonic()))
            outcome.notifications += len(notes)
            c = counts(notes)
            for r in sorted(request_ids):
                for k in wanted:
                    if c[(r, k)] == 0:
                        outcome.lost.append(f"{r}: no {k} in {who.authority_id}'s inbox")
                if who is not EXECUTING and "DEADLINE_STARTED" not in wanted \
                        and c[(r, "DEADLINE_STARTED")] == 0:
                    outcome.unaddressed.append(f"{r}: DEADLINE_STARTED reached no one")
            # A forwarded EIO starts two deadlines (acknowledgment and recognition) with one
            # DEADLINE_STARTED each: those are told once per deadline, not once per request.
            per_deadline = collections.Counter(
                (n.event.request_id, _event_name(pb, n.event.type), n.event.deadline.deadline_id)
                for n in notes if n.event.request_id in request_ids and not n.reannouncement
                and n.event.HasField("deadline"))
            for (r, k), count in sorted(c.items()):
                if k.startswith("DEADLINE_"):
                    continue
                if count > 1:
                    outcome.duplicates.append(f"{r}: {k} x{count} in {who.authority_id}'s inbox")
            for (r, k, deadline_id), count in sorted(per_deadline.items()):
                if count > 1:
                    outcome.duplicates.append(
                        f"{r}: {k} of {deadline_id} x{count} in {who.authority_id}'s inbox")
            same_id = collections.Counter((n.event.event_id, n.reannouncement) for n in notes)
            for (event_id, _), count in same_id.items():
                if count > 1:
                    outcome.duplicates.append(
                        f"event {event_id} x{count} in {who.authority_id}'s inbox")
        log(f"verify: inboxes read at {time.monotonic() - started:.1f}s")
    finally:
        for reader in readers.values():
            reader.close()
    outcome.settle_seconds = time.monotonic() - started
    return outcome


def figures_line(kind: str, load: LoadGenerator, outcome: Outcome, **extra) -> str:
    """The one line a fault test prints with its figures."""
    fields = {
        "submissions": len(load.submissions),
        "acknowledged": sum(1 for s in load.submissions if s.acked_during_load),
        "acknowledged_after_retry": sum(1 for s in load.submissions
                                        if s.acked_during_load and s.attempts > 1),
        "replayed_after_lost_ack": sum(1 for s in load.submissions if s.replayed),
        **extra,
        "deadline_events_reaching_no_one": len(outcome.unaddressed),
        "lost": len(outcome.lost),
        "duplicates": len(outcome.duplicates),
    }
    return f"FAULT {kind}: " + " ".join(f"{k}={v}" for k, v in fields.items())


def shuffled(seq, rng: random.Random) -> list:
    out = list(seq)
    rng.shuffle(out)
    return out
