#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/metrics.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"
#include "rogatory/events/v1/event_sink.grpc.pb.h"

namespace rogatory::common {

// Redis keys of the event backbone. All live in the shard of the event's request, so an
// emitter writes its change and its event, and a receiver its effect and its duplicate
// marker, in one atomic step.
struct EventKeys {
  // The emitter's outbox in a shard: a stream of entries {ev: serialized Event}.
  static std::string Outbox(int shard, absl::string_view emitter);
  // Marks an event handled by a receiver; expires after the dedupe retention.
  static std::string Seen(int shard, absl::string_view receiver, absl::string_view event_id);
  // A relay lane's lease (hash: owner, token) and its fencing counter.
  static std::string RelayLease(int shard, absl::string_view emitter, absl::string_view receiver);
  static std::string RelayFence(int shard, absl::string_view emitter, absl::string_view receiver);
};

// The outbox entry field that holds the serialized event.
inline constexpr char kOutboxEventField[] = "ev";

// What a handler gets to deduplicate with: the first key and argument of its receiving
// script, which starts with the duplicate check (as lua/record_only_receiver.lua does): it
// sets KEYS[1] = seen_key with a TTL of ARGV[1] = retention_ms, or answers {'duplicate'}
// and changes nothing.
struct Dedupe {
  std::string seen_key;
  std::string retention_ms;
};

// Acts on events delivered to a service.
class EventHandler {
 public:
  enum class Outcome { kHandled, kDuplicate };
  virtual ~EventHandler() = default;
  // Handles one event exactly once in effect: its effect and the Seen marker are written in
  // one receiving script, which answers {'duplicate'} for a repeat (then: kDuplicate).
  // Errors are retried by the relay (UNAVAILABLE) or reported (anything else).
  virtual void Handle(const v1::Event& event, const Dedupe& dedupe,
                      std::function<void(absl::StatusOr<Outcome>)> done) = 0;
};

// For services whose own handling of events has not been built yet: records each event as
// handled (so repeats are recognised) and nothing else.
class RecordOnlyEventHandler final : public EventHandler {
 public:
  explicit RecordOnlyEventHandler(RedisClient& redis) : redis_(redis) {}
  void Handle(const v1::Event& event, const Dedupe& dedupe,
              std::function<void(absl::StatusOr<Outcome>)> done) override;

 private:
  RedisClient& redis_;
};

// rogatory.events.v1.EventSinkService for one receiving service: validates a batch, hands
// its events to the handler, logs each with its trace id, and answers how many it handled
// (the longest prefix of the batch that was handled: the relay sends the rest again, and
// the duplicate markers drop those already handled). The events of one request are handled
// in order, one after the other; those of different requests all at once, so a batch costs
// about one Redis round trip rather than one per event. Callers must be Rogatory services
// (role "service").
class EventSinkServiceImpl final : public rogatory::events::v1::EventSinkService::CallbackService {
 public:
  EventSinkServiceImpl(std::string receiver, EventHandler& handler, Pipeline& pipeline,
                       Sharding sharding, absl::Duration dedupe_retention, Metrics& metrics);
  ~EventSinkServiceImpl() override;

  grpc::ServerUnaryReactor* DeliverEvents(
      grpc::CallbackServerContext* context,
      const rogatory::events::v1::DeliverEventsRequest* request,
      rogatory::events::v1::DeliverEventsResponse* response) override;

  static constexpr int kMaxBatch = 500;

 private:
  struct Counters;
  struct Batch;
  void HandleBatch(std::shared_ptr<const rogatory::events::v1::DeliverEventsRequest> request,
                   rogatory::events::v1::DeliverEventsResponse* response, Pipeline::Done done);
  // Handles chain[k], then the rest of the chain (the events of one request, in order).
  void HandleChain(std::shared_ptr<Batch> batch, std::shared_ptr<const std::vector<int>> chain,
                   size_t k);
  void Finish(const std::shared_ptr<Batch>& batch);

  const std::string receiver_;
  EventHandler& handler_;
  Pipeline& pipeline_;
  const Sharding sharding_;
  const absl::Duration dedupe_retention_;
  std::unique_ptr<Counters> counters_;
};

}  // namespace rogatory::common
