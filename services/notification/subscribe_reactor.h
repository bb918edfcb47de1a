#pragma once

#include <deque>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "inbox.h"
#include "notification_service.h"
#include "notification_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/pipeline.h"
#include "wakeups.h"

namespace rogatory::notification {

// One open stream: what its reactor, its Redis reads (which complete on the Redis client's
// event loop), the fan-out's wake-ups and the service's stream timer share. No thread is
// the stream's own, so idle streams cost memory only. The reactor lives until OnDone; the
// others reach it only while `finished` is false and they have just claimed the single
// write slot (so Finish, which needs that slot free, cannot have run), or to Finish it.
struct SubscribeStream {
  NotificationService* service = nullptr;
  grpc::ServerWriteReactor<v1::SubscribeResponse>* reactor = nullptr;
  // Set before the stream is shared, constant after.
  common::CallContext call;
  v1::SubscribeRequest request;
  std::string who;
  int shard = 0;      // the inbox's
  std::string inbox;  // its key, which the fan-out's wake-ups name
  size_t capacity = 1;
  common::MonotonicTime opened_at;
  InboxWakeups::Handle watch = 0;

  absl::Mutex mu;
  std::deque<v1::SubscribeResponse> buffer ABSL_GUARDED_BY(mu);
  v1::SubscribeResponse current ABSL_GUARDED_BY(mu);
  bool writing ABSL_GUARDED_BY(mu) = false;
  bool finish_requested ABSL_GUARDED_BY(mu) = false;
  absl::Status finish_status ABSL_GUARDED_BY(mu);
  bool finished ABSL_GUARDED_BY(mu) = false;
  bool done ABSL_GUARDED_BY(mu) = false;
  // Where the stream starts is known (the opening script answered).
  bool opened ABSL_GUARDED_BY(mu) = false;
  // The last inbox entry read; only the one read in flight moves it.
  StreamId position ABSL_GUARDED_BY(mu);
  bool reading ABSL_GUARDED_BY(mu) = false;
  // Read once more when the read in flight ends or the buffer has room: a wake-up came
  // during the read, or the last read filled the buffer or its batch.
  bool read_again ABSL_GUARDED_BY(mu) = false;
  common::MonotonicTime last_sent ABSL_GUARDED_BY(mu);
  // When the last read started: the safety net reads a pushed stream only this long after.
  common::MonotonicTime last_read ABSL_GUARDED_BY(mu);
};

// A new Subscribe stream's reactor (it deletes itself when the stream is done).
grpc::ServerWriteReactor<v1::SubscribeResponse>* NewSubscribeReactor(
    NotificationService* service, grpc::CallbackServerContext* context,
    const v1::SubscribeRequest& request);

// Reads the stream's inbox after its position (now, or once the read in flight or the full
// buffer allows). Never blocks.
void ReadSubscribeStream(const std::shared_ptr<SubscribeStream>& stream);

// An append to the stream's inbox (entry `entry_id`; empty: unknown) woke it: reads, unless
// the stream already read past that entry and has no read pending. Never blocks.
void WakeSubscribeStream(const std::shared_ptr<SubscribeStream>& stream,
                         const std::string& entry_id);

// What the service's stream timer does for every open stream each tick: ends it at its
// maximum age, sends a heartbeat when it has been idle, and reads its inbox: every tick when
// nothing wakes streams, else only as the safety net (stream_recheck_interval after the
// last read).
void TickSubscribeStream(const std::shared_ptr<SubscribeStream>& stream, common::MonotonicTime now);

}  // namespace rogatory::notification
