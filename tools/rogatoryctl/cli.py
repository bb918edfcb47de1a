"""rogatoryctl: operate and try Rogatory from the command line.

Every command talks to the services only through their public gRPC APIs. Output is a
human-readable table by default and protobuf's JSON mapping with ``--output json``.
Nothing personal is ever printed in tables except on ``request get`` (which shows what the
caller may read anyway); JSON shows what the server returned.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import sys
import time
import uuid
from typing import Callable, Iterable, Sequence

import grpc
from google.protobuf import json_format

import rogatory_client as rc

# --------------------------------------------------------------------------------------
# Exit codes
# --------------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INVALID = 4
EXIT_DENIED = 5
EXIT_UNAVAILABLE = 6

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  any other error (internal error, unexpected answer)
  2  usage error (bad flags or arguments; argparse)
  3  not found (NOT_FOUND: no such request, document, job or deadline, or not yours)
  4  refused as asked (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED,
     OUT_OF_RANGE; an unreadable or invalid input file)
  5  not allowed (UNAUTHENTICATED, PERMISSION_DENIED)
  6  service unreachable or overloaded (UNAVAILABLE, DEADLINE_EXCEEDED,
     RESOURCE_EXHAUSTED); safe to retry a mutating command with the same --request-id

environment:
  ROGATORY_INTAKE_ADDR, ROGATORY_ROUTING_ADDR, ROGATORY_DEADLINES_ADDR,
  ROGATORY_NOTIFICATION_ADDR   service addresses (host:port; defaults 127.0.0.1:50051-50054)
  ROGATORY_TOKEN               bearer token (or --token, --token-file / ROGATORY_TOKEN_FILE)
  ROGATORY_AUTHORITY, ROGATORY_STATE, ROGATORY_ROLES
                               development identity (--as, --state, --roles): a token is
                               minted for it with the development key set (--dev-key-file /
                               ROGATORY_DEV_KEY_FILE, default deploy/dev-auth/keys.json)
  ROGATORY_CLIENT_CA_FILE, ROGATORY_CLIENT_CERT_FILE, ROGATORY_CLIENT_KEY_FILE
                               TLS: CA bundle, client certificate and key (mTLS)
"""

_CODE_TO_EXIT = {
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_INVALID,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_INVALID,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_INVALID,
    grpc.StatusCode.ABORTED: EXIT_INVALID,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_INVALID,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_DENIED,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_DENIED,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_UNAVAILABLE,
}


class CliError(Exception):
    """A failure to report on stderr with an exit code."""

    def __init__(self, message: str, code: int = EXIT_OTHER):
        super().__init__(message)
        self.code = code


def version() -> str:
    """The project's version (CMakeLists.txt's project(... VERSION x.y.z)); a zipapp built by
    build_zipapp.py carries it, with its commit, in _build_info."""
    try:
        import _build_info  # Only in a zipapp.
        return _build_info.DESCRIPTION
    except ImportError:
        pass
    try:
        text = (rc.REPO_ROOT / "CMakeLists.txt").read_text()
    except OSError:
        return "unknown"
    match = re.search(r"project\(\s*rogatory\s+VERSION\s+([0-9.]+)", text)
    return f"{match.group(1) if match else 'unknown'} (checkout {rc.REPO_ROOT})"


# --------------------------------------------------------------------------------------
# Connections and credentials
# --------------------------------------------------------------------------------------

DEFAULT_ADDRS = {
    "intake": "127.0.0.1:50051",
    "routing": "127.0.0.1:50052",
    "deadlines": "127.0.0.1:50053",
    "notification": "127.0.0.1:50054",
}


@dataclasses.dataclass(frozen=True)
class _Metadata:
    """Call metadata for rogatory_client's interceptor (anything with .metadata())."""

    items: tuple[tuple[str, str], ...]

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.items


class Context:
    """What every command needs: addresses, credentials, output format."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.output = args.output
        self.timeout = args.timeout
        self.addrs = {name: getattr(args, f"{name}_addr") for name in DEFAULT_ADDRS}
        self._channels: dict[str, grpc.Channel] = {}

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        args = self.args
        items: list[tuple[str, str]] = []
        token = args.token
        if not token and args.token_file:
            try:
                token = pathlib.Path(args.token_file).read_text().strip()
            except OSError as error:
                raise CliError(f"cannot read --token-file: {error}", EXIT_INVALID)
        if token:
            items.append(("authorization", f"Bearer {token}"))
        elif args.authority:
            # A development identity: a token minted with the development key set (and the
            # x-rogatory-* metadata for services run with --auth=metadata).
            roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
            caller = rc.Caller(args.authority, args.state or "", roles)
            if args.dev_key_file and "key_file" in {f.name for f in dataclasses.fields(caller)}:
                caller = dataclasses.replace(caller, key_file=args.dev_key_file)
            try:
                items.extend(caller.metadata())
            except (OSError, ValueError, KeyError) as error:
                raise CliError(f"cannot mint a development token for --as: {error}",
                               EXIT_INVALID)
        if args.justification:
            items.append(("x-rogatory-justification", args.justification))
        return tuple(items)

    def channel(self, service: str) -> grpc.Channel:
        if service not in self._channels:
            addr = self.addrs[service]
            args = self.args
            if args.ca or args.cert:
                def read(path):
                    if not path:
                        return None
                    try:
                        return pathlib.Path(path).read_bytes()
                    except OSError as error:
                        raise CliError(f"cannot read {path}: {error}", EXIT_INVALID)
                if bool(args.cert) != bool(args.key):
                    raise CliError("--cert and --key go together", EXIT_USAGE)
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=read(args.ca), private_key=read(args.key),
                    certificate_chain=read(args.cert))
                options = ([("grpc.ssl_target_name_override", args.tls_server_name)]
                           if args.tls_server_name else [])
                channel = grpc.secure_channel(addr, credentials, options=options)
            else:
                channel = grpc.insecure_channel(addr)
            metadata = self._metadata()
            if metadata:
                channel = grpc.intercept_channel(
                    channel, rc._CallerMetadataInterceptor(_Metadata(metadata)))
            self._channels[service] = channel
        return self._channels[service]

    def intake(self):
        return rc.stubs().intake_grpc.IntakeServiceStub(self.channel("intake"))

    def routing(self):
        return rc.stubs().routing_grpc.TranslationRoutingServiceStub(self.channel("routing"))

    def deadlines(self):
        return rc.stubs().deadlines_grpc.DeadlineServiceStub(self.channel("deadlines"))

    def notification(self):
        return rc.stubs().notification_grpc.NotificationServiceStub(
            self.channel("notification"))

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


# --------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------


def to_dict(message) -> dict:
    return json_format.MessageToDict(message)


def emit_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, sort_keys=False)
    sys.stdout.write("\n")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers).rstrip())
    for row in rows:
        print(line.format(*row).rstrip())
    if not rows:
        print("(none)")


def enum_name(enum_type, value: int, prefix: str) -> str:
    try:
        name = enum_type.Name(value)
    except ValueError:
        return str(value)
    return name[len(prefix):] if name.startswith(prefix) else name


def enum_value(enum_type, text: str, prefix: str, what: str) -> int:
    """Parses FORWARDED, forwarded or REQUEST_STATUS_FORWARDED."""
    name = text.strip().upper().replace("-", "_")
    for candidate in (name, prefix + name):
        try:
            return enum_type.Value(candidate)
        except ValueError:
            continue
    choices = ", ".join(n[len(prefix):] for n in enum_type.keys()
                        if not n.endswith("UNSPECIFIED"))
    raise CliError(f"unknown {what} '{text}'; one of: {choices}", EXIT_USAGE)


def ts(timestamp) -> str:
    if timestamp is None or (timestamp.seconds == 0 and timestamp.nanos == 0):
        return ""
    return timestamp.ToJsonString()


def parse_duration(text: str) -> int:
    """'90s', '30m', '2h', '61d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    try:
        if text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except (ValueError, IndexError):
        raise CliError(f"bad duration '{text}' (use 90s, 30m, 2h, 61d)", EXIT_USAGE)


def status_name(value: int) -> str:
    return enum_name(rc.stubs().types.RequestStatus, value, "REQUEST_STATUS_")


def instrument_name(value: int) -> str:
    return enum_name(rc.stubs().types.Instrument, value, "INSTRUMENT_")


def event_type_name(value: int) -> str:
    return enum_name(rc.stubs().events.EventType, value, "EVENT_TYPE_")


def new_key(args) -> str:
    return getattr(args, "request_id", None) or str(uuid.uuid4())


# --------------------------------------------------------------------------------------
# Request files
# --------------------------------------------------------------------------------------


def load_content(path: str):
    """Reads a RequestContent from a JSON or YAML file (protobuf's JSON mapping)."""
    pb = rc.stubs()
    try:
        text = pathlib.Path(path).read_text() if path != "-" else sys.stdin.read()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error}", EXIT_INVALID)
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml  # python3-yaml
        except ImportError:
            raise CliError("YAML needs python3-yaml (apt-get install python3-yaml); "
                           "or give a JSON file", EXIT_INVALID)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise CliError(f"{path}: {error}", EXIT_INVALID)
    else:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise CliError(f"{path}: {error}", EXIT_INVALID)
    content = pb.intake.RequestContent()
    try:
        json_format.ParseDict(data, content)
    except json_format.ParseError as error:
        raise CliError(f"{path}: not a RequestContent: {error}", EXIT_INVALID)
    return content


# --------------------------------------------------------------------------------------
# Commands: requests
# --------------------------------------------------------------------------------------


def every_page(call, request, field: str, timeout: float) -> list:
    """Every item of a paginated List call: follows next_page_token to the end."""
    items = []
    while True:
        response = call(request, timeout=timeout)
        items.extend(getattr(response, field))
        if not response.next_page_token:
            return items
        request.page_token = response.next_page_token


def request_row(r) -> list:
    c = r.content
    return [r.id, status_name(r.status), instrument_name(c.instrument),
            f"{c.issuing_authority.authority_id} ({c.issuing_authority.state})",
            c.requested_state, r.executing_authority.authority_id, c.source_language,
            ts(r.update_time)]


REQUEST_HEADERS = ["ID", "STATUS", "INSTRUMENT", "ISSUER", "TO", "EXECUTING", "LANG",
                   "UPDATED"]


def show_request(ctx: Context, request) -> None:
    if ctx.output == "json":
        emit_json(to_dict(request))
        return
    table(REQUEST_HEADERS, [request_row(request)])
    for missing in request.missing_elements:
        print(f"missing: {missing.field} ({missing.code}): {missing.description}")
    print(f"etag: {request.etag}")


def cmd_request_submit(ctx: Context, args) -> None:
    pb = rc.stubs()
    content = load_content(args.file)
    response = ctx.intake().SubmitRequest(
        pb.intake.SubmitRequestRequest(request_id=new_key(args), content=content),
        timeout=ctx.timeout)
    show_request(ctx, response.request)


def cmd_request_get(ctx: Context, args) -> None:
    pb = rc.stubs()
    view = enum_value(pb.intake.RequestView, args.view, "REQUEST_VIEW_", "view")
    response = ctx.intake().GetRequest(pb.intake.GetRequestRequest(id=args.id, view=view),
                                       timeout=ctx.timeout)
    show_request(ctx, response.request)


def cmd_request_list(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.intake.ListRequestsRequest(page_size=args.page_size)
    if args.status:
        request.status = enum_value(pb.types.RequestStatus, args.status, "REQUEST_STATUS_",
                                    "status")
    if args.instrument:
        request.instrument = enum_value(pb.types.Instrument, args.instrument, "INSTRUMENT_",
                                        "instrument")
    if args.urgency:
        request.urgency = enum_value(pb.types.Urgency, args.urgency, "URGENCY_", "urgency")
    request.issuing_state = args.issuing_state or ""
    request.requested_state = args.requested_state or ""
    found = []
    for _ in range(args.max_pages):
        response = ctx.intake().ListRequests(request, timeout=ctx.timeout)
        found.extend(response.requests)
        request.page_token = response.next_page_token
        if not response.next_page_token or not args.all:
            break
    if ctx.output == "json":
        emit_json({"requests": [to_dict(r) for r in found],
                   "nextPageToken": request.page_token})
        return
    table(REQUEST_HEADERS, [request_row(r) for r in found])
    if request.page_token:
        print("(more: use --all)")


def history_of(ctx: Context, request_id: str) -> list:
    pb = rc.stubs()
    events, token = [], ""
    while True:
        response = ctx.intake().GetRequestHistory(pb.intake.GetRequestHistoryRequest(
            id=request_id, page_size=1000, page_token=token), timeout=ctx.timeout)
        events.extend(response.events)
        token = response.next_page_token
        if not token:
            return events


def cmd_request_history(ctx: Context, args) -> None:
    events = history_of(ctx, args.id)
    if ctx.output == "json":
        emit_json({"events": [to_dict(e) for e in events]})
        return
    table(["SEQ", "TIME", "EVENT", "STATUS", "ACTOR", "SOURCE", "REASON"],
          [[e.sequence, ts(e.occur_time), event_type_name(e.type),
            status_name(e.status) if e.status else "",
            e.actor.authority.authority_id, e.source, e.reason_code] for e in events])


def cmd_request_transition(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.intake.TransitionRequestRequest(
        request_id=new_key(args), id=args.id,
        target_status=enum_value(pb.types.RequestStatus, args.status, "REQUEST_STATUS_",
                                 "status"),
        reason_code=args.reason or "", legal_basis=args.legal_basis or "",
        note=args.note or "", etag=args.etag or "")
    for ground in args.refusal_ground or []:
        request.refusal_grounds.append(
            enum_value(pb.types.RefusalGround, ground, "REFUSAL_GROUND_", "refusal ground"))
    show_request(ctx, ctx.intake().TransitionRequest(request, timeout=ctx.timeout).request)


def cmd_request_acknowledge(ctx: Context, args) -> None:
    pb = rc.stubs()
    response = ctx.intake().AcknowledgeRequest(pb.intake.AcknowledgeRequestRequest(
        request_id=new_key(args), id=args.id, etag=args.etag or ""), timeout=ctx.timeout)
    show_request(ctx, response.request)


def cmd_request_supplement(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.intake.SupplementRequestRequest(
        request_id=new_key(args), id=args.id, content=load_content(args.file),
        etag=args.etag or "")
    request.update_mask.paths.extend(p.strip() for p in args.fields.split(",") if p.strip())
    show_request(ctx, ctx.intake().SupplementRequest(request, timeout=ctx.timeout).request)


def cmd_request_withdraw(ctx: Context, args) -> None:
    pb = rc.stubs()
    response = ctx.intake().WithdrawRequest(pb.intake.WithdrawRequestRequest(
        request_id=new_key(args), id=args.id, reason_code=args.reason or "",
        etag=args.etag or ""), timeout=ctx.timeout)
    show_request(ctx, response.request)


# --------------------------------------------------------------------------------------
# Commands: documents
# --------------------------------------------------------------------------------------

CHUNK = 1 << 20


def document_row(d) -> list:
    return [d.id, enum_name(rc.stubs().intake.DocumentKind, d.kind, "DOCUMENT_KIND_"),
            d.language, d.media_type, d.size_bytes, d.sha256[:16], d.translation_of_document_id,
            ts(d.create_time)]


DOCUMENT_HEADERS = ["ID", "KIND", "LANG", "TYPE", "BYTES", "SHA256", "TRANSLATES", "CREATED"]


def cmd_document_upload(ctx: Context, args) -> None:
    pb = rc.stubs()
    try:
        data = pathlib.Path(args.file).read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error}", EXIT_INVALID)
    metadata = pb.intake.DocumentUpload(
        request_id=new_key(args), id=args.id,
        kind=enum_value(pb.intake.DocumentKind, args.kind, "DOCUMENT_KIND_", "kind"),
        language=args.language, media_type=args.media_type,
        translation_of_document_id=args.translation_of or "",
        sha256=hashlib.sha256(data).hexdigest(), title=args.title or "")

    def parts():
        yield pb.intake.UploadDocumentRequest(metadata=metadata)
        for at in range(0, len(data), CHUNK):
            yield pb.intake.UploadDocumentRequest(chunk=data[at:at + CHUNK])

    document = ctx.intake().UploadDocument(parts(), timeout=max(ctx.timeout, 60)).document
    if ctx.output == "json":
        emit_json(to_dict(document))
    else:
        table(DOCUMENT_HEADERS, [document_row(document)])


def cmd_document_download(ctx: Context, args) -> None:
    pb = rc.stubs()
    received, metadata = bytearray(), None
    for message in ctx.intake().DownloadDocument(pb.intake.DownloadDocumentRequest(
            id=args.id, document_id=args.document_id), timeout=max(ctx.timeout, 60)):
        if message.HasField("metadata"):
            metadata = message.metadata
        else:
            received.extend(message.chunk)
    if metadata is not None and metadata.sha256 and \
            hashlib.sha256(received).hexdigest() != metadata.sha256:
        raise CliError("downloaded bytes do not match the document's SHA-256")
    out = args.out or (metadata.id if metadata else args.document_id)
    if out == "-":
        sys.stdout.buffer.write(received)
        return
    pathlib.Path(out).write_bytes(received)
    if ctx.output == "json":
        emit_json({"document": to_dict(metadata) if metadata else {}, "path": out,
                   "bytes": len(received)})
    else:
        print(f"wrote {len(received)} bytes to {out}")


def cmd_document_list(ctx: Context, args) -> None:
    pb = rc.stubs()
    documents = every_page(ctx.intake().ListDocuments,
                           pb.intake.ListDocumentsRequest(id=args.id, page_size=500),
                           "documents", ctx.timeout)
    if ctx.output == "json":
        emit_json({"documents": [to_dict(d) for d in documents]})
    else:
        table(DOCUMENT_HEADERS, [document_row(d) for d in documents])


# --------------------------------------------------------------------------------------
# Commands: translation jobs
# --------------------------------------------------------------------------------------

JOB_HEADERS = ["ID", "REQUEST", "DOCUMENT", "PAIR", "STATUS", "HOLDER", "LEASE_TOKEN",
               "LEASE_END", "TRANSLATION"]


def job_row(j) -> list:
    return [j.id, j.request_id, j.document_id, f"{j.source_language}>{j.target_language}",
            enum_name(rc.stubs().routing.TranslationJobStatus, j.status,
                      "TRANSLATION_JOB_STATUS_"),
            j.claimed_by, j.lease_token or "", ts(j.lease_expire_time), j.translated_document_id]


def show_job(ctx: Context, job) -> None:
    if ctx.output == "json":
        emit_json(to_dict(job))
    else:
        table(JOB_HEADERS, [job_row(job)])


def cmd_jobs_list(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.routing.ListTranslationJobsRequest(
        target_language=args.target_language or "", request_id=args.request or "",
        page_size=args.page_size)
    if args.status:
        request.status = enum_value(pb.routing.TranslationJobStatus, args.status,
                                    "TRANSLATION_JOB_STATUS_", "job status")
    jobs = ctx.routing().ListTranslationJobs(request, timeout=ctx.timeout).jobs
    if ctx.output == "json":
        emit_json({"jobs": [to_dict(j) for j in jobs]})
    else:
        table(JOB_HEADERS, [job_row(j) for j in jobs])


def cmd_jobs_claim(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.routing.ClaimTranslationJobRequest(
        request_id=new_key(args), source_languages=args.source, target_languages=args.target)
    if args.lease:
        request.lease_duration.seconds = parse_duration(args.lease)
    show_job(ctx, ctx.routing().ClaimTranslationJob(request, timeout=ctx.timeout).job)


def cmd_jobs_complete(ctx: Context, args) -> None:
    pb = rc.stubs()
    sha256 = args.sha256
    if not sha256:
        documents = every_page(
            ctx.intake().ListDocuments,
            pb.intake.ListDocumentsRequest(id=args.request, page_size=500), "documents",
            ctx.timeout) if args.request else []
        match = [d for d in documents if d.id == args.document]
        if not match:
            raise CliError("give --sha256, or --request so the document's SHA-256 can be "
                           "looked up", EXIT_USAGE)
        sha256 = match[0].sha256
    job = ctx.routing().CompleteTranslationJob(pb.routing.CompleteTranslationJobRequest(
        request_id=new_key(args), job_id=args.job_id, lease_token=args.lease_token,
        translated_document_id=args.document, translated_document_sha256=sha256),
        timeout=ctx.timeout).job
    show_job(ctx, job)


# --------------------------------------------------------------------------------------
# Commands: deadlines
# --------------------------------------------------------------------------------------


def cmd_deadlines_list(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.deadlines.ListDeadlinesRequest(
        target_request_id=args.request or "", executing_authority_id=args.executing_authority or "",
        page_size=args.page_size)
    if args.deadline_state:
        request.state = enum_value(pb.deadlines.DeadlineState, args.deadline_state, "DEADLINE_STATE_",
                                   "deadline state")
    if args.due_within:
        request.due_before_time.FromSeconds(int(time.time()) + parse_duration(args.due_within))
    deadlines = ctx.deadlines().ListDeadlines(request, timeout=ctx.timeout).deadlines
    # The service answers overdue first, then by due time; keep that order (and make sure).
    overdue = pb.deadlines.DEADLINE_STATE_OVERDUE
    deadlines = sorted(deadlines, key=lambda d: (d.state != overdue,))
    if ctx.output == "json":
        emit_json({"deadlines": [to_dict(d) for d in deadlines]})
        return
    table(["ID", "REQUEST", "RULE", "STATE", "DUE", "ESCALATION", "AUTHORITY"],
          [[d.id, d.request_id, d.rule_id,
            enum_name(pb.deadlines.DeadlineState, d.state, "DEADLINE_STATE_"), ts(d.due_time),
            d.escalation_level or "", d.executing_authority_id] for d in deadlines])


# --------------------------------------------------------------------------------------
# Commands: notifications
# --------------------------------------------------------------------------------------


def notification_row(n) -> list:
    e = n.event
    return [n.cursor, ts(n.accept_time), e.request_id, event_type_name(e.type),
            status_name(e.status) if e.status else "", e.source,
            "re-announced" if n.reannouncement else ""]


def cmd_notifications_watch(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.notification.SubscribeRequest(cursor=args.cursor or "")
    request.start_position = (pb.notification.START_POSITION_OLDEST if args.from_start
                              else pb.notification.START_POSITION_LIVE)
    for event_type in args.event_type or []:
        request.filter.event_types.append(
            enum_value(pb.events.EventType, event_type, "EVENT_TYPE_", "event type"))
    seen = 0
    last_cursor = ""
    if ctx.output != "json":
        print("  ".join(["CURSOR", "ACCEPTED", "REQUEST", "EVENT", "STATUS", "SOURCE", ""]))
    stream = ctx.notification().Subscribe(request, timeout=args.duration or None)
    try:
        for message in stream:
            if not message.HasField("notification"):
                continue
            n = message.notification
            if args.request and n.event.request_id != args.request:
                continue
            seen += 1
            last_cursor = n.cursor
            if ctx.output == "json":
                print(json.dumps(to_dict(n), ensure_ascii=False), flush=True)
            else:
                print("  ".join(str(v) for v in notification_row(n)), flush=True)
            if args.count and seen >= args.count:
                stream.cancel()
                break
    except grpc.RpcError as error:
        if error.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            raise
    except KeyboardInterrupt:
        stream.cancel()
    if args.ack and last_cursor:
        ctx.notification().Ack(pb.notification.AckRequest(cursor=last_cursor),
                               timeout=ctx.timeout)


def cmd_notifications_evidence(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.notification.GetDeliveryStatusRequest()
    if args.event:
        request.event_id = args.event
    else:
        request.request_id = args.request
    evidences = ctx.notification().GetDeliveryStatus(request, timeout=ctx.timeout).evidences
    if ctx.output == "json":
        emit_json({"evidences": [to_dict(e) for e in evidences]})
        return
    table(["EVENT", "REQUEST", "RECIPIENT", "STAGE", "TIME", "SUBSCRIPTION"],
          [[e.event_id, e.request_id, e.recipient.authority_id,
            enum_name(pb.notification.DeliveryStage, e.stage, "DELIVERY_STAGE_"),
            ts(e.record_time), e.subscription_id] for e in evidences])


# --------------------------------------------------------------------------------------
# Commands: health, clock, tokens
# --------------------------------------------------------------------------------------

SERVICE_FULL_NAMES = {
    "intake": rc.INTAKE_SERVICE,
    "routing": rc.ROUTING_SERVICE,
    "deadlines": rc.DEADLINE_SERVICE,
    "notification": rc.NOTIFICATION_SERVICE,
}


def cmd_health(ctx: Context, args) -> None:
    results = []
    for name, full_name in SERVICE_FULL_NAMES.items():
        channel = ctx.channel(name)
        entry = {"service": name, "address": ctx.addrs[name]}
        for key, health_name in (("server", ""), ("readiness", full_name)):
            try:
                entry[key] = rc.health_check(channel, health_name, timeout=ctx.timeout)
            except grpc.RpcError as error:
                entry[key] = error.code().name
        results.append(entry)
    if ctx.output == "json":
        emit_json({"services": results})
    else:
        table(["SERVICE", "ADDRESS", "SERVER", "READINESS"],
              [[r["service"], r["address"], r["server"], r["readiness"]] for r in results])
    if any(r["server"] != "SERVING" or r["readiness"] != "SERVING" for r in results):
        raise CliError("not every service is SERVING", EXIT_UNAVAILABLE)


def cmd_clock(ctx: Context, args) -> None:
    pb = rc.stubs()
    stub = pb.test_clock_grpc.TestClockServiceStub(ctx.channel(args.via))
    if args.clock_command == "advance":
        response = stub.AdvanceTime(pb.test_clock.AdvanceTimeRequest(
            by={"seconds": parse_duration(args.by)}), timeout=ctx.timeout)
    else:
        response = stub.GetTime(pb.test_clock.GetTimeRequest(), timeout=ctx.timeout)
    if ctx.output == "json":
        emit_json(to_dict(response))
    else:
        print(f"now {ts(response.now)} (offset {response.offset.seconds}s from real time)")


def cmd_token_mint(ctx: Context, args) -> None:
    mint = getattr(rc, "mint_dev_token", None)
    if mint is None:
        raise CliError("this checkout's rogatory_client has no mint_dev_token yet")
    roles = tuple(r.strip() for r in args.token_roles.split(",") if r.strip())
    try:
        ttl = parse_duration(args.ttl) if args.ttl else None
        token = mint(args.key_file, args.sub, args.token_state, roles, ttl,
                     args.issuer, args.audience, args.kid)
    except (OSError, ValueError, KeyError) as error:
        raise CliError(f"cannot mint: {error}", EXIT_INVALID)
    if ctx.output == "json":
        emit_json({"token": token, "sub": args.sub, "state": args.token_state,
                   "roles": list(roles)})
    else:
        print(token)


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    import ops  # The operator commands import this module's helpers: load it first.

    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="rogatoryctl", formatter_class=_Formatter, allow_abbrev=False,
        description="Command-line client of Rogatory: submit and follow cross-border "
                    "judicial cooperation requests, translate, watch deadlines and "
                    "notifications.",
        epilog=EXIT_CODES_HELP + """
examples:
  rogatoryctl --as FR-TJ-PARIS-JI --state FR --roles issuing request submit samples/requests/eio-fr-de.json
  rogatoryctl request list --requested-state DE --status forwarded
  rogatoryctl --output json request history rq-3-01...
  rogatoryctl --as XL-VENDOR-1 --state BE --roles translator jobs claim --from fr --to de
  rogatoryctl --token-file de.jwt notifications watch --from-start
""")
    conn = parser.add_argument_group("connection")
    for name, default in DEFAULT_ADDRS.items():
        conn.add_argument(f"--{name}-addr", default=env(f"ROGATORY_{name.upper()}_ADDR", default),
                          metavar="HOST:PORT",
                          help=f"{name} service (env ROGATORY_{name.upper()}_ADDR; "
                               f"default {default})")
    conn.add_argument("--timeout", type=float, default=10.0, help="seconds per call (10)")
    conn.add_argument("--ca", default=env("ROGATORY_CLIENT_CA_FILE"),
                      help="CA bundle (PEM) to verify servers: turns TLS on "
                           "(env ROGATORY_CLIENT_CA_FILE)")
    conn.add_argument("--cert", default=env("ROGATORY_CLIENT_CERT_FILE"),
                      help="client certificate (PEM) for mutual TLS "
                           "(env ROGATORY_CLIENT_CERT_FILE)")
    conn.add_argument("--key", default=env("ROGATORY_CLIENT_KEY_FILE"),
                      help="client private key (PEM) for mutual TLS "
                           "(env ROGATORY_CLIENT_KEY_FILE)")
    conn.add_argument("--tls-server-name", default=env("ROGATORY_TLS_SERVER_NAME"),
                      help="expected server name in its certificate, if not the host")
    auth = parser.add_argument_group("who is calling")
    auth.add_argument("--token", default=env("ROGATORY_TOKEN"),
                      help="bearer token (JWT) (env ROGATORY_TOKEN)")
    auth.add_argument("--token-file", default=env("ROGATORY_TOKEN_FILE"),
                      help="file holding the bearer token (env ROGATORY_TOKEN_FILE)")
    auth.add_argument("--as", dest="authority", default=env("ROGATORY_AUTHORITY"),
                      metavar="AUTHORITY_ID",
                      help="development identity: authority id (env ROGATORY_AUTHORITY)")
    auth.add_argument("--state", default=env("ROGATORY_STATE", ""),
                      help="development identity: state, ISO 3166-1 alpha-2")
    auth.add_argument("--roles", default=env("ROGATORY_ROLES", "issuing"),
                      help="development identity: comma-separated roles (issuing, central, "
                           "executing, translator, auditor, operator)")
    auth.add_argument("--dev-key-file", default=env("ROGATORY_DEV_KEY_FILE"),
                      help="development key set to mint --as tokens with (default "
                           "deploy/dev-auth/keys.json)")
    auth.add_argument("--justification", default=env("ROGATORY_JUSTIFICATION"),
                      help="why you read this (recorded in the audit log)")
    parser.add_argument("--output", "-o", choices=("table", "json"), default="table",
                        help="table (default) or json (protobuf's JSON mapping; an error is "
                             "then one JSON object on stderr)")
    parser.add_argument("--version", action="version", version=f"rogatoryctl {version()}")

    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def group(name: str, help_text: str):
        p = commands.add_parser(name, help=help_text, description=help_text,
                                epilog=EXIT_CODES_HELP, formatter_class=_Formatter,
                                allow_abbrev=False)
        return p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)

    def command(sub, name: str, help_text: str, func: Callable, mutating: bool = False):
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=EXIT_CODES_HELP, formatter_class=_Formatter,
                           allow_abbrev=False)
        p.set_defaults(func=func)
        if mutating:
            p.add_argument("--request-id", help="idempotency key (default: a fresh UUID); "
                                                "repeat it to retry safely")
        return p

    # request
    req = group("request", "submit and follow requests (intake)")
    p = command(req, "submit", "submit a request from a JSON or YAML file (RequestContent in "
                "protobuf's JSON mapping; see samples/requests/)", cmd_request_submit, True)
    p.add_argument("file", help="JSON (.json) or YAML (.yaml/.yml) file; - for JSON on stdin")
    p = command(req, "get", "show one request", cmd_request_get)
    p.add_argument("id")
    p.add_argument("--view", default="full", help="full (default) or basic")
    p = command(req, "list", "list requests, newest first, with filters", cmd_request_list)
    p.add_argument("--status", help="e.g. forwarded, translation_pending")
    p.add_argument("--instrument", help="e.g. eio, eaw, mla")
    p.add_argument("--issuing-state")
    p.add_argument("--requested-state")
    p.add_argument("--urgency", help="normal, urgent or emergency")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--all", action="store_true", help="follow every page")
    p.add_argument("--max-pages", type=int, default=100, help=argparse.SUPPRESS)
    p = command(req, "history", "show a request's history, oldest first",
                cmd_request_history)
    p.add_argument("id")
    p = command(req, "transition", "move a request to another status", cmd_request_transition,
                True)
    p.add_argument("id")
    p.add_argument("status", help="target status, e.g. recognised, refused, in_execution "
                                  "(an EIO's acknowledgment: request acknowledge)")
    p.add_argument("--reason", help="reason code, e.g. NO_GROUNDS")
    p.add_argument("--legal-basis")
    p.add_argument("--refusal-ground", action="append",
                   help="refusal ground (repeatable), e.g. dual_criminality")
    p.add_argument("--note", help="free text kept in the history")
    p.add_argument("--etag", help="apply only if the request still has this etag")
    p = command(req, "acknowledge",
                "acknowledge receipt of a forwarded EIO (Annex B; the executing authority)",
                cmd_request_acknowledge, True)
    p.add_argument("id")
    p.add_argument("--etag", help="apply only if the request still has this etag")
    p = command(req, "supplement", "add missing elements from a file", cmd_request_supplement,
                True)
    p.add_argument("id")
    p.add_argument("file", help="JSON or YAML RequestContent holding the new values")
    p.add_argument("--fields", required=True,
                   help="comma-separated RequestContent fields to replace, e.g. measures")
    p.add_argument("--etag")
    p = command(req, "withdraw", "withdraw a request (its issuer only)", cmd_request_withdraw,
                True)
    p.add_argument("id")
    p.add_argument("--reason", help="reason code, e.g. NO_LONGER_NEEDED")
    p.add_argument("--etag")

    # document
    doc = group("document", "attach and fetch documents (intake)")
    p = command(doc, "upload", "upload a file as a document of a request",
                cmd_document_upload, True)
    p.add_argument("id", help="the request")
    p.add_argument("file")
    p.add_argument("--kind", default="request_form",
                   help="request_form (default), translation, supplement, evidence, "
                        "certificate, other")
    p.add_argument("--language", required=True, help="BCP 47, e.g. fr")
    p.add_argument("--media-type", default="application/pdf")
    p.add_argument("--title")
    p.add_argument("--translation-of", help="for a translation: the document it translates")
    p = command(doc, "download", "download a document", cmd_document_download)
    p.add_argument("id", help="the request")
    p.add_argument("document_id")
    p.add_argument("--out", help="file to write (default: the document id; - for stdout)")
    p = command(doc, "list", "list a request's documents", cmd_document_list)
    p.add_argument("id", help="the request")

    # jobs
    jobs = group("jobs", "translation jobs (translation-routing)")
    p = command(jobs, "list", "list translation jobs (translators see the jobs they hold)",
                cmd_jobs_list)
    p.add_argument("--status", help="queued, claimed, completed, failed, cancelled")
    p.add_argument("--target-language")
    p.add_argument("--request", help="only this request's jobs")
    p.add_argument("--page-size", type=int, default=50)
    p = command(jobs, "claim", "claim the most urgent job for your language pairs",
                cmd_jobs_claim, True)
    p.add_argument("--from", dest="source", action="append", required=True,
                   help="source language (repeatable)")
    p.add_argument("--to", dest="target", action="append", required=True,
                   help="target language (repeatable)")
    p.add_argument("--lease", help="lease length, e.g. 30m (default: the service's)")
    p = command(jobs, "complete", "complete a claimed job with an uploaded translation",
                cmd_jobs_complete, True)
    p.add_argument("job_id")
    p.add_argument("--lease-token", type=int, required=True,
                   help="the fencing token received when claiming")
    p.add_argument("--document", required=True, help="the translated document's id")
    p.add_argument("--sha256", help="its SHA-256 (default: looked up through --request)")
    p.add_argument("--request", help="the job's request (to look up the SHA-256)")

    # deadlines
    dl = group("deadlines", "legal time limits (deadline-tracking)")
    p = command(dl, "list", "list deadlines, overdue first, then by due time",
                cmd_deadlines_list)
    p.add_argument("--request", help="only this request's deadlines")
    p.add_argument("--authority", dest="executing_authority",
                   help="only this executing authority's")
    p.add_argument("--state", dest="deadline_state",
                   help="running, overdue, met, cancelled, suspended")
    p.add_argument("--due-within", help="only those due within this long, e.g. 7d")
    p.add_argument("--page-size", type=int, default=100)
    ops.register_deadline_operations(dl, command)

    # notifications
    nt = group("notifications", "your authority's inbox (notification)")
    p = command(nt, "watch", "stream your inbox live (Ctrl-C to stop)",
                cmd_notifications_watch)
    p.add_argument("--from-start", action="store_true",
                   help="start at the oldest retained notification (default: live)")
    p.add_argument("--cursor", help="resume after this cursor")
    p.add_argument("--request", help="only this request's notifications")
    p.add_argument("--event-type", action="append", help="only this event type (repeatable)")
    p.add_argument("--count", type=int, help="stop after this many notifications")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--ack", action="store_true",
                   help="acknowledge (retrieve) what was shown when the watch ends")
    p = command(nt, "evidence", "delivery evidence of an event or a request",
                cmd_notifications_evidence)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--event", help="an event id")
    target.add_argument("--request", help="a request id")

    # subscriptions, dead letters, audit
    ops.register(group, command, tuple(DEFAULT_ADDRS))

    # health
    command(commands, "health", "health of all four services (server and readiness)",
            cmd_health)

    # clock
    clock = group("clock", "the shared test clock (services run with --test-clock only)")
    for name, help_text in (("get", "show the test clock"),
                            ("advance", "move the test clock forward")):
        p = command(clock, name, help_text, cmd_clock)
        p.add_argument("--via", choices=tuple(DEFAULT_ADDRS), default="deadlines",
                       help="which service to ask (they share one clock)")
        if name == "advance":
            p.add_argument("by", help="how far, e.g. 61d, 12h")

    # token
    tok = group("token", "development tokens")
    p = command(tok, "mint", "mint a development token (HS256) with the development key set",
                cmd_token_mint)
    p.add_argument("--key-file", default=str(rc.REPO_ROOT / "deploy" / "dev-auth" / "keys.json"),
                   help="development key set (default deploy/dev-auth/keys.json)")
    p.add_argument("--sub", required=True, help="authority id, e.g. FR-TJ-PARIS-JI")
    p.add_argument("--state", dest="token_state", required=True, help="its state, e.g. FR")
    p.add_argument("--roles", dest="token_roles", required=True,
                   help="comma-separated roles")
    p.add_argument("--ttl", default=None,
                   help="lifetime, e.g. 30m (default: 1h for callers, 5m for a rogatory-* "
                        "service; the services refuse longer than 1h and 10m)")
    p.add_argument("--issuer", default="rogatory-dev")
    p.add_argument("--audience", default="rogatory")
    p.add_argument("--kid", default=None,
                   help="key id in the key set (default: the key whose \"subjects\" fits "
                        "the token: services for a rogatory-* subject or the service role, "
                        "authorities otherwise)")
    return parser


def report_error(ctx: Context, code: int, status: str, message: str,
                 violations: Sequence[tuple[str, str]] = ()) -> int:
    """Writes an error on stderr, as text or (with --output json) as one JSON object:
    {"error": {"status": "NOT_FOUND", "message": ..., "exitCode": 3,
    "fieldViolations": [{"field": ..., "description": ...}]}}. Returns the exit code."""
    if ctx.output == "json":
        error = {"status": status, "message": message, "exitCode": code}
        if violations:
            error["fieldViolations"] = [{"field": f, "description": d} for f, d in violations]
        print(json.dumps({"error": error}, ensure_ascii=False), file=sys.stderr)
        return code
    print(f"rogatoryctl: {status + ': ' if status != 'CLI' else ''}{message}", file=sys.stderr)
    for field, description in violations:
        print(f"  {field}: {description}", file=sys.stderr)
    return code


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args)
    try:
        args.func(ctx, args)
        return EXIT_OK
    except CliError as error:
        return report_error(ctx, error.code, "CLI", str(error))
    except grpc.RpcError as error:
        code = error.code()
        return report_error(ctx, _CODE_TO_EXIT.get(code, EXIT_OTHER), code.name,
                            error.details() or "", rc.field_violations(error))
    except rc.StubGenerationError as error:
        return report_error(ctx, EXIT_OTHER, "CLI", str(error))
    except BrokenPipeError:
        return EXIT_OK
    finally:
        ctx.close()
