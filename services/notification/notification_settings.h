#pragma once

#include <vector>

#include "absl/time/time.h"
#include "endpoint_policy.h"

namespace rogatory::notification {

// The notification service's own settings (see
// services/notification/README.md).
struct NotificationSettings {
  // Inbox retention: entries older than this, or beyond this many per
  // authority, are trimmed.
  absl::Duration inbox_retention_age = absl::Hours(24 * 7);
  int inbox_max_length = 10000;
  // Idle streams get a heartbeat this often.
  absl::Duration heartbeat_interval = absl::Seconds(15);
  // Notifications read ahead for one subscriber and not yet sent (bounds a slow
  // consumer).
  int subscriber_buffer = 256;
  // Streams open at once in this process; more answer RESOURCE_EXHAUSTED.
  int max_subscribers = 1000;
  // A stream open this long is ended with UNAVAILABLE, which clients answer by
  // subscribing again with their last cursor (spreads streams across replicas and
  // frees the place of a client that stopped reading); 0: no maximum.
  absl::Duration stream_max_age = absl::Minutes(30);
  // How often idle Subscribe streams re-read their inbox when nothing wakes them (a service
  // without inbox wake-ups).
  absl::Duration poll_interval = absl::Milliseconds(100);
  // The fan-out's safety-net pass over every shard (issue 19): receiving an event wakes this
  // process's fan-out directly and every other replica's through Redis pub/sub
  // (Keys::FanoutAppendedChannel); retrieval timers wake it when the next one is due. The
  // pass takes up entries whose wake-up was lost (Redis restart) and entries a dead replica
  // read but never acknowledged. Idle, the fan-out costs no Redis command in between.
  absl::Duration fanout_recheck_interval = absl::Seconds(5);
  // Subscribe streams are woken by inbox appends (this process's fan-out, other replicas'
  // through Redis pub/sub); this is their safety-net re-read, bounding how late a lost pub/sub
  // message (Redis restart, listener reconnect) leaves a notification. At least 5 s in
  // deployments (stream-recheck-interval); idle streams cost no Redis command in between.
  absl::Duration stream_recheck_interval = absl::Seconds(5);
  // The webhook queue's safety-net pass over every shard (issue 19): deliveries that enqueue
  // webhook jobs wake this process's dispatcher, which wakes itself for its retries; the pass
  // takes up jobs another replica enqueued and left. Idle, the queue costs no Redis command
  // in between.
  absl::Duration webhook_recheck_interval = absl::Seconds(5);
  // Not retrieved (acknowledged) within this time: re-announced; 0 disables.
  absl::Duration retrieval_timeout = absl::Hours(24);
  // Still not retrieved this long after the re-announcement: escalated.
  absl::Duration escalation_timeout = absl::Hours(12);
  // How long delivery evidence and the per-request party record are kept.
  absl::Duration evidence_retention = absl::Hours(24 * 365);
  // How long a receiver remembers handled events (the platform's
  // dedupe-retention).
  absl::Duration dedupe_retention = absl::Hours(24 * 7);
  // Webhooks.
  int webhook_max_attempts = 8;
  absl::Duration webhook_initial_backoff = absl::Seconds(1);
  absl::Duration webhook_max_backoff = absl::Minutes(15);
  absl::Duration webhook_timeout = absl::Seconds(10);
  int webhook_concurrency = 4;
  bool webhook_allow_private_addresses = false;
  bool webhook_allow_http = false;  // development only
  std::vector<int> webhook_allowed_ports = {443};
  absl::Duration webhook_secret_overlap = absl::Hours(24);

  // The server-side request forgery policy of webhook endpoints, at subscription and at
  // delivery alike.
  EndpointPolicy webhook_endpoint_policy() const {
    return EndpointPolicy(webhook_allow_http, webhook_allow_private_addresses,
                          webhook_allowed_ports);
  }
};

}  // namespace rogatory::notification
