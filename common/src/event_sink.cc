#include "rogatory/common/event_sink.h"

#include <optional>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"
#include "script_call.h"

namespace rogatory::common {

namespace eventspb = rogatory::events::v1;

std::string EventKeys::Outbox(int shard, absl::string_view emitter) {
  return absl::StrCat(Sharding::Prefix(shard), "outbox:", emitter);
}
std::string EventKeys::Seen(int shard, absl::string_view receiver, absl::string_view event_id) {
  return absl::StrCat(Sharding::Prefix(shard), "seen:", receiver, ":", event_id);
}
std::string EventKeys::RelayLease(int shard, absl::string_view emitter,
                                  absl::string_view receiver) {
  return absl::StrCat(Sharding::Prefix(shard), "relay:", emitter, ":", receiver);
}
std::string EventKeys::RelayFence(int shard, absl::string_view emitter,
                                  absl::string_view receiver) {
  return absl::StrCat(Sharding::Prefix(shard), "relay:", emitter, ":", receiver, ":fence");
}

namespace {

// lua/record_only_receiver.lua
constexpr char kRecordOnlyWhat[] = "record-only receiver";
struct RecordOnlyReceive {
  std::string seen_key;
  std::string retention_ms;
};
void ReceiveRecordOnly(RedisClient& redis, const RecordOnlyReceive& call,
                       std::function<void(absl::StatusOr<EventHandler::Outcome>)> done) {
  internal::EvalTyped<EventHandler::Outcome>(
      redis, internal::EmbeddedScript<&lua::kRecordOnlyReceiver>(), {call.seen_key},
      {call.retention_ms},
      [](const RedisReply& reply) -> absl::StatusOr<EventHandler::Outcome> {
        ASSIGN_OR_RETURN(std::vector<std::string> answer, ReplyStrings(reply, kRecordOnlyWhat));
        if (answer.size() != 1) {
          return absl::InternalError(
              absl::StrCat(kRecordOnlyWhat, ": Redis answered an unexpected array"));
        }
        return answer[0] == "duplicate" ? EventHandler::Outcome::kDuplicate
                                        : EventHandler::Outcome::kHandled;
      },
      std::move(done));
}

}  // namespace

void RecordOnlyEventHandler::Handle(const v1::Event&, const Dedupe& dedupe,
                                    std::function<void(absl::StatusOr<Outcome>)> done) {
  ReceiveRecordOnly(redis_, {dedupe.seen_key, dedupe.retention_ms}, std::move(done));
}

struct EventSinkServiceImpl::Counters {
  prometheus::Family<prometheus::Counter>* received;
  prometheus::Family<prometheus::Counter>* duplicates;
};

EventSinkServiceImpl::EventSinkServiceImpl(std::string receiver, EventHandler& handler,
                                           Pipeline& pipeline, Sharding sharding,
                                           absl::Duration dedupe_retention, Metrics& metrics)
    : receiver_(std::move(receiver)),
      handler_(handler),
      pipeline_(pipeline),
      sharding_(sharding),
      dedupe_retention_(dedupe_retention),
      counters_(
          new Counters{&prometheus::BuildCounter()
                            .Name("rogatory_events_received_total")
                            .Help("Events handled by this service, by emitting service and type.")
                            .Register(metrics.registry()),
                       &prometheus::BuildCounter()
                            .Name("rogatory_event_duplicates_dropped_total")
                            .Help("Repeated deliveries of events already handled, dropped.")
                            .Register(metrics.registry())}) {
  // Every source's duplicate series exists at zero from the start (bounded: the four
  // services and "other"), so dashboards and rate() see 0 rather than nothing.
  for (const char* source : {"intake", "routing", "deadlines", "notification", "other"}) {
    counters_->duplicates->Add({{"source", source}});
  }
}

EventSinkServiceImpl::~EventSinkServiceImpl() = default;

grpc::ServerUnaryReactor* EventSinkServiceImpl::DeliverEvents(
    grpc::CallbackServerContext* context, const eventspb::DeliverEventsRequest* request,
    eventspb::DeliverEventsResponse* response) {
  return pipeline_.Unary<eventspb::DeliverEventsRequest, eventspb::DeliverEventsResponse>(
      context, "DeliverEvents", request, response,
      [this](const eventspb::DeliverEventsRequest& r) {
        FieldViolations v;
        if (r.source().empty()) v.Add("source", "is required");
        if (r.events_size() == 0 || r.events_size() > kMaxBatch) {
          v.Add("events", absl::StrCat("must hold 1 to ", kMaxBatch, " events"));
        }
        for (int i = 0; i < r.events_size(); ++i) {
          const auto& e = r.events(i);
          const std::string p = absl::StrCat("events[", i, "]");
          if (e.event_id().empty()) v.Add(p + ".event_id", "is required");
          if (auto s = sharding_.ShardOf("rq", e.request_id()); !s.ok()) {
            v.Add(p + ".request_id", std::string(s.status().message()));
          }
          if (e.type() == v1::EVENT_TYPE_UNSPECIFIED || !v1::EventType_IsValid(e.type())) {
            v.Add(p + ".type", "must be a known event type");
          }
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const eventspb::DeliverEventsRequest& r,
             eventspb::DeliverEventsResponse* resp, Pipeline::Done done) {
        if (!call.caller.is_service) {
          return done(absl::PermissionDeniedError("only Rogatory services deliver events"));
        }
        HandleBatch(std::make_shared<eventspb::DeliverEventsRequest>(r), resp, std::move(done));
      });
}

struct EventSinkServiceImpl::Batch {
  std::shared_ptr<const eventspb::DeliverEventsRequest> request;
  eventspb::DeliverEventsResponse* response = nullptr;
  Pipeline::Done done;
  absl::Mutex mu;
  int chains_left ABSL_GUARDED_BY(mu) = 0;
  // Per event: its outcome, unset when it was not attempted (an earlier event of its
  // request failed).
  std::vector<std::optional<absl::StatusOr<EventHandler::Outcome>>> outcomes ABSL_GUARDED_BY(mu);
};

void EventSinkServiceImpl::HandleBatch(
    std::shared_ptr<const eventspb::DeliverEventsRequest> request,
    eventspb::DeliverEventsResponse* response, Pipeline::Done done) {
  // One chain per request, in batch order.
  std::vector<std::vector<int>> chains;
  absl::flat_hash_map<std::string, size_t> chain_of;
  for (int i = 0; i < request->events_size(); ++i) {
    auto [it, added] = chain_of.emplace(request->events(i).request_id(), chains.size());
    if (added) chains.emplace_back();
    chains[it->second].push_back(i);
  }
  auto batch = std::make_shared<Batch>();
  batch->request = std::move(request);
  batch->response = response;
  batch->done = std::move(done);
  {
    absl::MutexLock lock(&batch->mu);
    batch->chains_left = static_cast<int>(chains.size());
    batch->outcomes.resize(batch->request->events_size());
  }
  for (auto& chain : chains) {
    HandleChain(batch, std::make_shared<const std::vector<int>>(std::move(chain)), 0);
  }
}

void EventSinkServiceImpl::HandleChain(std::shared_ptr<Batch> batch,
                                       std::shared_ptr<const std::vector<int>> chain, size_t k) {
  const int index = (*chain)[k];
  const v1::Event& event = batch->request->events(index);
  const int shard = *sharding_.ShardOf("rq", event.request_id());
  Dedupe dedupe{EventKeys::Seen(shard, receiver_, event.event_id()),
                absl::StrCat(absl::ToInt64Milliseconds(dedupe_retention_))};
  handler_.Handle(event, dedupe,
                  [this, batch, chain, k, index](absl::StatusOr<EventHandler::Outcome> outcome) {
                    const bool go_on = outcome.ok() && k + 1 < chain->size();
                    bool last = false;
                    {
                      absl::MutexLock lock(&batch->mu);
                      batch->outcomes[index] = std::move(outcome);
                      if (!go_on) last = --batch->chains_left == 0;
                    }
                    if (go_on) return HandleChain(batch, chain, k + 1);
                    if (last) Finish(batch);
                  });
}

void EventSinkServiceImpl::Finish(const std::shared_ptr<Batch>& batch) {
  const eventspb::DeliverEventsRequest& request = *batch->request;
  absl::Status first_error;
  int handled = 0;
  bool prefix = true;
  std::vector<std::optional<absl::StatusOr<EventHandler::Outcome>>> outcomes;
  {
    absl::MutexLock lock(&batch->mu);
    outcomes = std::move(batch->outcomes);
  }
  for (int i = 0; i < request.events_size(); ++i) {
    const v1::Event& e = request.events(i);
    const auto& outcome = outcomes[i];
    if (!outcome.has_value() || !outcome->ok()) {
      if (outcome.has_value()) {
        Log::Warn("event not handled", {{"source", request.source()},
                                        {"type", v1::EventType_Name(e.type())},
                                        {"event_id", e.event_id()},
                                        {"trace_id", e.trace_id()},
                                        {"error", std::string(outcome->status().message())}});
        if (prefix && first_error.ok()) first_error = outcome->status();
      }
      prefix = false;
      continue;
    }
    if (**outcome == EventHandler::Outcome::kDuplicate) {
      counters_->duplicates->Add({{"source", EventSourceLabel(request.source())}}).Increment();
      if (prefix) batch->response->set_duplicate_count(batch->response->duplicate_count() + 1);
      Log::Debug(
          "duplicate event dropped",
          {{"source", request.source()}, {"event_id", e.event_id()}, {"trace_id", e.trace_id()}});
    } else {
      counters_->received
          ->Add({{"source", EventSourceLabel(request.source())},
                 {"type", v1::EventType_Name(e.type())}})
          .Increment();
      Log::Info("event received", {{"source", request.source()},
                                   {"type", v1::EventType_Name(e.type())},
                                   {"event_id", e.event_id()},
                                   {"request", e.request_id()},
                                   {"trace_id", e.trace_id()}});
    }
    if (prefix) handled = i + 1;
  }
  batch->response->set_handled_count(handled);
  // Handled ones stay handled (events after the prefix too: their markers drop them when
  // the relay sends them again); an error only when nothing at all was handled.
  batch->done(handled == 0 && !first_error.ok() ? first_error : absl::OkStatus());
}

}  // namespace rogatory::common
