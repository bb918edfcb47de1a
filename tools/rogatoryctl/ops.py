"""rogatoryctl's commands for people who run Rogatory: webhook subscriptions, dead letters,
audit verification and deadline operations.

Each command is one public RPC; who may call it is the service's business (the README's
Security section), so a refusal comes back as the service's own status and exit code.
"""

from __future__ import annotations

import json
import pathlib
import time

import rogatory_client as rc
from cli import (EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OTHER, CliError, Context, emit_json,
                 enum_name, enum_value, every_page, new_key, parse_duration, table, to_dict,
                 ts)

# --------------------------------------------------------------------------------------
# Webhook subscriptions (notification)
# --------------------------------------------------------------------------------------


def subscription_row(s) -> list:
    pb = rc.stubs()
    events = ",".join(enum_name(pb.events.EventType, t, "EVENT_TYPE_")
                      for t in s.filter.event_types)
    instruments = ",".join(enum_name(pb.types.Instrument, i, "INSTRUMENT_")
                           for i in s.filter.instruments)
    return [s.id, s.endpoint_uri, events or "(all)", instruments or "(all)",
            ",".join(s.filter.states) or "(all)", ts(s.create_time)]


SUBSCRIPTION_HEADERS = ["ID", "ENDPOINT", "EVENTS", "INSTRUMENTS", "STATES", "CREATED"]


def cmd_subscriptions_create(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.notification.CreateSubscriptionRequest(request_id=new_key(args),
                                                        endpoint_uri=args.endpoint)
    for event_type in args.event_type or []:
        request.filter.event_types.append(
            enum_value(pb.events.EventType, event_type, "EVENT_TYPE_", "event type"))
    for instrument in args.instrument or []:
        request.filter.instruments.append(
            enum_value(pb.types.Instrument, instrument, "INSTRUMENT_", "instrument"))
    request.filter.states.extend(s.upper() for s in args.filter_states or [])
    response = ctx.notification().CreateSubscription(request, timeout=ctx.timeout)
    if ctx.output == "json":
        emit_json(to_dict(response))
        return
    table(SUBSCRIPTION_HEADERS, [subscription_row(response.subscription)])
    print(f"signing secret (shown once): {response.signing_secret}")


def cmd_subscriptions_list(ctx: Context, args) -> None:
    pb = rc.stubs()
    subscriptions = every_page(ctx.notification().ListSubscriptions,
                               pb.notification.ListSubscriptionsRequest(page_size=500),
                               "subscriptions", ctx.timeout)
    if ctx.output == "json":
        emit_json({"subscriptions": [to_dict(s) for s in subscriptions]})
        return
    table(SUBSCRIPTION_HEADERS, [subscription_row(s) for s in subscriptions])


def cmd_subscriptions_delete(ctx: Context, args) -> None:
    pb = rc.stubs()
    ctx.notification().DeleteSubscription(
        pb.notification.DeleteSubscriptionRequest(subscription_id=args.subscription_id),
        timeout=ctx.timeout)
    if ctx.output == "json":
        emit_json({"deleted": args.subscription_id})
    else:
        print(f"deleted {args.subscription_id}")


def cmd_subscriptions_rotate_secret(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.notification.RotateSubscriptionSecretRequest(
        subscription_id=args.subscription_id)
    if args.previous_valid_for:
        request.previous_secret_validity.seconds = parse_duration(args.previous_valid_for)
    response = ctx.notification().RotateSubscriptionSecret(request, timeout=ctx.timeout)
    if ctx.output == "json":
        emit_json(to_dict(response))
        return
    print(f"new signing secret (shown once): {response.signing_secret}")
    print(f"the previous secret still signs until {ts(response.previous_secret_expire_time)}")


# --------------------------------------------------------------------------------------
# Dead letters (notification)
# --------------------------------------------------------------------------------------


def cmd_dead_letters_list(ctx: Context, args) -> None:
    pb = rc.stubs()
    letters, token, pages = [], "", 0
    while True:
        response = ctx.notification().ListDeadLetters(
            pb.notification.ListDeadLettersRequest(page_size=args.page_size, page_token=token),
            timeout=ctx.timeout)
        letters.extend(response.dead_letters)
        token, pages = response.next_page_token, pages + 1
        if not token or not args.all or pages >= args.max_pages:
            break
    if ctx.output == "json":
        emit_json({"deadLetters": [to_dict(d) for d in letters],
                   "nextPageToken": token})
        return
    table(["ID", "SUBSCRIPTION", "EVENT", "REQUEST", "RECIPIENT", "ATTEMPTS", "LAST OUTCOME",
           "DEAD SINCE"],
          [[d.id, d.subscription_id, d.event_id, d.request_id, d.recipient.authority_id,
            d.attempts, d.last_outcome, ts(d.dead_time)] for d in letters])
    if token:
        print("(more: --all follows every page)")


def cmd_dead_letters_redrive(ctx: Context, args) -> None:
    pb = rc.stubs()
    response = ctx.notification().RedriveDeadLetter(
        pb.notification.RedriveDeadLetterRequest(dead_letter_id=args.dead_letter_id),
        timeout=ctx.timeout)
    if ctx.output == "json":
        emit_json(to_dict(response) or {"redriven": args.dead_letter_id})
    else:
        print(f"redriven {args.dead_letter_id}: back on the delivery queue")


# --------------------------------------------------------------------------------------
# Audit (any service's rogatory.admin.v1.AuditService: they share the chains)
# --------------------------------------------------------------------------------------


def audit_stub(ctx: Context, via: str):
    return rc.stubs().audit_grpc.AuditServiceStub(ctx.channel(via))


def cmd_audit_entries(ctx: Context, args) -> None:
    pb = rc.stubs()
    entries, token, pages = [], "", 0
    while True:
        response = audit_stub(ctx, args.via).ListAuditEntries(
            pb.audit.ListAuditEntriesRequest(request_id=args.request_id,
                                             page_size=args.page_size, page_token=token),
            timeout=ctx.timeout)
        entries.extend(response.entries)
        token, pages = response.next_page_token, pages + 1
        if not token or not args.all or pages >= args.max_pages:
            break
    if ctx.output == "json":
        emit_json({"entries": [to_dict(e) for e in entries], "nextPageToken": token})
        return
    table(["SEQ", "TIME", "METHOD", "CALLER", "KIND", "DETAIL", "OUTCOME"],
          [[e.sequence, ts(e.time), e.method,
            "service " + e.caller_authority_id if e.caller_is_service
            else f"{e.caller_authority_id} ({e.caller_state})",
            enum_name(pb.audit.AuditAccessKind, e.kind, "AUDIT_ACCESS_KIND_"), e.detail,
            e.outcome] for e in entries])
    if token:
        print("(more: --all follows every page)")


def read_head(path: str):
    """An exported chain head: a JSON object with sequence and mac (one line of an export
    file of audit-export-dir, or {"sequence": N, "mac": "..."})."""
    pb = rc.stubs()
    try:
        data = json.loads(pathlib.Path(path).read_text())
        return pb.audit.AuditChainHead(sequence=int(data["sequence"]), mac=str(data["mac"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CliError(f"cannot read the chain head in {path}: {error}", EXIT_INVALID)


def cmd_audit_verify(ctx: Context, args) -> None:
    pb = rc.stubs()
    request = pb.audit.VerifyAuditChainRequest(request_id=args.request_id)
    if args.expected_head:
        request.expected_head.CopyFrom(read_head(args.expected_head))
    response = audit_stub(ctx, args.via).VerifyAuditChain(request, timeout=ctx.timeout)
    verdict = enum_name(pb.audit.AuditVerdict, response.verdict, "AUDIT_VERDICT_")
    if ctx.output == "json":
        emit_json(to_dict(response))
    else:
        print(f"{verdict}: {response.entries_checked} entries checked from sequence "
              f"{response.first_sequence}; head {response.head.sequence} {response.head.mac}")
        if response.HasField("retention_anchor"):
            anchor = response.retention_anchor
            print(f"retention erased sequences 1 to {anchor.last_erased_sequence} "
                  f"(before {ts(anchor.erased_before)})")
        if response.first_bad_sequence:
            print(f"first bad sequence: {response.first_bad_sequence}: {response.problem}")
    if response.verdict == pb.audit.AUDIT_VERDICT_EMPTY:
        raise CliError(f"no audit entries for {args.request_id}", EXIT_NOT_FOUND)
    if response.verdict not in (pb.audit.AUDIT_VERDICT_INTACT,
                                pb.audit.AUDIT_VERDICT_INTACT_SINCE_ANCHOR):
        raise CliError(f"the audit chain of {args.request_id} is not intact: {verdict}",
                       EXIT_OTHER)


def cmd_audit_denials(ctx: Context, args) -> None:
    pb = rc.stubs()
    denials, token, pages = [], "", 0
    while True:
        request = pb.audit.ListDenialsRequest(authority_id=args.authority_id,
                                              page_size=args.page_size, page_token=token)
        if args.since:
            request.start_time.FromSeconds(int(time.time()) - parse_duration(args.since))
        response = audit_stub(ctx, args.via).ListDenials(request, timeout=ctx.timeout)
        denials.extend(response.denials)
        token, pages = response.next_page_token, pages + 1
        if not token or not args.all or pages >= args.max_pages:
            break
    if ctx.output == "json":
        emit_json({"denials": [to_dict(d) for d in denials], "nextPageToken": token})
        return
    table(["TIME", "METHOD", "CODE", "TARGET", "CALLER", "ROLES"],
          [[ts(d.time), d.method, d.code, d.target_id,
            f"{d.caller_authority_id} ({d.caller_state})", ",".join(d.caller_roles)]
           for d in denials])
    if token:
        print("(more: --all follows every page)")


# --------------------------------------------------------------------------------------
# Deadline operations (deadline-tracking)
# --------------------------------------------------------------------------------------


def show_deadline(ctx: Context, deadline) -> None:
    pb = rc.stubs()
    if ctx.output == "json":
        emit_json(to_dict(deadline))
        return
    table(["ID", "REQUEST", "RULE", "STATE", "DUE", "ESCALATION", "AUTHORITY"],
          [[deadline.id, deadline.request_id, deadline.rule_id,
            enum_name(pb.deadlines.DeadlineState, deadline.state, "DEADLINE_STATE_"),
            ts(deadline.due_time), deadline.escalation_level or "",
            deadline.executing_authority_id]])


def cmd_deadlines_get(ctx: Context, args) -> None:
    pb = rc.stubs()
    show_deadline(ctx, ctx.deadlines().GetDeadline(
        pb.deadlines.GetDeadlineRequest(deadline_id=args.deadline_id),
        timeout=ctx.timeout).deadline)


def _deadline_change(ctx: Context, args, rpc: str, message: str, **fields) -> None:
    pb = rc.stubs()
    request = getattr(pb.deadlines, message)(request_id=new_key(args),
                                             deadline_id=args.deadline_id, **fields)
    response = getattr(ctx.deadlines(), rpc)(request, timeout=ctx.timeout)
    show_deadline(ctx, response.deadline)


def cmd_deadlines_complete(ctx: Context, args) -> None:
    _deadline_change(ctx, args, "CompleteDeadline", "CompleteDeadlineRequest",
                     reason_code=args.reason or "")


def cmd_deadlines_cancel(ctx: Context, args) -> None:
    _deadline_change(ctx, args, "CancelDeadline", "CancelDeadlineRequest",
                     reason_code=args.reason)


def cmd_deadlines_suspend(ctx: Context, args) -> None:
    _deadline_change(ctx, args, "SuspendDeadline", "SuspendDeadlineRequest",
                     reason_code=args.reason)


def cmd_deadlines_resume(ctx: Context, args) -> None:
    _deadline_change(ctx, args, "ResumeDeadline", "ResumeDeadlineRequest",
                     reason_code=args.reason)


def cmd_deadlines_extend(ctx: Context, args) -> None:
    _deadline_change(ctx, args, "ExtendDeadline", "ExtendDeadlineRequest",
                     by={"seconds": parse_duration(args.by)},
                     reason_code=args.reason, note=args.note or "")


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


def register(group, command, services: tuple[str, ...]) -> None:
    """Adds the operator commands with cli.build_parser's group() and command() helpers."""
    sub = group("subscriptions", "webhook subscriptions of your authority (notification)")
    p = command(sub, "create", "POST matching notifications, signed, to an HTTPS endpoint",
                cmd_subscriptions_create, True)
    p.add_argument("endpoint", help="https://host[:port]/path (port 443 unless the service "
                                    "allows others)")
    p.add_argument("--event-type", action="append", help="only this event type (repeatable)")
    p.add_argument("--instrument", action="append", help="only this instrument (repeatable)")
    p.add_argument("--state", dest="filter_states", action="append",
                   help="only requests to or from this state (repeatable)")
    command(sub, "list", "list your subscriptions", cmd_subscriptions_list)
    p = command(sub, "delete", "delete a subscription", cmd_subscriptions_delete)
    p.add_argument("subscription_id")
    p = command(sub, "rotate-secret", "replace a subscription's signing secret",
                cmd_subscriptions_rotate_secret)
    p.add_argument("subscription_id")
    p.add_argument("--previous-valid-for",
                   help="how long the old secret still signs, e.g. 24h (default: service's)")

    dl = group("dead-letters", "webhook deliveries that gave up (notification)")
    p = command(dl, "list", "list dead letters (operators: all; others: their own)",
                cmd_dead_letters_list)
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--all", action="store_true", help="follow every page")
    p.add_argument("--max-pages", type=int, default=100)
    p = command(dl, "redrive", "put a dead letter back on the delivery queue",
                cmd_dead_letters_redrive)
    p.add_argument("dead_letter_id")

    audit = group("audit", "a request's audit chain (auditors and operators)")
    p = command(audit, "entries", "list a request's audit entries, oldest first",
                cmd_audit_entries)
    p.add_argument("request_id")
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--all", action="store_true", help="follow every page")
    p.add_argument("--max-pages", type=int, default=100)
    add_via(p, services)
    p = command(audit, "verify", "verify a request's audit chain (exit 1 unless intact, 3 if "
                "it has no entries)", cmd_audit_verify)
    p.add_argument("request_id")
    p.add_argument("--expected-head",
                   help="JSON file with an exported chain head {sequence, mac}: also detects "
                        "a chain cut short")
    add_via(p, services)
    p = command(audit, "denials", "one caller's denied calls (PERMISSION_DENIED, NOT_FOUND), "
                "oldest first", cmd_audit_denials)
    p.add_argument("authority_id", help="the caller whose denials to list")
    p.add_argument("--since", help="only those of the last, e.g. 24h")
    p.add_argument("--page-size", type=int, default=100)
    p.add_argument("--all", action="store_true", help="follow every page")
    p.add_argument("--max-pages", type=int, default=100)
    add_via(p, services)


def add_via(parser, services: tuple[str, ...]) -> None:
    parser.add_argument("--via", choices=services, default="intake",
                        help="which service to ask (they share the chains)")


def register_deadline_operations(dl, command) -> None:
    """Adds get/complete/cancel/suspend/resume/extend to the `deadlines` group."""
    p = command(dl, "get", "show one deadline", cmd_deadlines_get)
    p.add_argument("deadline_id")
    p = command(dl, "complete", "the time limit was met (the executing side)",
                cmd_deadlines_complete, True)
    p.add_argument("deadline_id")
    p.add_argument("--reason", help="reason code")
    p = command(dl, "cancel", "the time limit no longer applies", cmd_deadlines_cancel, True)
    p.add_argument("deadline_id")
    p.add_argument("--reason", required=True, help="reason code, e.g. REQUEST_WITHDRAWN")
    p = command(dl, "suspend", "stop the clock, with a reason", cmd_deadlines_suspend, True)
    p.add_argument("deadline_id")
    p.add_argument("--reason", required=True, help="reason code, e.g. AWAITING_SUPPLEMENT")
    p = command(dl, "resume", "restart a suspended clock, with a reason", cmd_deadlines_resume,
                True)
    p.add_argument("deadline_id")
    p.add_argument("--reason", required=True, help="reason code, e.g. SUPPLEMENT_RECEIVED")
    p = command(dl, "extend", "push the due time back, where the rule allows it",
                cmd_deadlines_extend, True)
    p.add_argument("deadline_id")
    p.add_argument("by", help="how far, e.g. 30d")
    p.add_argument("--reason", required=True, help="reason code")
    p.add_argument("--note", help="free text kept with the extension")
