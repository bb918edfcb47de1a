#include "notification_service.h"

#include <algorithm>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "endpoint_policy.h"
#include "google/protobuf/util/time_util.h"
#include "inbox.h"
#include "redis_notification_store.h"
#include "rogatory/common/codes.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/status.h"
#include "subscribe_reactor.h"
#include "webhook_signer.h"

namespace rogatory::notification {
namespace {

using common::CallContext;
using google::protobuf::util::TimeUtil;
using Done = common::Pipeline::Done;

google::protobuf::Timestamp MillisToTimestamp(int64_t ms) {
  return TimeUtil::MillisecondsToTimestamp(ms);
}

// Need-to-know (common/access.h): delivery evidence is the recipients' (and the request's
// parties', who are its recipients) or an auditor's or a Rogatory service's to read; an
// operator runs dead letters but reads no evidence of what a request's parties were told.
bool Privileged(const common::Caller& c) { return c.HasRole("auditor") || c.is_service; }

}  // namespace

NotificationService::NotificationService(common::RedisClient& redis, const common::Clock& clock,
                                         common::Pipeline& pipeline, common::Sharding sharding,
                                         NotificationSettings settings,
                                         NotificationMetrics& metrics,
                                         NotificationEventHandler& handler)
    : NotificationService(std::make_unique<RedisNotificationStore>(redis), nullptr, clock, pipeline,
                          sharding, std::move(settings), metrics, handler) {}

NotificationService::NotificationService(NotificationStore& store, const common::Clock& clock,
                                         common::Pipeline& pipeline, common::Sharding sharding,
                                         NotificationSettings settings,
                                         NotificationMetrics& metrics,
                                         NotificationEventHandler& handler)
    : NotificationService(nullptr, &store, clock, pipeline, sharding, std::move(settings), metrics,
                          handler) {}

NotificationService::NotificationService(std::unique_ptr<NotificationStore> owned_store,
                                         NotificationStore* store, const common::Clock& clock,
                                         common::Pipeline& pipeline, common::Sharding sharding,
                                         NotificationSettings settings,
                                         NotificationMetrics& metrics,
                                         NotificationEventHandler& handler)
    : owned_store_(std::move(owned_store)),
      store_(store != nullptr ? *store : *owned_store_),
      clock_(clock),
      pipeline_(pipeline),
      sharding_(sharding),
      settings_(settings),
      metrics_(metrics),
      handler_(handler),
      stream_timer_([this] { StreamTimerLoop(); }) {}

void NotificationService::StopStreamTimer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (stream_timer_.joinable()) stream_timer_.join();
}

NotificationService::~NotificationService() {
  StopStreamTimer();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &pending_ops_));
}

bool NotificationService::EnterStream() {
  absl::MutexLock lock(&mu_);
  if (open_streams_ >= settings_.max_subscribers) return false;
  ++open_streams_;
  return true;
}
void NotificationService::LeaveStream() {
  absl::MutexLock lock(&mu_);
  --open_streams_;
}
void NotificationService::OpStarted() {
  absl::MutexLock lock(&mu_);
  ++pending_ops_;
}
void NotificationService::OpEnded() {
  absl::MutexLock lock(&mu_);
  --pending_ops_;
}

void NotificationService::AddStream(const std::shared_ptr<SubscribeStream>& stream) {
  if (inbox_wakeups_ != nullptr) {
    // Runs under the wake-ups' lock on the fan-out's or the listener's thread: only queues
    // the stream for the stream timer, which reads.
    stream->watch = inbox_wakeups_->Watch(
        stream->inbox,
        [this, weak = std::weak_ptr<SubscribeStream>(stream)](const std::string& entry_id) {
          if (auto st = weak.lock()) {
            absl::MutexLock lock(&mu_);
            woken_.emplace_back(std::move(st), entry_id);
          }
        });
  }
  absl::MutexLock lock(&mu_);
  streams_.emplace(stream.get(), stream);
}

void NotificationService::RemoveStream(const std::shared_ptr<SubscribeStream>& stream) {
  if (inbox_wakeups_ != nullptr) inbox_wakeups_->Unwatch(stream->inbox, stream->watch);
  absl::MutexLock lock(&mu_);
  streams_.erase(stream.get());
}

void NotificationService::SetInboxWakeups(std::shared_ptr<InboxWakeups> wakeups) {
  pushed_ = wakeups != nullptr;
  inbox_wakeups_ = std::move(wakeups);
  absl::MutexLock lock(&mu_);
  retick_ = true;
}

void NotificationService::WakeAllStreams() {
  absl::MutexLock lock(&mu_);
  for (const auto& [key, stream] : streams_) woken_.emplace_back(stream, "");
}

// Pushed streams: a tick reads Redis only for a stream's safety net, so ticks need only be
// frequent enough for heartbeats, the maximum age and the net to be on time (a tenth of the
// shortest, within [10 ms, 1 s]); a tick costs no Redis command. Otherwise every tick reads
// every stream (nothing else would).
absl::Duration NotificationService::TickInterval() const {
  if (!pushed_.load()) return settings_.poll_interval;
  absl::Duration shortest =
      std::min(settings_.heartbeat_interval, settings_.stream_recheck_interval);
  if (settings_.stream_max_age > absl::ZeroDuration()) {
    shortest = std::min(shortest, settings_.stream_max_age);
  }
  return std::clamp(shortest / 10, absl::Milliseconds(10), absl::Seconds(1));
}

void NotificationService::StreamTimerLoop() {
  common::MonotonicTime last_tick = clock_.MonotonicNow();
  common::MonotonicTime next_tick = last_tick + TickInterval();
  while (true) {
    std::vector<std::pair<std::shared_ptr<SubscribeStream>, std::string>> woken;
    std::vector<std::shared_ptr<SubscribeStream>> ticked;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || retick_ || !woken_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready),
                           std::max(absl::ZeroDuration(), next_tick - clock_.MonotonicNow()));
      if (stopping_) return;
      if (retick_) {
        retick_ = false;
        next_tick = last_tick + TickInterval();
      }
      woken.swap(woken_);
      if (clock_.MonotonicNow() >= next_tick) {
        ticked.reserve(streams_.size());
        for (const auto& [key, stream] : streams_) ticked.push_back(stream);
        last_tick = clock_.MonotonicNow();
        next_tick = last_tick + TickInterval();
      }
    }
    for (const auto& [st, entry_id] : woken) WakeSubscribeStream(st, entry_id);
    const common::MonotonicTime now = clock_.MonotonicNow();
    for (const auto& st : ticked) TickSubscribeStream(st, now);
  }
}

grpc::ServerWriteReactor<v1::SubscribeResponse>* NotificationService::Subscribe(
    grpc::CallbackServerContext* context, const v1::SubscribeRequest* request) {
  return NewSubscribeReactor(this, context, *request);
}

// ---------------------------------------------------------------------------------------
// Ack.

grpc::ServerUnaryReactor* NotificationService::Ack(grpc::CallbackServerContext* context,
                                                   const v1::AckRequest* request,
                                                   v1::AckResponse* response) {
  return pipeline_.Unary<v1::AckRequest, v1::AckResponse>(
      context, "Ack", request, response,
      [](const v1::AckRequest& r) {
        common::FieldViolations v;
        if (r.cursor().empty()) {
          v.Add("cursor", "is required");
        } else if (!ParseStreamId(r.cursor())) {
          v.Add("cursor", "is not a cursor this service issued");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::AckRequest& r, v1::AckResponse* resp, Done done) {
        const std::string who = call.caller.authority_id;
        const int shard = sharding_.ShardFor(who);
        store_.ReadUnacked(
            shard, who, r.cursor(), kMaxAckBatch,
            [this, who, shard, resp,
             done](absl::StatusOr<std::vector<NotificationStore::Unacked>> unacked) {
              if (!unacked.ok()) return done(StoreStatus(unacked.status()));
              if (unacked->empty()) return done(absl::OkStatus());
              // Group the notifications by their request's shard.
              std::map<int, std::vector<std::string>> by_shard;
              std::string last_id;
              for (const NotificationStore::Unacked& u : *unacked) {
                last_id = u.cursor;
                auto s = sharding_.ShardOf("rq", u.request_id);
                if (s.ok()) by_shard[*s].push_back(u.event_id);
              }
              struct Join {
                absl::Mutex mu;
                int pending;
                int retrieved = 0;
                absl::Status status;
              };
              auto join = std::make_shared<Join>();
              join->pending = static_cast<int>(by_shard.size());
              auto advance = [this, who, shard, last_id, resp, done, join] {
                if (!join->status.ok()) return done(join->status);
                resp->set_retrieved_count(join->retrieved);
                // Move the pointer only after retrieval is recorded: a crash in
                // between repeats the (idempotent) recording, never skips it.
                store_.AdvanceAcked(shard, who, last_id, [done](absl::StatusOr<bool> moved) {
                  done(moved.ok() ? absl::OkStatus() : StoreStatus(moved.status()));
                });
              };
              if (by_shard.empty()) return advance();
              const absl::Time now = clock_.Now();
              for (auto& [s, eids] : by_shard) {
                store_.RecordRetrieved(s, who, eids, now, settings_.evidence_retention,
                                       [join, advance](absl::StatusOr<int> n) {
                                         bool last = false;
                                         {
                                           absl::MutexLock lock(&join->mu);
                                           if (n.ok()) {
                                             join->retrieved += *n;
                                           } else {
                                             join->status = StoreStatus(n.status());
                                           }
                                           last = --join->pending == 0;
                                         }
                                         if (last) advance();
                                       });
              }
            });
      });
}

// ---------------------------------------------------------------------------------------
// PublishEvent.

grpc::ServerUnaryReactor* NotificationService::PublishEvent(grpc::CallbackServerContext* context,
                                                            const v1::PublishEventRequest* request,
                                                            v1::PublishEventResponse* response) {
  return pipeline_.Unary<v1::PublishEventRequest, v1::PublishEventResponse>(
      context, "PublishEvent", request, response,
      [this](const v1::PublishEventRequest& r) {
        common::FieldViolations v;
        if (r.event().event_id().empty() || r.event().event_id().size() > 64) {
          v.Add("event.event_id", "is required (at most 64 characters)");
        }
        if (!sharding_.ShardOf("rq", r.event().request_id()).ok()) {
          v.Add("event.request_id", "must be a request id");
        }
        if (r.event().type() == common::v1::EVENT_TYPE_UNSPECIFIED) {
          v.Add("event.type", "is required");
        }
        for (int i = 0; i < r.extra_recipients_size(); ++i) {
          if (r.extra_recipients(i).authority_id().empty()) {
            v.Add(absl::StrCat("extra_recipients[", i, "].authority_id"), "is required");
          }
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::PublishEventRequest& r,
             v1::PublishEventResponse* resp, Done done) {
        // Rogatory services only: an event names a request's parties, which the receiving
        // script records, so an injected event could rewrite whom a request concerns
        // (issue 16, item 5). Operators run the system through dead-letter redrives, never
        // by writing events.
        if (!call.caller.is_service) {
          return done(absl::PermissionDeniedError("PublishEvent is for Rogatory services only"));
        }
        const int shard = *sharding_.ShardOf("rq", r.event().request_id());
        common::Dedupe dedupe{common::EventKeys::Seen(shard, "notification", r.event().event_id()),
                              absl::StrCat(absl::ToInt64Milliseconds(settings_.dedupe_retention))};
        std::vector<common::v1::AuthorityRef> extras(r.extra_recipients().begin(),
                                                     r.extra_recipients().end());
        handler_.HandleWithExtras(
            r.event(), dedupe, extras,
            [resp, done](absl::StatusOr<common::EventHandler::Outcome> outcome) {
              if (!outcome.ok()) return done(StoreStatus(outcome.status()));
              resp->set_accepted(*outcome == common::EventHandler::Outcome::kHandled);
              done(absl::OkStatus());
            });
      });
}

// ---------------------------------------------------------------------------------------
// Delivery evidence.

grpc::ServerUnaryReactor* NotificationService::GetDeliveryStatus(
    grpc::CallbackServerContext* context, const v1::GetDeliveryStatusRequest* request,
    v1::GetDeliveryStatusResponse* response) {
  return pipeline_.Unary<v1::GetDeliveryStatusRequest, v1::GetDeliveryStatusResponse>(
      context, "GetDeliveryStatus", request, response,
      [this](const v1::GetDeliveryStatusRequest& r) {
        common::FieldViolations v;
        switch (r.target_case()) {
          case v1::GetDeliveryStatusRequest::kEventId:
            if (r.event_id().empty() || r.event_id().size() > 128) {
              v.Add("event_id", "is required (at most 128 characters)");
            }
            break;
          case v1::GetDeliveryStatusRequest::kRequestId:
            if (!sharding_.ShardOf("rq", r.request_id()).ok()) {
              v.Add("request_id", "must be a request id");
            }
            break;
          default:
            v.Add("target", "one of event_id or request_id is required");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::GetDeliveryStatusRequest& r,
             v1::GetDeliveryStatusResponse* resp, Done done) {
        using Evidence = NotificationStore::RequestEvidence;
        struct Join {
          absl::Mutex mu;
          int pending = 0;
          std::vector<Evidence> found;
          absl::Status status;
        };
        auto join = std::make_shared<Join>();
        const common::Caller caller = call.caller;
        auto finish = [join, caller, call, resp, done] {
          if (!join->status.ok()) return done(join->status);
          // The request's parties (issuing, executing, central; the notified authority, with
          // the executing side's read rights) see the evidence of every delivery of it; its
          // translator only of its own deliveries.
          bool any = false, see_all = Privileged(caller), allowed = see_all;
          for (const Evidence& e : join->found) {
            any = true;
            for (const std::string* party : {&e.issuing, &e.executing, &e.central, &e.notified}) {
              if (*party == caller.authority_id) see_all = allowed = true;
            }
            if (e.translator == caller.authority_id) allowed = true;
          }
          if (!any || !allowed) return done(absl::NotFoundError("no delivery evidence found"));
          for (const Evidence& e : join->found) {
            if (!e.request_id.empty()) {
              call.Touch(e.request_id, common::AccessKind::kRead, "delivery evidence");
            }
          }
          for (const Evidence& e : join->found) {
            for (const NotificationStore::EvidenceRecord& r : e.records) {
              if (!see_all && r.recipient != caller.authority_id) continue;
              auto* ev = resp->add_evidences();
              ev->set_event_id(r.event_id);
              ev->set_request_id(e.request_id);
              ev->mutable_recipient()->set_authority_id(r.recipient);
              ev->set_stage(r.stage);
              ev->set_subscription_id(r.subscription);
              *ev->mutable_record_time() = MillisToTimestamp(r.record_ms);
            }
          }
          std::stable_sort(resp->mutable_evidences()->begin(), resp->mutable_evidences()->end(),
                           [](const v1::DeliveryEvidence& a, const v1::DeliveryEvidence& b) {
                             const int64_t ta = TimeUtil::TimestampToMilliseconds(a.record_time());
                             const int64_t tb = TimeUtil::TimestampToMilliseconds(b.record_time());
                             if (ta != tb) return ta < tb;
                             if (a.event_id() != b.event_id()) return a.event_id() < b.event_id();
                             return a.stage() < b.stage();
                           });
          done(absl::OkStatus());
        };
        auto on_reply = [join, finish](absl::StatusOr<std::optional<Evidence>> found) {
          bool last = false;
          {
            absl::MutexLock lock(&join->mu);
            if (!found.ok()) {
              join->status = StoreStatus(found.status());
            } else if (found->has_value()) {
              join->found.push_back(**std::move(found));
            }
            last = --join->pending == 0;
          }
          if (last) finish();
        };
        if (r.target_case() == v1::GetDeliveryStatusRequest::kRequestId) {
          const int shard = *sharding_.ShardOf("rq", r.request_id());
          join->pending = 1;
          store_.ReadRequestEvidence(shard, r.request_id(), kMaxEventsPerStatus, on_reply);
          return;
        }
        // An event id does not name its request's shard: ask every shard (a
        // fixed number of small lookups, in parallel).
        join->pending = sharding_.shard_count();
        for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
          store_.ReadEventEvidence(shard, r.event_id(), on_reply);
        }
      });
}

}  // namespace rogatory::notification
