// rogatory-notification: per-authority inboxes, resumable streams, delivery
// evidence and signed webhooks. main() only reads settings and wires the
// objects together.
#include "endpoint_policy.h"
#include "fanout_worker.h"
#include "inbox_append_listener.h"
#include "notification_event_handler.h"
#include "notification_metrics.h"
#include "notification_service.h"
#include "redis_notification_store.h"
#include "rogatory/common/platform.h"
#include "topology.h"
#include "webhook_dispatcher.h"
#include "webhook_transport.h"

int main(int argc, char** argv) {
  using rogatory::common::Platform;
  using rogatory::common::ServiceParts;
  namespace n = rogatory::notification;
  const rogatory::common::ServiceIdentity identity = rogatory::topology::Notification();
  n::NotificationSettings s;
  std::string allowed_ports = "443";
  return rogatory::common::ServiceMain(
      identity, argc, argv,
      [&](rogatory::common::Config& c) {
        const absl::Duration year = absl::Hours(24 * 366);
        c.AddDuration("inbox-retention-age", s.inbox_retention_age, absl::Seconds(1), year,
                      "How long notifications stay in an authority's inbox.",
                      &s.inbox_retention_age);
        c.AddInt("inbox-max-length", s.inbox_max_length, 10, 10000000,
                 "At most this many notifications per inbox (oldest trimmed first).",
                 &s.inbox_max_length);
        c.AddDuration("heartbeat-interval", s.heartbeat_interval, absl::Milliseconds(100),
                      absl::Minutes(10), "Idle Subscribe streams get a heartbeat this often.",
                      &s.heartbeat_interval);
        c.AddInt("subscriber-buffer", s.subscriber_buffer, 1, 100000,
                 "Notifications read ahead per stream (bounds memory of a slow "
                 "consumer).",
                 &s.subscriber_buffer);
        c.AddInt("max-subscribers", s.max_subscribers, 1, 100000,
                 "Subscribe streams per replica; more answer RESOURCE_EXHAUSTED.",
                 &s.max_subscribers);
        c.AddDuration("stream-max-age", s.stream_max_age, absl::ZeroDuration(), year,
                      "A Subscribe stream open this long is ended with UNAVAILABLE; the "
                      "client subscribes again with its last cursor (0: no maximum).",
                      &s.stream_max_age);
        c.AddDuration("notification-poll-interval", s.poll_interval, absl::Milliseconds(5),
                      absl::Seconds(10),
                      "How often Subscribe streams re-read their inbox when nothing wakes "
                      "them (inbox appends wake them: see stream-recheck-interval).",
                      &s.poll_interval);
        c.AddDuration("fanout-recheck-interval", s.fanout_recheck_interval, absl::Milliseconds(5),
                      absl::Hours(1),
                      "Safety net of the fan-out, which received events wake (Redis pub/sub "
                      "across replicas) and retrieval timers wake when due: a pass over every "
                      "shard this often, bounding the delay a lost wake-up can cause.",
                      &s.fanout_recheck_interval);
        c.AddDuration("stream-recheck-interval", s.stream_recheck_interval, absl::Seconds(5),
                      absl::Hours(1),
                      "Safety net of Subscribe streams, which inbox appends wake (Redis "
                      "pub/sub across replicas): each re-reads its inbox this often, bounding "
                      "the delay a lost wake-up (Redis restart) can cause.",
                      &s.stream_recheck_interval);
        c.AddDuration("retrieval-timeout", s.retrieval_timeout, absl::ZeroDuration(), year,
                      "A notification not acknowledged within this time is re-announced "
                      "(0 disables).",
                      &s.retrieval_timeout);
        c.AddDuration("escalation-timeout", s.escalation_timeout, absl::Seconds(1), year,
                      "Still not acknowledged this long after re-announcement: "
                      "escalated.",
                      &s.escalation_timeout);
        c.AddDuration("evidence-retention", s.evidence_retention, absl::Hours(1),
                      absl::Hours(24 * 3660), "How long delivery evidence is kept.",
                      &s.evidence_retention);
        c.AddInt("webhook-max-attempts", s.webhook_max_attempts, 1, 100,
                 "Webhook attempts before the delivery goes to the dead-letter "
                 "list.",
                 &s.webhook_max_attempts);
        c.AddDuration("webhook-initial-backoff", s.webhook_initial_backoff, absl::Milliseconds(1),
                      absl::Hours(1), "Delay after the first failed webhook attempt (doubles).",
                      &s.webhook_initial_backoff);
        c.AddDuration("webhook-max-backoff", s.webhook_max_backoff, absl::Milliseconds(1),
                      absl::Hours(24), "Longest delay between webhook attempts.",
                      &s.webhook_max_backoff);
        c.AddDuration("webhook-recheck-interval", s.webhook_recheck_interval, absl::Milliseconds(5),
                      absl::Minutes(10),
                      "The webhook queue's safety-net pass over every shard; deliveries and "
                      "redrives wake the dispatcher at once, it wakes itself for retries.",
                      &s.webhook_recheck_interval);
        c.AddDuration("webhook-timeout", s.webhook_timeout, absl::Milliseconds(100),
                      absl::Minutes(5), "Timeout of one webhook POST (connect included).",
                      &s.webhook_timeout);
        c.AddInt("webhook-concurrency", s.webhook_concurrency, 1, 256,
                 "Webhook POSTs in flight per replica (worker pool size).", &s.webhook_concurrency);
        c.AddBool("webhook-allow-private-addresses", s.webhook_allow_private_addresses,
                  "Allow webhook endpoints on loopback, link-local and private "
                  "addresses "
                  "(server-side request forgery protection off; development "
                  "and tests).",
                  &s.webhook_allow_private_addresses);
        c.AddString("webhook-allowed-ports", allowed_ports,
                    "Ports a webhook endpoint may name, comma-separated (a URI without a "
                    "port names 443, or 80 for http); checked at subscription and at each "
                    "delivery.",
                    &allowed_ports,
                    [](const std::string& v) { return n::ParsePortList(v).status(); });
        c.AddDuration("webhook-secret-overlap", s.webhook_secret_overlap, absl::ZeroDuration(),
                      absl::Hours(24 * 30),
                      "After a secret rotation, how long deliveries are also "
                      "signed with the "
                      "previous secret.",
                      &s.webhook_secret_overlap);
      },
      [&](Platform& platform) -> absl::StatusOr<ServiceParts> {
        s.dedupe_retention = platform.settings().dedupe_retention;
        s.webhook_allow_http = !platform.settings().production();
        s.webhook_allowed_ports = *n::ParsePortList(allowed_ports);  // checked at parse
        ServiceParts parts;
        auto* metrics =
            parts.Own(std::make_shared<n::NotificationMetrics>(platform.metrics().registry()));
        auto* store = parts.Own(std::make_shared<n::RedisNotificationStore>(platform.redis()));
        auto* handler = parts.Own(std::make_shared<n::NotificationEventHandler>(
            *store, platform.clock(), platform.sharding(), s, *metrics));
        parts.event_handler = handler;
        auto* notification_service = parts.Own(
            std::make_shared<n::NotificationService>(*store, platform.clock(), platform.pipeline(),
                                                     platform.sharding(), s, *metrics, *handler));
        notification_service->SetAuditor(&platform.auditor());  // stream deliveries
        parts.services.push_back(notification_service);
        auto* transport = parts.Own(std::make_shared<n::CurlWebhookTransport>(
            s.webhook_endpoint_policy(), s.webhook_timeout));
        auto fanout = std::make_shared<n::FanoutWorker>(*store, platform.clock(),
                                                        platform.sharding(), s, *metrics);
        auto dispatcher = std::make_shared<n::WebhookDispatcher>(
            platform.redis(), platform.clock(), platform.sharding(), s, *metrics, *transport);
        // Deliveries are disclosures: recorded in the audit log (issue 8).
        fanout->SetAuditor(&platform.auditor());
        // Work written in this process is taken up at once: the handler wakes the fan-out,
        // the fan-out wakes the inbox's streams (polling remains for other replicas' fan-out
        // work). Streams learn of other replicas' inbox appends through Redis pub/sub: one
        // subscribed connection per process, which wakes every stream after it (re)connects.
        auto inbox_wakeups = std::make_shared<n::InboxWakeups>();
        fanout->SetInboxWakeups(inbox_wakeups);
        notification_service->SetInboxWakeups(inbox_wakeups);
        auto redis_url = rogatory::common::RedisUrlFromSettings(platform.settings());
        if (!redis_url.ok()) return redis_url.status();
        auto listener = std::make_shared<n::InboxAppendListener>(
            *redis_url, n::InboxAppendListener::Callbacks{
                            [inbox_wakeups](const std::string& inbox, const std::string& entry_id) {
                              inbox_wakeups->Notify(inbox, entry_id);
                            },
                            [notification_service] { notification_service->WakeAllStreams(); }});
        handler->SetFanoutWakeups(fanout->wakeups());
        // Fan-out entries other replicas' handlers wrote wake this fan-out through Redis
        // pub/sub (a connection of its own).
        fanout->ListenForAppends(*redis_url, store->publisher_id());
        fanout->SetWebhookWakeups(dispatcher->wakeups());
        notification_service->SetWebhookWakeups(dispatcher->wakeups());
        dispatcher->SetAuditor(&platform.auditor());
        fanout->Start();
        dispatcher->Start();
        // Their threads use Redis: stop them (by destroying them) while the platform still
        // runs, dispatcher first (it uses the transport, which outlives it).
        parts.on_drain.push_back([dispatcher, fanout, notification_service, listener]() mutable {
          listener.reset();
          dispatcher.reset();
          fanout.reset();
          notification_service->StopStreamTimer();
        });
        return parts;
      });
}
