#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "rogatory/common/event_routes.h"
#include "rogatory/common/metrics.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

struct RelayReceiver {
  std::string name;     // "routing"
  std::string address;  // "127.0.0.1:50052"
};

struct RelayOptions {
  std::string emitter;     // the service whose outbox this relays: "intake"
  std::string replica_id;  // unique per process
  int shard_count = 16;
  std::vector<RelayReceiver> receivers;
  EventRoutes routes = EventRoutes::Defaults();
  // A lane's lease: another replica takes a silent replica's lane over after this.
  absl::Duration lease = absl::Seconds(10);
  // How often an idle lane looks for new events.
  absl::Duration poll_interval = absl::Milliseconds(100);
  absl::Duration rpc_timeout = absl::Seconds(5);
  // Failed deliveries back off exponentially, with jitter, up to this.
  absl::Duration max_backoff = absl::Seconds(30);
  // How often delivered entries are trimmed and backlog metrics refreshed.
  absl::Duration maintenance_interval = absl::Seconds(10);
  int batch_size = 100;
  // Credentials of the channels to the receivers; null: insecure (plaintext).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Adds the emitter's identity to each delivery call (its service token); unset: the
  // development x-rogatory-* metadata naming rogatory-<emitter> as a service.
  std::function<void(grpc::ClientContext&)> authorize;
};

// Delivers an emitter's outbox to the receivers that want each event, at least once and in
// order. Each (shard, receiver) pair is a lane: a consumer group on the shard's outbox
// stream, driven by whichever replica holds the lane's lease (with a fencing token), so
// replicas share the work and take over a dead replica's lanes, including events it read
// but never acknowledged. An entry is acknowledged only after the receiver confirmed it; a
// failing receiver backs off without holding up the others. Entries every receiver has
// acknowledged are trimmed.
//
// Metrics: rogatory_outbox_backlog and rogatory_outbox_oldest_undelivered_age_seconds per
// lane (exported by the lane's holder only), rogatory_event_delivery_attempts_total,
// rogatory_event_delivery_failures_total and rogatory_events_delivered_total per receiver.
class OutboxRelay {
 public:
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;

  // Starts one delivery thread per receiver and a maintenance thread.
  OutboxRelay(RedisClient& redis, Metrics& metrics, RelayOptions options,
              ChannelFactory channels = {});
  // Stops and releases this replica's leases, so another replica takes over at once.
  ~OutboxRelay();

  // Stops without releasing leases or acknowledging anything, as a crash would (tests).
  void Abandon();

 private:
  class Lane;
  class ReceiverWorker;
  struct Shared;

  void Stop(bool release);
  void Maintain();

  std::unique_ptr<Shared> shared_;
  std::vector<std::unique_ptr<ReceiverWorker>> workers_;
  std::unique_ptr<class PeriodicTask> maintenance_;
  bool stopped_ = false;
};

// A relay replica id: host name and process id.
std::string DefaultReplicaId();

}  // namespace rogatory::common
