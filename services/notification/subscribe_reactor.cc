#include "subscribe_reactor.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "notification_keys.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/status.h"
#include "subscription_filter.h"

namespace rogatory::notification {

using common::CallContext;
using google::protobuf::util::TimeUtil;

// The reactor of one Subscribe stream (notification_service.h says how streams are served).
// Created by NotificationService::Subscribe; deletes itself in OnDone. Named (not in an
// anonymous namespace): the service befriends it.
class SubscribeReactor final : public grpc::ServerWriteReactor<v1::SubscribeResponse> {
 public:
  using Stream = std::shared_ptr<SubscribeStream>;

  SubscribeReactor(NotificationService* service, grpc::CallbackServerContext* context,
                   const v1::SubscribeRequest& request)
      : service_(service),
        start_(service->pipeline_.clock().MonotonicNow()),
        st_(std::make_shared<SubscribeStream>()) {
    st_->service = service;
    st_->reactor = this;
    st_->request = request;
    auto call = service_->pipeline_.Admit(*context, "Subscribe", &request,
                                          common::Pipeline::CallKind::kStream);
    if (!call.ok()) {
      admitted_ = false;
      Finish(common::ToGrpcStatus(call.status()));
      return;
    }
    st_->call = *call;
    if (absl::Status s = Validate(); !s.ok()) {
      RequestFinish(st_, s);
      return;
    }
    if (!service_->EnterStream()) {
      RequestFinish(st_, absl::ResourceExhaustedError("too many open streams; retry later"));
      return;
    }
    entered_ = true;
    service_->metrics_.connected_subscribers().Increment();
    st_->who = st_->call.caller.authority_id;
    st_->shard = service_->sharding_.ShardFor(st_->who);
    st_->inbox = Keys::Inbox(st_->shard, st_->who);
    st_->capacity = static_cast<size_t>(std::max(1, service_->settings_.subscriber_buffer));
    st_->opened_at = service_->clock_.MonotonicNow();
    {
      absl::MutexLock lock(&st_->mu);
      st_->last_sent = st_->opened_at;
    }
    // Wake-ups are watched before the first read, so nothing the fan-out of this process
    // writes after it waits for a poll.
    service_->AddStream(st_);
    Open(st_);
  }

  void OnWriteDone(bool ok) override {
    v1::SubscribeResponse sent;
    bool read = false;
    {
      absl::MutexLock lock(&st_->mu);
      st_->writing = false;
      st_->last_sent = service_->clock_.MonotonicNow();
      if (!ok && !st_->finish_requested) {
        st_->finish_requested = true;
        st_->finish_status = absl::CancelledError("stream closed");
      }
      if (ok && st_->current.has_notification()) sent = std::move(st_->current);
      read = st_->read_again && !st_->reading;
    }
    if (sent.has_notification()) RecordDelivered(sent.notification());
    Pump(st_);
    if (read) StartRead(st_);  // the buffer has room again
  }

  void OnCancel() override { RequestFinish(st_, absl::CancelledError("cancelled by the client")); }

  void OnDone() override {
    absl::Status final_status;
    {
      absl::MutexLock lock(&st_->mu);
      st_->done = true;
      final_status = st_->finish_status;
    }
    // The stream has ended: its outcome is logged, nothing is left to answer.
    if (admitted_) service_->pipeline_.Audit(st_->call, final_status, start_, [](absl::Status) {});
    if (entered_) {
      service_->RemoveStream(st_);
      service_->metrics_.connected_subscribers().Decrement();
      service_->LeaveStream();
    }
    delete this;
  }

  // Reads the inbox after the stream's position unless a read is in flight (then once
  // more after it) or the buffer is full (then once it has room). Never blocks: the read
  // completes on the Redis client's event loop.
  static void StartRead(const Stream& st) {
    size_t space = 0;
    StreamId from;
    {
      absl::MutexLock lock(&st->mu);
      if (!st->opened || st->done || st->finish_requested) return;
      if (st->reading || st->buffer.size() >= st->capacity) {
        st->read_again = true;
        return;
      }
      st->reading = true;
      st->read_again = false;
      st->last_read = st->service->clock_.MonotonicNow();
      space = std::min<size_t>(st->capacity - st->buffer.size(), 100);
      from = st->position;
    }
    NotificationService* service = st->service;
    service->OpStarted();
    service->store_.ReadInbox(st->shard, st->who, from, space,
                              [st, space](absl::StatusOr<NotificationStore::InboxPage> read) {
                                absl::Cleanup ended = [service = st->service] {
                                  service->OpEnded();
                                };
                                OnRead(st, std::move(read), space);
                              });
  }

  // Reads unless the stream is idle, opened and already past `entry_id` (the fan-out of this
  // process and the pub/sub listener both announce an append of this process: the second
  // costs nothing).
  static void Wake(const Stream& st, const std::string& entry_id) {
    if (std::optional<StreamId> id = ParseStreamId(entry_id)) {
      absl::MutexLock lock(&st->mu);
      if (st->opened && !st->reading && !st->read_again && *id <= st->position) return;
    }
    StartRead(st);
  }

  // What the service's stream timer does for every open stream each tick: ends it at its
  // maximum age, sends a heartbeat when it has been idle, and reads the inbox: each tick when
  // nothing wakes the stream, else only as the safety net against a lost pub/sub message.
  static void Tick(const Stream& st, common::MonotonicTime now) {
    const NotificationSettings& settings = st->service->settings_;
    if (settings.stream_max_age > absl::ZeroDuration() &&
        now - st->opened_at >= settings.stream_max_age) {
      return RequestFinish(
          st, absl::UnavailableError("the stream reached its maximum age (stream-max-age): "
                                     "subscribe again with the last cursor received"));
    }
    bool pump = false;
    bool read = true;
    {
      absl::MutexLock lock(&st->mu);
      if (st->done || st->finish_requested || !st->opened) return;
      if (st->service->pushed_.load()) {
        read = now - st->last_read >= settings.stream_recheck_interval;
      }
      if (!st->reading && st->buffer.empty() && !st->writing &&
          now - st->last_sent >= settings.heartbeat_interval) {
        v1::SubscribeResponse hb;
        *hb.mutable_heartbeat()->mutable_server_time() =
            TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(st->service->clock_.Now()));
        st->buffer.push_back(std::move(hb));
        st->last_sent = now;
        pump = true;
      }
    }
    if (pump) Pump(st);
    if (read) StartRead(st);
  }

 private:
  absl::Status Validate() {
    common::FieldViolations v;
    const v1::SubscribeRequest& request = st_->request;
    if (!request.cursor().empty() && !ParseStreamId(request.cursor())) {
      v.Add("cursor", "is not a cursor this service issued");
    }
    if (!v1::StartPosition_IsValid(request.start_position())) {
      v.Add("start_position", "must be LIVE or OLDEST");
    }
    ValidateFilter(request.filter(), "filter", v);
    return v.ToStatus();
  }

  // Trims the inbox and finds where the stream starts (asynchronously).
  static void Open(const Stream& st) {
    NotificationService* service = st->service;
    const NotificationSettings& settings = service->settings_;
    const int64_t now_ms = absl::ToUnixMillis(service->clock_.Now());
    std::string min_id = absl::StrCat(
        std::max<int64_t>(0, now_ms - absl::ToInt64Milliseconds(settings.inbox_retention_age)),
        "-0");
    service->OpStarted();
    service->store_.OpenInbox(st->shard, st->who, min_id, settings.inbox_max_length,
                              [st](absl::StatusOr<NotificationStore::InboxBounds> opened) {
                                absl::Cleanup ended = [service = st->service] {
                                  service->OpEnded();
                                };
                                OnOpened(st, std::move(opened));
                              });
  }

  static void OnOpened(const Stream& st, absl::StatusOr<NotificationStore::InboxBounds> opened) {
    if (!opened.ok()) {
      return RequestFinish(st, absl::UnavailableError("inbox store unavailable"));
    }
    const v1::SubscribeRequest& request = st->request;
    const StreamId floor = opened->floor;
    const StreamId last = opened->last;
    StreamId position;
    if (!request.cursor().empty()) {
      position = *ParseStreamId(request.cursor());
      if (position < floor) {
        return RequestFinish(
            st, absl::OutOfRangeError("the cursor is older than the inbox's retention: "
                                      "notifications after it were discarded"));
      }
      if (last < position) {
        common::FieldViolations v;
        v.Add("cursor", "is not in this inbox");
        return RequestFinish(st, v.ToStatus());
      }
    } else if (request.start_position() == v1::START_POSITION_OLDEST) {
      position = floor;
    } else {
      position = last;
    }
    {
      absl::MutexLock lock(&st->mu);
      st->position = position;
      st->opened = true;
    }
    StartRead(st);
  }

  static void OnRead(const Stream& st, absl::StatusOr<NotificationStore::InboxPage> read,
                     size_t asked) {
    if (!read.ok()) {
      {
        absl::MutexLock lock(&st->mu);
        st->reading = false;
      }
      return RequestFinish(st, absl::UnavailableError("inbox store unavailable"));
    }
    StreamId position;
    {
      absl::MutexLock lock(&st->mu);
      position = st->position;
    }
    if (position < read->floor) {
      {
        absl::MutexLock lock(&st->mu);
        st->reading = false;
      }
      return RequestFinish(st,
                           absl::OutOfRangeError("the stream fell behind the inbox's retention: "
                                                 "resubscribe from the oldest notification"));
    }
    const CallContext& call = st->call;
    std::vector<v1::SubscribeResponse> batch;
    for (const NotificationStore::InboxEntry& e : read->entries) {
      position = e.id;
      v1::SubscribeResponse r;
      v1::Notification* n = r.mutable_notification();
      if (!n->mutable_event()->ParseFromString(e.event)) continue;
      if (!FilterMatches(st->request.filter(), n->event(), DecodeList(e.states))) continue;
      n->set_cursor(e.cursor);
      // Disclosed to the caller, its own inbox's owner: noted on the call's audit trail.
      call.Touch(n->event().request_id(), common::AccessKind::kDisclose, n->event().event_id());
      n->mutable_recipient()->set_authority_id(st->who);
      n->mutable_recipient()->set_state(e.recipient_state.empty() ? call.caller.state
                                                                  : e.recipient_state);
      *n->mutable_accept_time() = TimeUtil::MillisecondsToTimestamp(e.accept_ms);
      n->set_reannouncement(e.reannouncement);
      batch.push_back(std::move(r));
    }
    bool again = false;
    {
      absl::MutexLock lock(&st->mu);
      st->reading = false;
      st->position = position;
      if (st->done || st->finish_requested) return;
      for (auto& r : batch) st->buffer.push_back(std::move(r));
      // A full batch: more may be waiting. A wake-up during the read: read what it was
      // about.
      again = st->read_again || read->examined >= asked;
      st->read_again = false;
    }
    Pump(st);
    if (again) StartRead(st);
  }

  // Asks for the stream to end with `status` once the write in flight (if any)
  // completes.
  static void RequestFinish(const Stream& st, absl::Status status) {
    {
      absl::MutexLock lock(&st->mu);
      if (st->finish_requested) return;
      st->finish_requested = true;
      st->finish_status = std::move(status);
    }
    Pump(st);
  }

  // Starts the next write, or Finish when asked and idle. Never holds the lock
  // across gRPC.
  static void Pump(const Stream& st) {
    bool write = false, finish = false;
    grpc::Status finish_status;
    {
      absl::MutexLock lock(&st->mu);
      if (st->finished || st->writing) return;
      if (st->finish_requested) {
        st->finished = true;
        finish = true;
        finish_status = common::ToGrpcStatus(st->finish_status);
      } else if (!st->buffer.empty()) {
        st->current = std::move(st->buffer.front());
        st->buffer.pop_front();
        st->writing = true;
        write = true;
      }
    }
    if (write) {
      st->reactor->StartWrite(&st->current);
    } else if (finish) {
      st->reactor->Finish(finish_status);
    }
  }

  void RecordDelivered(const v1::Notification& n) {
    if (service_->auditor_ != nullptr) {
      // A disclosure to the subscriber. The stream cannot wait for the log, so a failure
      // is reported loudly (and counted by the auditor's metrics).
      common::AuditRecord record;
      record.method = "Subscribe";
      record.caller = st_->call.caller;
      record.trace_id = st_->call.trace_id;
      record.justification = st_->call.justification;
      record.subjects.push_back({n.event().request_id(), common::AccessKind::kDisclose,
                                 absl::StrCat("stream:", n.event().event_id())});
      service_->auditor_->Record(std::move(record), [](absl::Status logged) {
        if (!logged.ok()) {
          common::Log::Error("stream delivery could not be audited",
                             {{"error", std::string(logged.message())}});
        }
      });
    }
    auto shard = service_->sharding_.ShardOf("rq", n.event().request_id());
    if (!shard.ok()) return;
    const absl::Time now = service_->clock_.Now();
    const absl::Time accepted =
        absl::FromUnixMillis(TimeUtil::TimestampToMilliseconds(n.accept_time()));
    NotificationMetrics& metrics = service_->metrics_;
    service_->store_.RecordStage(
        *shard, n.event().event_id(), v1::DELIVERY_STAGE_DELIVERED, n.recipient().authority_id(),
        "", now, service_->settings_.evidence_retention,
        [&metrics, latency = absl::ToDoubleSeconds(now - accepted)](absl::StatusOr<bool> fresh) {
          if (fresh.ok() && *fresh) metrics.DeliveryLatency("stream", std::max(0.0, latency));
        });
  }

  NotificationService* const service_;
  const common::MonotonicTime start_;
  const Stream st_;
  bool admitted_ = true;
  bool entered_ = false;
};

grpc::ServerWriteReactor<v1::SubscribeResponse>* NewSubscribeReactor(
    NotificationService* service, grpc::CallbackServerContext* context,
    const v1::SubscribeRequest& request) {
  return new SubscribeReactor(service, context, request);
}

void ReadSubscribeStream(const std::shared_ptr<SubscribeStream>& stream) {
  SubscribeReactor::StartRead(stream);
}

void WakeSubscribeStream(const std::shared_ptr<SubscribeStream>& stream,
                         const std::string& entry_id) {
  SubscribeReactor::Wake(stream, entry_id);
}

void TickSubscribeStream(const std::shared_ptr<SubscribeStream>& stream,
                         common::MonotonicTime now) {
  SubscribeReactor::Tick(stream, now);
}

}  // namespace rogatory::notification
