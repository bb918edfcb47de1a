#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "rogatory/common/clock.h"
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
  // The event types the emitter can emit; empty: any. A receiver gets lanes only if the
  // routes say it wants one of them (routing emits nothing deadlines wants: no lanes).
  std::vector<common::v1::EventType> emits;
  // A shard's lease (one for its lanes of every receiver): its holder renews it every half
  // lease, and the other replicas try to take it every half lease too, so a dead replica's
  // shards are taken over between one and one and a half leases after its last renewal
  // (at once after a clean stop, which releases them: at the others' next try). Each shard
  // costs a renewal (three commands) per half lease, and a try (two) per other replica.
  absl::Duration lease = absl::Seconds(15);
  // The safety net: how often each shard this replica holds is looked at without being
  // told (one XINFO GROUPS per shard: a lane is read only if its group is behind the
  // stream or has pending entries). Commits wake their lanes at once: this process's own
  // directly (Wake, OutboxWakingRedisClient), other processes' through Redis pub/sub
  // (`pubsub`); the look only covers a wake-up lost while the subscription was down (every
  // shard is looked at when it is confirmed again). `poll_interval` while the subscription
  // is not confirmed (or `pubsub` unset); `subscribed_poll_interval` while it is (a
  // connection that died without Redis or this process noticing).
  absl::Duration poll_interval = absl::Seconds(5);
  absl::Duration subscribed_poll_interval = absl::Seconds(30);
  // Redis to SUBSCRIBE to OutboxAppendedChannel(emitter) on (one connection of its own);
  // unset: no cross-process wake-ups, other processes' commits wait for the poll.
  std::optional<RedisUrl> pubsub;
  // Messages this publisher id sent are ignored (this process's OutboxWakingRedisClient: its
  // commits woke the lanes directly already).
  std::string own_publisher;
  absl::Duration rpc_timeout = absl::Seconds(5);
  // Failed deliveries back off exponentially, with jitter, up to this.
  absl::Duration max_backoff = absl::Seconds(30);
  // How often delivered entries are trimmed and backlog metrics refreshed.
  absl::Duration maintenance_interval = absl::Seconds(10);
  int batch_size = 100;
  // Threads driving one receiver's lanes (shard % threads), so lanes wait on each other's
  // round trips (each an fsync with appendfsync always) only within a thread.
  int threads_per_receiver = 4;
  // Credentials of the channels to the receivers; null: insecure (plaintext).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Adds the emitter's identity to each delivery call (its service token); unset: the
  // development x-rogatory-* metadata naming rogatory-<emitter> as a service.
  std::function<void(grpc::ClientContext&)> authorize;
};

// Delivers an emitter's outbox to the receivers that want each event, at least once and in
// order. Each (shard, receiver) pair is a lane: a consumer group on the shard's outbox
// stream, driven by whichever replica holds the shard's lease (one lease, with a fencing
// token, for the shard's lanes of every receiver; only its holder touches Redis for them),
// so replicas share the work and take over a dead replica's shards, including events it read
// but never acknowledged. A lane is woken by each commit to its outbox (in this process by
// Wake, from other processes through pub/sub: see RelayOptions::pubsub); it polls only as a
// safety net (poll_interval), and exists only if the receiver wants something the emitter
// emits. An entry is acknowledged only after the receiver confirmed it; a
// failing receiver backs off without holding up the others. Entries every receiver has
// acknowledged are trimmed. A receiver's lanes are driven by `threads_per_receiver` threads.
//
// Metrics: rogatory_outbox_backlog and rogatory_outbox_oldest_undelivered_age_seconds per
// lane (exported by the lane's holder only), rogatory_event_delivery_attempts_total,
// rogatory_event_delivery_failures_total and rogatory_events_delivered_total per receiver.
// The pub/sub channel an emitter's outbox commits are announced on: "<shard> <publisher>"
// (a shard number and a random id of the publishing process; never personal data).
std::string OutboxAppendedChannel(absl::string_view emitter);

class OutboxRelay {
 public:
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;

  // Starts one delivery thread per receiver and a maintenance thread. `clock` paces the
  // lanes (monotonic reading) and ages outbox entries, whose ids Redis assigns from its own
  // time: its wall time must be real (not a test clock moved ahead); it outlives the relay.
  OutboxRelay(RedisClient& redis, Metrics& metrics, const Clock& clock, RelayOptions options,
              ChannelFactory channels = {});
  // Stops and releases this replica's leases, so another replica takes over at once.
  ~OutboxRelay();

  // Stops without releasing leases or acknowledging anything, as a crash would (tests).
  void Abandon();

  // Says that `shard`'s outbox has new events: its idle lanes look at once instead of at
  // their next poll (a lane backing off after a failure, or held by another replica, keeps
  // its schedule). Never blocks on Redis or a receiver: callable from Redis callbacks.
  void Wake(int shard);

 private:
  class Lane;
  class ReceiverWorker;
  struct Shared;

  void OnAppendedMessage(const std::string& payload);
  // Keeps this replica's shard leases (takes, renews) and looks at the shards it holds at
  // the safety net, waking the lanes that have work; on its own thread.
  void Keep();
  // Wakes the lanes of `shard` whose consumer group has anything to read (XINFO GROUPS).
  void Look(int shard);

  void Stop(bool release);
  void Maintain();

  std::unique_ptr<Shared> shared_;
  std::vector<std::unique_ptr<ReceiverWorker>> workers_;
  std::unique_ptr<class PeriodicTask> maintenance_;
  std::unique_ptr<class PubSubListener> listener_;
  std::thread keeper_;
  bool stopped_ = false;
};

// Process-local wake-ups of a relay. Every store emits inside the Lua script of its change,
// and names the outbox among the script's KEYS (a Redis Cluster requires it); so this
// client, passing every call through to `inner`, sees each successful script that named
// `emitter`'s outbox of a shard and wakes that shard's lanes of the relay: events are
// delivered within about a millisecond of their commit instead of at the lanes' next poll,
// with no change to the stores. It also PUBLISHes "<shard> <publisher id>" on
// OutboxAppendedChannel(emitter) after each such script (one command per commit, not
// waited for), so the relays of the other replicas wake the shard's lanes too. Thread-safe.
class OutboxWakingRedisClient final : public RedisClient {
 public:
  OutboxWakingRedisClient(std::unique_ptr<RedisClient> inner, std::string emitter, int shard_count);
  // Destroys `inner` first: the callbacks it still runs use this object.
  ~OutboxWakingRedisClient() override;

  void Command(std::vector<std::string> args, RedisCallback done) override;
  void Eval(const LuaScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisCallback done) override;

  // The relay to wake; null (the default) wakes nothing. Set it to null before the relay
  // is destroyed: a script completing meanwhile may be waking it.
  void SetRelay(OutboxRelay* relay);
  // The client without wake-ups, for the relay itself: its own scripts on the outbox
  // (reading, acknowledging) must not wake it.
  RedisClient& inner() { return *inner_; }

  // This client's random id in its messages (a relay in the same process ignores them).
  const std::string& publisher_id() const { return publisher_id_; }

  // The shard of the first key that is "rg:{sN}:outbox:<emitter>" with N < shard_count,
  // or -1.
  static int OutboxShardOf(const std::vector<std::string>& keys, absl::string_view emitter,
                           int shard_count);

 private:
  std::unique_ptr<RedisClient> inner_;
  const std::string emitter_;
  const int shard_count_;
  const std::string channel_;
  const std::string publisher_id_;
  absl::Mutex mu_;
  OutboxRelay* relay_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// A relay replica id: host name and process id.
std::string DefaultReplicaId();

}  // namespace rogatory::common
