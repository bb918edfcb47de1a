#!/usr/bin/python3
"""Writes deploy/grafana/rogatory-overview.json, Rogatory's Grafana dashboard: edit the
panels here, not in the JSON. The JSON provisions as is (Grafana's file provisioning, the
chart's ConfigMap for the dashboard sidecar): a `datasource` variable and no `__inputs`;
every query filters on the single-valued `namespace` and on `job`.

    /usr/bin/python3 deploy/grafana/generate.py [--check]

--check: exit 1 if the JSON differs from what this script writes (check-monitoring.py
runs it in deploy/ci/check-deploy.sh's prometheus stage).
"""

from __future__ import annotations

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "rogatory-overview.json"
NS = 'namespace=~"$namespace"'
JOB = 'job=~"$job"'
S = f'{NS}, {JOB}'
DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []
y = 0
pid = 0
def row(title):
    global y, pid
    pid += 1
    panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    y += 1
col = 0
def panel(title, exprs, kind="timeseries", unit="short", w=12, desc="", legends=None):
    global y, pid, col
    pid += 1
    if col + w > 24:
        col = 0; y += 8
    targets = []
    for i, e in enumerate(exprs):
        t = {"datasource": DS, "expr": e, "refId": chr(65 + i)}
        if legends: t["legendFormat"] = legends[i]
        targets.append(t)
    p = {"id": pid, "type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"h": 8, "w": w, "x": col, "y": y}, "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []}, "options": {}}
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area"}
        p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": [
            {"color": "green", "value": None}, {"color": "red", "value": 1}]}
    panels.append(p)
    col += w
def endrow():
    global y, col
    if col: y += 8
    col = 0
def q(p, hist, by, extra=""):
    sel = f'{{{S}{extra}}}'
    return f'histogram_quantile({p}, sum by ({by}le) (rate({hist}_bucket{sel}[$__rate_interval])))'
def quantiles(hist, by="", extra="", ps=(0.5, 0.95, 0.99)):
    return [q(p, hist, by, extra) for p in ps]
# shared-state gauges exported by one or every replica: max over replicas, then sum
def shared(metric, by):
    return f'sum by ({by}) (max without (instance, pod, replica) ({metric}{{{S}}}))'

SVC = f'{S}, grpc_service=~"$service"'
row("gRPC: rate, errors, latency")
panel("Request rate by service", [f'sum by (grpc_service) (rate(grpc_server_handled_total{{{SVC}}}[$__rate_interval]))'], unit="reqps", legends=["{{grpc_service}}"])
panel("Request rate by method", [f'sum by (grpc_service, grpc_method) (rate(grpc_server_handled_total{{{SVC}, grpc_method=~"$method"}}[$__rate_interval]))'], unit="reqps", legends=["{{grpc_service}}/{{grpc_method}}"])
panel("Server-error ratio by service", [f'(sum by (grpc_service) (rate(grpc_server_handled_total{{{SVC}, grpc_code=~"Unknown|Internal|Unavailable|DataLoss|DeadlineExceeded"}}[$__rate_interval])) or sum by (grpc_service) (rate(grpc_server_handled_total{{{SVC}}}[$__rate_interval])) * 0) / sum by (grpc_service) (rate(grpc_server_handled_total{{{SVC}}}[$__rate_interval]))'], unit="percentunit", desc="RogatoryHighErrorRate fires above 5% for 5 minutes.", legends=["{{grpc_service}}"])
panel("Answers by code", [f'sum by (grpc_service, grpc_code) (rate(grpc_server_handled_total{{{SVC}, grpc_method=~"$method"}}[$__rate_interval]))'], unit="reqps", desc="Every code, OK included (each served method's OK series exists from start).", legends=["{{grpc_service}} {{grpc_code}}"])
panel("Latency p50 / p95 / p99 by service (unary)", [q(p, "grpc_server_handling_seconds", "grpc_service, ", ', grpc_service=~"$service", grpc_type="unary"') for p in (0.5, 0.95, 0.99)], unit="s", legends=["p50 {{grpc_service}}", "p95 {{grpc_service}}", "p99 {{grpc_service}}"])
panel("Latency p99 by method (unary)", [q(0.99, "grpc_server_handling_seconds", "grpc_service, grpc_method, ", ', grpc_service=~"$service", grpc_method=~"$method", grpc_type="unary"')], unit="s", desc="RogatoryHighLatencyP99 fires above 500 ms for 10 minutes.", legends=["{{grpc_service}}/{{grpc_method}}"])
panel("Calls in flight", [f'sum by (job, kind) (rogatory_calls_in_flight{{{S}}})'], legends=["{{job}} {{kind}}"])
panel("Calls refused (limits)", [f'sum by (job, kind, bound) (rate(rogatory_calls_refused_total{{{S}}}[$__rate_interval]))'], unit="reqps", desc="bound=server: the replica's own limit; bound=caller: one caller's share.", legends=["{{job}} {{kind}} {{bound}}"])
endrow()
row("Requests (intake)")
panel("Requests by status", [shared("rogatory_intake_requests", "status")], legends=["{{status}}"])
panel("Submissions rejected by reason", [f'sum by (reason) (rate(rogatory_intake_submissions_rejected_total{{{S}}}[$__rate_interval]))'], unit="reqps", legends=["{{reason}}"])
panel("Time to acknowledgment p50 / p95", quantiles("rogatory_intake_time_to_acknowledgment_seconds", "instrument, ", ps=(0.5, 0.95)), unit="s", legends=["p50 {{instrument}}", "p95 {{instrument}}"])
panel("Time to decision p50 / p95", quantiles("rogatory_intake_time_to_decision_seconds", "instrument, ", ps=(0.5, 0.95)), unit="s", legends=["p50 {{instrument}}", "p95 {{instrument}}"])
endrow()
row("Translation and routing")
panel("Translation queue depth", [shared("rogatory_translation_queue_depth", "source_language, target_language")], desc="RogatoryTranslationBacklog fires above 200 for 30 minutes.", legends=["{{source_language}} → {{target_language}}"])
panel("Oldest queued translation job", [f'max by (source_language, target_language) (rogatory_translation_queue_oldest_job_age_seconds{{{S}}})'], unit="s", legends=["{{source_language}} → {{target_language}}"])
panel("Translation jobs: claims, completions, lease expiries, dead letters", [
    f'sum(rate(rogatory_translation_claims_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_translation_completions_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_translation_lease_expiries_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_translation_dead_letters_total{{{S}}}[$__rate_interval]))'], unit="ops", legends=["claims", "completions", "lease expiries", "dead letters"])
panel("Translation turnaround p50 / p95", quantiles("rogatory_translation_turnaround_seconds", ps=(0.5, 0.95)), unit="s", legends=["p50", "p95"])
panel("Translation dead letters", [shared("rogatory_translation_dead_letter_jobs", "namespace")], kind="stat", w=6, desc="RogatoryTranslationDeadLetters fires above 0 for 15 minutes.")
panel("Unroutable requests waiting", [shared("rogatory_routing_unroutable_requests", "namespace")], kind="stat", w=6, desc="RogatoryUnroutableRequests fires above 0 for 30 minutes.")
panel("Requests flagged unroutable", [f'sum(rate(rogatory_routing_unroutable_total{{{S}}}[$__rate_interval]))'], unit="ops", legends=["flagged"])
endrow()
row("Deadlines")
panel("Overdue deadlines", [shared("rogatory_deadlines_overdue", "namespace")], kind="stat", w=6, desc="Deadlines past due and not met. RogatoryDeadlinesMissed alerts on new ones only.")
panel("Deadlines due within 24 h / 7 d", [shared("rogatory_deadlines_due", "within")], kind="stat", w=6, desc="Open deadlines not yet overdue that fall due within the next 24 hours / 7 days: what the authorities must act on next.", legends=["{{within}}"])
panel("Open deadlines by instrument", [shared("rogatory_deadlines_pending", "instrument")], w=12, legends=["{{instrument}}"])
panel("Deadline timers fired by kind", [f'sum by (kind) (rate(rogatory_deadline_timers_fired_total{{{S}}}[$__rate_interval]))'], unit="ops", desc="kind=missed: a deadline became overdue; escalated: a further escalation; reminder: before the due time.", legends=["{{kind}}"])
panel("Timer lateness p50 / p99", quantiles("rogatory_deadline_firing_lateness_seconds", ps=(0.5, 0.99)), unit="s", desc="How long after its due time a timer fired. RogatoryDeadlineTimersLate fires when p99 > 60 s for 10 minutes.", legends=["p50", "p99"])
panel("Timer claim takeovers", [f'sum by (instance) (rate(rogatory_deadline_claim_takeovers_total{{{S}}}[$__rate_interval]))'], unit="ops", desc="Claims taken over after a replica's lease ran out: replicas dying.", legends=["{{instance}}"])
endrow()
row("Notifications")
panel("Webhook dead letters", [shared("rogatory_notification_dead_letters", "namespace")], kind="stat", w=6, desc="RogatoryWebhookDeadLetters fires above 0 for 5 minutes.")
panel("Unretrieved notifications", [shared("rogatory_notification_unretrieved", "namespace")], kind="stat", w=6, desc="Notifications not yet retrieved by their recipients (the notification backlog).")
panel("Events taken in / webhook deliveries by outcome", [
    f'sum(rate(rogatory_notification_events_received_total{{{S}}}[$__rate_interval]))',
    f'sum by (outcome) (rate(rogatory_notification_webhook_deliveries_total{{{S}}}[$__rate_interval]))'], unit="ops", legends=["events taken in", "webhook {{outcome}}"])
panel("Delivery latency p50 / p95 / p99", quantiles("rogatory_notification_delivery_latency_seconds", "channel, "), unit="s", legends=["p50 {{channel}}", "p95 {{channel}}", "p99 {{channel}}"])
panel("Connected subscribers", [f'sum by (instance) (rogatory_notification_connected_subscribers{{{S}}})'], legends=["{{instance}}"])
panel("Recipients per event p50 / p95", quantiles("rogatory_notification_fanout_recipients", ps=(0.5, 0.95)), legends=["p50", "p95"])
endrow()
row("Events between services (outboxes)")
panel("Outbox backlog by lane", [f'sum by (emitter, receiver) (max by (emitter, receiver, shard) (rogatory_outbox_backlog{{{S}}}))'], desc="RogatoryOutboxBacklog fires above 1000 for 10 minutes.", legends=["{{emitter}} → {{receiver}}"])
panel("Oldest undelivered event", [f'max by (emitter, receiver) (rogatory_outbox_oldest_undelivered_age_seconds{{{S}}})'], unit="s", desc="RogatoryOutboxStalled fires above 5 minutes.", legends=["{{emitter}} → {{receiver}}"])
panel("Events delivered / failed batches", [
    f'sum by (emitter, receiver) (rate(rogatory_events_delivered_total{{{S}}}[$__rate_interval]))',
    f'sum by (emitter, receiver) (rate(rogatory_event_delivery_failures_total{{{S}}}[$__rate_interval]))',
    f'sum by (emitter, receiver) (rate(rogatory_event_delivery_attempts_total{{{S}}}[$__rate_interval]))'], unit="ops", legends=["delivered {{emitter}} → {{receiver}}", "failed {{emitter}} → {{receiver}}", "batches {{emitter}} → {{receiver}}"])
panel("Events received / duplicates dropped", [
    f'sum by (job, source) (rate(rogatory_events_received_total{{{S}}}[$__rate_interval]))',
    f'sum by (job, source) (rate(rogatory_event_duplicates_dropped_total{{{S}}}[$__rate_interval]))'], unit="ops", legends=["received {{job}} from {{source}}", "duplicates {{job}} from {{source}}"])
endrow()
row("Audit and retention")
panel("Audit entries appended / sealed / rejected", [
    f'sum by (result) (rate(rogatory_audit_entries_appended_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_audit_entries_sealed_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_audit_entries_rejected_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_audit_append_batches_total{{{S}}}[$__rate_interval]))'], unit="ops", desc="rejected > 0: RogatoryAuditEntriesRejected (forged entries or a key mismatch).", legends=["appended {{result}}", "sealed", "rejected", "append batches"])
panel("Audit seal errors", [f'sum by (job, instance) (rate(rogatory_audit_seal_errors_total{{{S}}}[$__rate_interval]))'], unit="ops", desc="RogatoryAuditSealFailing fires when errors go on for 15 minutes.", legends=["{{job}} {{instance}}"])
panel("Retention erasures by step", [
    f'sum by (step) (rate(rogatory_intake_erasures_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_audit_entries_erased_total{{{S}}}[$__rate_interval]))',
    f'sum(rate(rogatory_audit_heads_exported_total{{{S}}}[$__rate_interval]))'], unit="ops", legends=["erased {{step}}", "audit entries erased", "chain heads exported"])
panel("Erasure failures by step", [f'sum by (step) (rate(rogatory_intake_erasure_failures_total{{{S}}}[$__rate_interval]))'], unit="ops", desc="RogatoryErasureFailing fires when a step fails on every pass for 2 hours: personal data kept past retention.", legends=["{{step}}"])
endrow()
RS = NS  # the Redis exporter is its own job
row("Redis")
panel("Redis reachable, per replica", [f'min by (job, instance) (rogatory_redis_up{{{S}}})', f'min by (instance) (redis_up{{{RS}}})'], legends=["service {{instance}}", "exporter {{instance}}"], desc="rogatory_redis_up: each replica's probe; redis_up: prometheus-redis-exporter's.")
panel("Redis memory used / max", [f'sum by (instance) (redis_memory_used_bytes{{{RS}}})', f'sum by (instance) (redis_memory_max_bytes{{{RS}}})'], unit="bytes", desc="RogatoryRedisMemoryNearlyFull fires above 90% of maxmemory (noeviction: at 100% writes are refused).", legends=["used {{instance}}", "maxmemory {{instance}}"])
panel("Redis commands per second", [f'sum by (cmd) (rate(redis_commands_total{{{RS}}}[$__rate_interval]))'], unit="ops", legends=["{{cmd}}"])
panel("Redis mean command latency", [f'sum by (cmd) (rate(redis_commands_duration_seconds_total{{{RS}}}[$__rate_interval])) / sum by (cmd) (rate(redis_commands_total{{{RS}}}[$__rate_interval]))'], unit="s", legends=["{{cmd}}"])
panel("Redis clients and keys", [f'sum by (instance) (redis_connected_clients{{{RS}}})', f'sum by (instance) (redis_db_keys{{{RS}}})'], legends=["clients {{instance}}", "keys {{instance}}"])
panel("Service memory", [f'sum by (job, instance) (process_resident_memory_bytes{{{S}}})'], unit="bytes", w=6, legends=["{{job}} {{instance}}"])
panel("Service CPU", [f'sum by (job, instance) (rate(process_cpu_seconds_total{{{S}}}[$__rate_interval]))'], unit="percentunit", w=6, legends=["{{job}} {{instance}}"])
endrow()

def var(name, label, query, multi, include_all, all_value=None, hide=0):
    v = {"name": name, "label": label, "type": "query", "datasource": DS,
         "query": {"query": query, "refId": name}, "definition": query, "refresh": 2,
         "multi": multi, "includeAll": include_all, "sort": 1, "hide": hide,
         "current": {}}
    if all_value is not None: v["allValue"] = all_value
    return v
base = 'grpc_server_started_total{grpc_service=~"rogatory\\\\..*"}'
templating = [
    {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
     "current": {}, "hide": 0, "refresh": 1, "regex": "", "multi": False, "includeAll": False},
    # One namespace at a time: two releases in one Prometheus never add up.
    var("namespace", "Namespace", f'label_values({base}, namespace)', False, False),
    var("job", "Job", 'label_values(grpc_server_started_total{grpc_service=~"rogatory\\\\..*", namespace=~"$namespace"}, job)', True, True, ".*"),
    var("service", "gRPC service", 'label_values(grpc_server_started_total{grpc_service=~"rogatory\\\\..*", namespace=~"$namespace", job=~"$job"}, grpc_service)', True, True, "rogatory\\..*"),
    var("method", "Method", 'label_values(grpc_server_started_total{grpc_service=~"$service", namespace=~"$namespace", job=~"$job"}, grpc_method)', True, True, ".*"),
]
d = {
  "uid": "rogatory-overview", "title": "Rogatory overview",
  "description": "Rogatory's gRPC services, workflow, deadlines, notifications, events, audit and Redis. Pick one namespace (one release per namespace); job narrows to services of it.",
  "tags": ["rogatory", "grpc"], "timezone": "utc", "editable": True, "graphTooltip": 1,
  "schemaVersion": 37, "version": 2, "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
  "links": [{"title": "Runbooks", "type": "link", "url": "https://example.invalid/rogatory/blob/main/docs/runbooks/README.md", "targetBlank": True}],
  "templating": {"list": templating},
  "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True, "name": "Annotations & Alerts", "type": "dashboard"}]},
  "panels": panels,
}
text = json.dumps(d, indent=2, ensure_ascii=False) + "\n"
if "--check" in sys.argv[1:]:
    if OUT.read_text(encoding="utf-8") != text:
        print(f"{OUT} differs from deploy/grafana/generate.py's output: run it", file=sys.stderr)
        sys.exit(1)
else:
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT.name}: {len(panels)} panels, {sum(len(p.get('targets', [])) for p in panels)} queries")
