#include "rogatory/common/outbox_relay.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "fenced_lease.h"
#include "grpc_timeout.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "rogatory/common/backoff.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/periodic_task.h"
#include "rogatory/common/pubsub_listener.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"
#include "rogatory/events/v1/event_sink.grpc.pb.h"
#include "script_call.h"

namespace rogatory::common {
namespace {

namespace eventspb = rogatory::events::v1;

constexpr char kConsumer[] = "relay";
// The receiver part of a shard's lease key: one lease for the lanes of every receiver.
constexpr char kShardLease[] = "*";

// The relay's scripts (lua/outbox_relay_*.lua), one typed call each; a lane's lease is
// common's fenced lease (fenced_lease.h).

// lua/outbox_relay_read.lua
constexpr char kReadWhat[] = "relay read";
struct LaneRead {
  std::string outbox_key;
  std::string lease_key;
  std::string group;
  int64_t token = 0;
  int count = 0;
};
struct OutboxEntry {
  std::string id;
  bool trimmed = false;              // trimmed while pending: nothing to deliver
  std::optional<std::string> event;  // the entry's serialized Event, if it holds one
};
struct LaneBatch {
  bool lease_lost = false;
  std::vector<OutboxEntry> entries;  // oldest first
};
absl::StatusOr<LaneBatch> ReadLane(RedisClient& redis, const LaneRead& call) {
  return internal::RunTyped<LaneBatch>(
      redis, internal::EmbeddedScript<&lua::kOutboxRelayRead>(), {call.outbox_key, call.lease_key},
      {call.group, absl::StrCat(call.token), absl::StrCat(call.count)},
      [](const RedisReply& reply) -> absl::StatusOr<LaneBatch> {
        LaneBatch batch;
        if (reply.is_nil()) {
          batch.lease_lost = true;
          return batch;
        }
        ASSIGN_OR_RETURN(const std::vector<RedisReply>* entries, ReplyArray(reply, kReadWhat));
        for (const RedisReply& entry : *entries) {
          ASSIGN_OR_RETURN(const std::vector<RedisReply>* parts, ReplyArray(entry, kReadWhat));
          if (parts->empty()) continue;
          OutboxEntry out;
          ASSIGN_OR_RETURN(out.id, ReplyString((*parts)[0], kReadWhat));
          if (parts->size() < 2 || (*parts)[1].type != RedisReply::Type::kArray) {
            out.trimmed = true;
          } else {
            ASSIGN_OR_RETURN(auto fields, ReplyFields((*parts)[1], kReadWhat));
            if (auto it = fields.find(kOutboxEventField); it != fields.end()) {
              out.event = std::move(it->second);
            }
          }
          batch.entries.push_back(std::move(out));
        }
        return batch;
      });
}

// lua/outbox_relay_ack.lua
struct LaneAck {
  std::string outbox_key;
  std::string lease_key;
  std::string group;
  int64_t token = 0;
  std::vector<std::string> ids;
};
struct LaneAcked {
  bool lease_lost = false;
  int64_t count = 0;
};
void AckLane(RedisClient& redis, LaneAck call,
             std::function<void(absl::StatusOr<LaneAcked>)> done) {
  std::vector<std::string> args = {std::move(call.group), absl::StrCat(call.token)};
  args.insert(args.end(), std::make_move_iterator(call.ids.begin()),
              std::make_move_iterator(call.ids.end()));
  internal::EvalTyped<LaneAcked>(
      redis, internal::EmbeddedScript<&lua::kOutboxRelayAck>(),
      {std::move(call.outbox_key), std::move(call.lease_key)}, std::move(args),
      [](const RedisReply& reply) -> absl::StatusOr<LaneAcked> {
        ASSIGN_OR_RETURN(const int64_t n, ReplyInteger(reply, "relay acknowledge"));
        return n < 0 ? LaneAcked{true, 0} : LaneAcked{false, n};
      },
      std::move(done));
}

// A stream id "ms-seq" as a comparable pair.
std::pair<uint64_t, uint64_t> ParseStreamId(absl::string_view id) {
  std::pair<uint64_t, uint64_t> out{0, 0};
  std::vector<absl::string_view> parts = absl::StrSplit(id, '-');
  if (parts.size() == 2) {
    (void)absl::SimpleAtoi(parts[0], &out.first);
    (void)absl::SimpleAtoi(parts[1], &out.second);
  }
  return out;
}

double NowMillis(const Clock& clock) {
  return absl::ToDoubleMilliseconds(clock.Now() - absl::UnixEpoch());
}

// Reads a flat [name, value, ...] reply into a lookup.
std::map<std::string, const RedisReply*> FieldMap(const RedisReply& r) {
  std::map<std::string, const RedisReply*> out;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) out[r.elements[i].str] = &r.elements[i + 1];
  return out;
}

}  // namespace

std::string OutboxAppendedChannel(absl::string_view emitter) {
  return absl::StrCat("rg:outbox-appended:", emitter);
}

std::string DefaultReplicaId() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "-", getpid(), "-", NewTraceId().substr(0, 8));
}

struct OutboxRelay::Shared {
  Shared(RedisClient& r, Metrics& m, const Clock& c, RelayOptions o)
      : redis(r), clock(c), options(std::move(o)) {
    backlog = &prometheus::BuildGauge()
                   .Name("rogatory_outbox_backlog")
                   .Help("Outbox entries not yet acknowledged by a receiver, per lane.")
                   .Register(m.registry());
    oldest_age = &prometheus::BuildGauge()
                      .Name("rogatory_outbox_oldest_undelivered_age_seconds")
                      .Help("Age of the oldest outbox entry a receiver has not acknowledged.")
                      .Register(m.registry());
    attempts = &prometheus::BuildCounter()
                    .Name("rogatory_event_delivery_attempts_total")
                    .Help("Batches of events sent to a receiver.")
                    .Register(m.registry());
    failures = &prometheus::BuildCounter()
                    .Name("rogatory_event_delivery_failures_total")
                    .Help("Batches a receiver did not confirm (retried with backoff).")
                    .Register(m.registry());
    delivered = &prometheus::BuildCounter()
                     .Name("rogatory_events_delivered_total")
                     .Help("Events a receiver confirmed.")
                     .Register(m.registry());
  }

  std::map<std::string, std::string> LaneLabels(int shard, const std::string& receiver) const {
    return {{"emitter", options.emitter}, {"receiver", receiver}, {"shard", absl::StrCat(shard)}};
  }

  int threads() const {
    return std::clamp(options.threads_per_receiver, 1, std::max(1, options.shard_count));
  }

  // Waits up to `d` unless stopping or woken (see Wake); returns false when stopping.
  bool Sleep(size_t driver, absl::Duration d) {
    absl::MutexLock lock(&mu);
    auto ready = [this, driver]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return stopping || !woken[driver].empty();
    };
    mu.AwaitWithTimeout(absl::Condition(&ready), d);
    return !stopping;
  }
  // Marks `shard` woken for the thread driving its lane of receiver worker `worker` only.
  void WakeLane(int shard, size_t worker) {
    absl::MutexLock lock(&mu);
    if (static_cast<size_t>(shard) < dirty.size()) dirty[shard] = 2;
    const size_t driver =
        worker * static_cast<size_t>(threads()) + static_cast<size_t>(shard % threads());
    if (driver >= woken.size()) return;
    std::vector<int>& shards = woken[driver];
    if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
  }
  // Marks `shard` woken for every thread driving one of its lanes.
  void Wake(int shard) {
    absl::MutexLock lock(&mu);
    if (static_cast<size_t>(shard) < dirty.size()) dirty[shard] = 2;
    const size_t n = static_cast<size_t>(threads());
    for (size_t driver = static_cast<size_t>(shard) % n; driver < woken.size(); driver += n) {
      std::vector<int>& shards = woken[driver];
      if (std::find(shards.begin(), shards.end(), shard) == shards.end()) shards.push_back(shard);
    }
  }
  // The shards woken for `driver` since it last looked.
  std::vector<int> TakeWoken(size_t driver) {
    absl::MutexLock lock(&mu);
    std::vector<int> out;
    out.swap(woken[driver]);
    return out;
  }
  // Whether maintenance should look at `shard`: woken or newly held within the last two
  // passes (an idle shard costs maintenance nothing).
  bool TakeDirty(int shard) {
    absl::MutexLock lock(&mu);
    if (dirty[shard] == 0) return false;
    --dirty[shard];
    return true;
  }
  void MarkDirty(int shard) {
    absl::MutexLock lock(&mu);
    dirty[shard] = 2;
  }
  // The shard's lease, shared by its lanes of every receiver (one lease per process and
  // shard, not per lane): its token if this replica holds it, else 0. A holder renews it at
  // half its term (the other half is the margin for a renewal that fails and is retried); a
  // non-holder tries again at half its term, whichever of the keeper and the lanes asks
  // first. After a Redis error it asks again soon (under a new token if it held it).
  int64_t HoldShard(int shard) {
    ShardLease& l = *leases[shard];
    absl::MutexLock lock(&l.mu);
    const MonotonicTime now = clock.MonotonicNow();
    if (l.token != 0 && now < l.renew_at) return l.token;
    if (l.token == 0 && now < l.retry_at) return 0;
    auto held = internal::TakeFencedLease(
        redis, {l.key, l.fence, options.replica_id, options.lease, l.token});
    if (!held.ok()) {
      l.token = 0;  // cannot tell: stop acting on the shard until Redis answers again
      l.retry_at = now + std::min(options.lease / 20, absl::Milliseconds(500));
      return 0;
    }
    l.token = *held;
    if (l.token == 0) {
      l.retry_at = now + options.lease / 2;
      return 0;
    }
    l.renew_at = now + options.lease / 2;
    return l.token;
  }
  // When HoldShard next asks Redis about the shard.
  MonotonicTime LeaseDue(int shard) {
    ShardLease& l = *leases[shard];
    absl::MutexLock lock(&l.mu);
    return l.token != 0 ? l.renew_at : l.retry_at;
  }
  // The shard's token if this replica believes it holds it (asks Redis nothing).
  int64_t HeldToken(int shard) {
    ShardLease& l = *leases[shard];
    absl::MutexLock lock(&l.mu);
    return l.token;
  }
  // The safety net's interval now: longer while the pub/sub subscription is confirmed.
  absl::Duration NetInterval() const {
    return subscribed.load() ? std::max(options.poll_interval, options.subscribed_poll_interval)
                             : options.poll_interval;
  }
  // Wakes the keeper (a subscription confirmed or lost: every shard is looked at again).
  void KickKeeper(bool look_at_all) {
    absl::MutexLock lock(&mu);
    keeper_kicked = true;
    if (look_at_all) keeper_look_all = true;
  }
  // Waits up to `d` unless stopping or kicked; returns whether every shard is to be looked
  // at now (and clears the kick).
  bool KeeperSleep(absl::Duration d) {
    absl::MutexLock lock(&mu);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stopping || keeper_kicked; };
    mu.AwaitWithTimeout(absl::Condition(&ready), d);
    keeper_kicked = false;
    const bool all = keeper_look_all;
    keeper_look_all = false;
    return all;
  }
  // A lane's script found the lease gone: the next lane asks Redis again.
  void DropShard(int shard, int64_t token) {
    ShardLease& l = *leases[shard];
    absl::MutexLock lock(&l.mu);
    if (l.token == token) {
      l.token = 0;
      l.retry_at = MonotonicTime::InfinitePast();
    }
  }
  void ReleaseShards() {
    for (auto& lease : leases) {
      absl::MutexLock lock(&lease->mu);
      if (lease->token == 0) continue;
      (void)internal::ReleaseFencedLease(redis, {lease->key, options.replica_id, lease->token});
      lease->token = 0;
    }
  }

  bool Stopping() {
    absl::MutexLock lock(&mu);
    return stopping;
  }

  RedisClient& redis;
  const Clock& clock;
  const RelayOptions options;
  prometheus::Family<prometheus::Gauge>* backlog;
  prometheus::Family<prometheus::Gauge>* oldest_age;
  prometheus::Family<prometheus::Counter>* attempts;
  prometheus::Family<prometheus::Counter>* failures;
  prometheus::Family<prometheus::Counter>* delivered;
  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool keeper_kicked ABSL_GUARDED_BY(mu) = false;
  bool keeper_look_all ABSL_GUARDED_BY(mu) = false;
  // Whether the pub/sub subscription is confirmed and not known lost since.
  std::atomic<bool> subscribed{false};
  // Per shard: the token under which maintenance made sure every receiver's group exists
  // (maintenance thread only).
  std::vector<int64_t> groups_made_under;
  // Per driving thread (receiver worker index * threads() + thread), the shards woken since
  // it last looked (few: a thread takes them every loop).
  std::vector<std::vector<int>> woken ABSL_GUARDED_BY(mu);
  // Per shard: how many more maintenance passes look at it (see TakeDirty).
  std::vector<int> dirty ABSL_GUARDED_BY(mu);

  struct ShardLease {
    std::string key, fence;
    absl::Mutex mu;
    int64_t token ABSL_GUARDED_BY(mu) = 0;
    MonotonicTime renew_at ABSL_GUARDED_BY(mu) = MonotonicTime::InfinitePast();
    MonotonicTime retry_at ABSL_GUARDED_BY(mu) = MonotonicTime::InfinitePast();
  };
  // Per shard (set up before any lane runs).
  std::vector<std::unique_ptr<ShardLease>> leases;
};

// One (shard, receiver) lane, driven by one ReceiverWorker thread.
class OutboxRelay::Lane {
 public:
  enum class Step { kMore, kIdle, kFailed, kNotHolder };

  Lane(Shared& shared, int shard, std::string receiver, eventspb::EventSinkService::Stub* stub)
      : shared_(shared),
        shard_(shard),
        receiver_(std::move(receiver)),
        stub_(stub),
        outbox_(EventKeys::Outbox(shard, shared.options.emitter)),
        lease_(EventKeys::RelayLease(shard, shared.options.emitter, kShardLease)) {}

  MonotonicTime next_try = MonotonicTime::InfinitePast();  // due at once
  int failed_steps = 0;                                    // in a row: the backoff's attempt
  // Whether the lane's last step found it idle (or with more to do): a wake-up then
  // moves its next try to now. A lane backing off or held elsewhere keeps its schedule.
  bool wakeable = true;

  int64_t token() const { return token_.load(); }
  int shard() const { return shard_; }

  Step Run() {
    if (!HoldLease()) return Step::kNotHolder;
    auto read =
        ReadLane(shared_.redis, {outbox_, lease_, receiver_, token(), shared_.options.batch_size});
    if (!read.ok()) return Failed(read.status(), false);
    if (read->lease_lost) return LostLease();
    if (read->entries.empty()) {
      SetAge(0);
      reread_ = false;
      return Step::kIdle;
    }
    std::vector<std::string> ids;
    std::vector<size_t> wanted_pos;  // index into ids of each wanted entry
    eventspb::DeliverEventsRequest batch;
    batch.set_source(shared_.options.emitter);
    for (OutboxEntry& entry : read->entries) {
      ids.push_back(std::move(entry.id));
      if (entry.trimmed) continue;  // nothing to deliver
      v1::Event event;
      if (!entry.event.has_value() || !event.ParseFromString(*entry.event)) {
        Log::Error("outbox entry does not hold an event; skipped",
                   {{"emitter", shared_.options.emitter}, {"entry", ids.back()}});
        continue;
      }
      if (!shared_.options.routes.Wants(receiver_, event.type())) continue;
      wanted_pos.push_back(ids.size() - 1);
      *batch.add_events() = std::move(event);
    }
    SetAge((NowMillis(shared_.clock) - static_cast<double>(ParseStreamId(ids.front()).first)) /
           1000.0);

    size_t ack_upto = ids.size();  // entries [0, ack_upto) are acknowledged
    absl::Status delivery;
    if (batch.events_size() > 0) {
      const auto labels = std::map<std::string, std::string>{{"emitter", shared_.options.emitter},
                                                             {"receiver", receiver_}};
      shared_.attempts->Add(labels).Increment();
      shared_.failures->Add(labels);  // at zero beside the attempts, so rate() shows 0
      grpc::ClientContext ctx;
      ctx.set_deadline(internal::GrpcTimeout(shared_.options.rpc_timeout));
      if (shared_.options.authorize) {
        shared_.options.authorize(ctx);
      } else {
        ctx.AddMetadata("x-rogatory-authority", absl::StrCat("rogatory-", shared_.options.emitter));
        ctx.AddMetadata("x-rogatory-roles", "service");
      }
      eventspb::DeliverEventsResponse resp;
      grpc::Status st = stub_->DeliverEvents(&ctx, batch, &resp);
      int handled = st.ok() ? std::min(resp.handled_count(), batch.events_size()) : 0;
      if (handled > 0) shared_.delivered->Add(labels).Increment(handled);
      if (handled < batch.events_size()) {
        shared_.failures->Add(labels).Increment();
        ack_upto = wanted_pos[handled];
        delivery = st.ok() ? absl::UnavailableError("receiver handled part of the batch")
                           : absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                                          st.error_message());
      }
    }
    if (ack_upto > 0) {
      // Not waited for: the lane's next read goes after it on the same connection, so it
      // sees these acknowledged. If it fails (Redis error, lease lost meanwhile), the entries
      // stay pending and that read delivers them again (receivers drop repeats), or finds
      // the lease gone.
      AckLane(shared_.redis,
              {outbox_, lease_, receiver_, token(),
               std::vector<std::string>(ids.begin(), ids.begin() + ack_upto)},
              [emitter = shared_.options.emitter, receiver = receiver_,
               shard = shard_](absl::StatusOr<LaneAcked> acked) {
                if (acked.ok() && !acked->lease_lost) return;
                Log::Warn("relay acknowledgement failed; the entries are delivered again",
                          {{"emitter", emitter},
                           {"receiver", receiver},
                           {"shard", static_cast<int64_t>(shard)},
                           {"error", acked.ok() ? std::string("lease lost")
                                                : std::string(acked.status().message())}});
              });
    }
    if (!delivery.ok()) return Failed(delivery, true);
    failed_steps = 0;
    // A read that may have returned pending entries only (after a failure or a takeover)
    // says nothing of new ones, committed meanwhile (their wake-ups were not taken while
    // the lane backed off): read again until a read finds nothing.
    return ids.size() >= static_cast<size_t>(shared_.options.batch_size) || reread_ ? Step::kMore
                                                                                    : Step::kIdle;
  }

  // Forgets the lease (OutboxRelay::Stop releases the shard's).
  void Release() {
    if (token() == 0) return;
    ClearGauges();
    token_ = 0;
  }

  void SetBacklog(double v) {
    if (token() != 0) shared_.backlog->Add(shared_.LaneLabels(shard_, receiver_)).Set(v);
  }

 private:
  bool HoldLease() {
    const int64_t before = token();
    token_ = shared_.HoldShard(shard_);
    if (token() == 0) {
      if (before != 0) ClearGauges();
      return false;
    }
    if (before != token()) {
      reread_ = true;
      shared_.MarkDirty(shard_);
      // A new holder: make sure the lane's consumer group exists (from the stream's start).
      auto created =
          RunRedisCommand(shared_.redis, {"XGROUP", "CREATE", outbox_, receiver_, "0", "MKSTREAM"});
      (void)created;  // BUSYGROUP: it exists already
      Log::Debug("relay lane acquired", {{"emitter", shared_.options.emitter},
                                         {"receiver", receiver_},
                                         {"shard", static_cast<int64_t>(shard_)},
                                         {"token", token()}});
    }
    return true;
  }

  Step LostLease() {
    shared_.DropShard(shard_, token());
    token_ = 0;
    ClearGauges();
    return Step::kNotHolder;
  }

  Step Failed(const absl::Status& status, bool receiver_fault) {
    reread_ = true;
    Log::Warn(receiver_fault ? "event delivery failed" : "relay cannot reach redis",
              {{"emitter", shared_.options.emitter},
               {"receiver", receiver_},
               {"shard", static_cast<int64_t>(shard_)},
               {"error", std::string(status.message())}});
    return Step::kFailed;
  }

  void SetAge(double seconds) {
    shared_.oldest_age->Add(shared_.LaneLabels(shard_, receiver_)).Set(seconds);
  }
  void ClearGauges() {
    auto labels = shared_.LaneLabels(shard_, receiver_);
    shared_.oldest_age->Remove(&shared_.oldest_age->Add(labels));
    shared_.backlog->Remove(&shared_.backlog->Add(labels));
  }

  Shared& shared_;
  const int shard_;
  const std::string receiver_;
  eventspb::EventSinkService::Stub* stub_;
  const std::string outbox_, lease_;
  std::atomic<int64_t> token_{0};
  // Whether the lane may have pending entries (read, not acknowledged): its reads return
  // those first, so it reads until a read finds nothing (driving thread only).
  bool reread_ = true;
};

// Drives every shard's lane for one receiver on threads of its own (lanes shard % threads
// on each), so a slow or dead receiver holds up no other.
class OutboxRelay::ReceiverWorker {
 public:
  ReceiverWorker(Shared& shared, size_t index, RelayReceiver receiver,
                 std::shared_ptr<grpc::Channel> channel)
      : shared_(shared),
        index_(index),
        receiver_(std::move(receiver)),
        stub_(eventspb::EventSinkService::NewStub(channel)) {
    for (int s = 0; s < shared.options.shard_count; ++s) {
      lanes_.push_back(std::make_unique<Lane>(shared, s, receiver_.name, stub_.get()));
    }
    for (int t = 0; t < shared.threads(); ++t) threads_.emplace_back([this, t] { Loop(t); });
  }

  void Join() {
    for (std::thread& t : threads_) t.join();
  }
  void ReleaseAll() {
    for (auto& lane : lanes_) lane->Release();
  }
  const std::string& name() const { return receiver_.name; }
  Lane& lane(int shard) { return *lanes_[shard]; }

 private:
  // Drives the lanes of shards `first`, `first` + threads, ...
  void Loop(int first) {
    const size_t driver = index_ * static_cast<size_t>(shared_.threads()) + first;
    std::vector<Lane*> lanes;
    for (size_t s = first; s < lanes_.size(); s += shared_.threads()) {
      lanes.push_back(lanes_[s].get());
    }
    std::minstd_rand rng(std::random_device{}());
    const Backoff backoff{absl::Milliseconds(100), shared_.options.max_backoff};
    while (!shared_.Stopping()) {
      MonotonicTime now = shared_.clock.MonotonicNow();
      for (int shard : shared_.TakeWoken(driver)) {
        Lane& lane = *lanes_[shard];
        if (lane.wakeable) lane.next_try = std::min(lane.next_try, now);
      }
      // Idle lanes wait to be woken (by a commit, the keeper's look or a new lease): the
      // loop itself asks Redis nothing.
      MonotonicTime next = now + shared_.options.poll_interval;
      for (Lane* lane : lanes) {
        if (shared_.Stopping()) return;
        if (lane->next_try <= now) {
          const Lane::Step step = lane->Run();
          lane->wakeable = step != Lane::Step::kFailed;
          switch (step) {
            case Lane::Step::kMore:
              lane->next_try = now;
              break;
            case Lane::Step::kIdle:
            case Lane::Step::kNotHolder:
              // The keeper wakes it: at the safety net if its group is behind, or when this
              // replica takes the shard's lease.
              lane->next_try = MonotonicTime::InfiniteFuture();
              break;
            case Lane::Step::kFailed:
              lane->next_try = now + backoff.Delay(++lane->failed_steps, rng);
              break;
          }
          now = shared_.clock.MonotonicNow();
        }
        next = std::min(next, lane->next_try);
      }
      if (next > now) shared_.Sleep(driver, next - now);
    }
  }

  Shared& shared_;
  const size_t index_;  // among the relay's receiver workers
  RelayReceiver receiver_;
  std::unique_ptr<eventspb::EventSinkService::Stub> stub_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<std::thread> threads_;
};

OutboxRelay::OutboxRelay(RedisClient& redis, Metrics& metrics, const Clock& clock,
                         RelayOptions options, ChannelFactory channels)
    : shared_(std::make_unique<Shared>(redis, metrics, clock, std::move(options))) {
  if (!channels) {
    std::shared_ptr<grpc::ChannelCredentials> credentials = shared_->options.credentials;
    if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
    channels = [&metrics, &clock, credentials](const std::string& address) {
      std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> f;
      f.push_back(metrics.NewClientInterceptorFactory(clock));
      return grpc::experimental::CreateCustomChannelWithInterceptors(
          address, credentials, grpc::ChannelArguments(), std::move(f));
    };
  }
  // Acknowledgements are not waited for (see Lane::Run): loaded first, so the first one is
  // not answered NOSCRIPT and sent again after the lane's next read (which would deliver
  // its entries twice).
  shared_->redis.Command(
      {"SCRIPT", "LOAD", internal::EmbeddedScript<&lua::kOutboxRelayAck>().source()},
      [](absl::StatusOr<RedisReply>) {});
  {
    absl::MutexLock lock(&shared_->mu);
    // Shards become dirty when woken or taken (Lane::HoldLease): none is held yet.
    shared_->dirty.assign(static_cast<size_t>(std::max(0, shared_->options.shard_count)), 0);
  }
  shared_->groups_made_under.assign(static_cast<size_t>(std::max(0, shared_->options.shard_count)),
                                    0);
  for (int s = 0; s < shared_->options.shard_count; ++s) {
    auto lease = std::make_unique<Shared::ShardLease>();
    lease->key = EventKeys::RelayLease(s, shared_->options.emitter, kShardLease);
    lease->fence = EventKeys::RelayFence(s, shared_->options.emitter, kShardLease);
    shared_->leases.push_back(std::move(lease));
  }
  const std::vector<std::string> routed =
      shared_->options.routes.ReceiversOf(shared_->options.emitter);
  auto wants_any = [this](const std::string& receiver) {
    const std::vector<v1::EventType>& emits = shared_->options.emits;
    return emits.empty() || std::any_of(emits.begin(), emits.end(), [&](v1::EventType t) {
             return shared_->options.routes.Wants(receiver, t);
           });
  };
  for (const RelayReceiver& r : shared_->options.receivers) {
    if (std::find(routed.begin(), routed.end(), r.name) == routed.end()) continue;
    if (!wants_any(r.name)) continue;  // it wants nothing this emitter emits: no lanes
    {
      absl::MutexLock lock(&shared_->mu);
      shared_->woken.resize(shared_->woken.size() + static_cast<size_t>(shared_->threads()));
    }
    workers_.push_back(
        std::make_unique<ReceiverWorker>(*shared_, workers_.size(), r, channels(r.address)));
  }
  maintenance_ =
      std::make_unique<PeriodicTask>(shared_->options.maintenance_interval, [this] { Maintain(); });
  if (shared_->options.pubsub.has_value() && !workers_.empty()) {
    PubSubListener::Callbacks callbacks;
    callbacks.on_message = [this](const std::string& payload) { OnAppendedMessage(payload); };
    // Messages published while the subscription was down are lost: look at every shard
    // (the keeper's one command per shard says which lanes to read); until it is confirmed
    // again, the safety net is the short one.
    callbacks.on_subscribed = [this] {
      shared_->subscribed = true;
      shared_->KickKeeper(true);
    };
    callbacks.on_lost = [this] {
      shared_->subscribed = false;
      shared_->KickKeeper(false);
    };
    listener_ = std::make_unique<PubSubListener>(*shared_->options.pubsub,
                                                 OutboxAppendedChannel(shared_->options.emitter),
                                                 std::move(callbacks));
  }
  if (!workers_.empty()) keeper_ = std::thread([this] { Keep(); });
  Log::Info("relay started", {{"emitter", shared_->options.emitter},
                              {"replica", shared_->options.replica_id},
                              {"receivers", static_cast<int64_t>(workers_.size())}});
}

OutboxRelay::~OutboxRelay() { Stop(true); }

void OutboxRelay::Wake(int shard) {
  if (shard < 0 || shard >= shared_->options.shard_count) return;
  shared_->Wake(shard);
}

// "<shard> <publisher>": wakes the shard, unless this process published it (its commit
// woke the lanes directly already).
void OutboxRelay::OnAppendedMessage(const std::string& payload) {
  const absl::string_view text(payload);
  const size_t space = text.find(' ');
  const absl::string_view publisher =
      space == absl::string_view::npos ? absl::string_view() : text.substr(space + 1);
  if (!shared_->options.own_publisher.empty() && publisher == shared_->options.own_publisher) {
    return;
  }
  int shard = -1;
  if (!absl::SimpleAtoi(text.substr(0, space), &shard)) return;
  Wake(shard);
}

void OutboxRelay::Abandon() { Stop(false); }

void OutboxRelay::Keep() {
  const int shards = shared_->options.shard_count;
  std::vector<int64_t> known(static_cast<size_t>(shards), 0);
  std::vector<MonotonicTime> look_at(static_cast<size_t>(shards), MonotonicTime::InfinitePast());
  bool look_all = false;
  while (!shared_->Stopping()) {
    MonotonicTime now = shared_->clock.MonotonicNow();
    MonotonicTime next = now + shared_->NetInterval();
    for (int s = 0; s < shards && !shared_->Stopping(); ++s) {
      const int64_t token = shared_->HoldShard(s);  // asks Redis only when due
      now = shared_->clock.MonotonicNow();
      if (token != known[s]) {
        // Taken (or taken again under a new token): every lane reads, its pending entries
        // first (those a dead holder read but never acknowledged). Lost: every lane forgets
        // its token and gauges (asking Redis nothing).
        known[s] = token;
        shared_->Wake(s);
        look_at[s] = now + shared_->NetInterval();
      } else if (token != 0 && (look_all || look_at[s] <= now)) {
        Look(s);
        now = shared_->clock.MonotonicNow();
        look_at[s] = now + shared_->NetInterval();
      }
      if (token != 0) {
        // A shorter net (the subscription was lost) applies at once.
        look_at[s] = std::min(look_at[s], now + shared_->NetInterval());
        next = std::min(next, look_at[s]);
      }
      next = std::min(next, shared_->LeaseDue(s));
    }
    now = shared_->clock.MonotonicNow();
    look_all = shared_->KeeperSleep(std::max(next - now, absl::Milliseconds(1)));
  }
}

void OutboxRelay::Look(int shard) {
  const std::string outbox = EventKeys::Outbox(shard, shared_->options.emitter);
  auto groups = RunRedisCommand(shared_->redis, {"XINFO", "GROUPS", outbox});
  if (!groups.ok() || groups->type != RedisReply::Type::kArray) {
    shared_->Wake(shard);  // cannot tell: every lane reads
    return;
  }
  for (size_t w = 0; w < workers_.size(); ++w) {
    bool work = true;  // a lane whose group is missing or unreadable reads
    for (const RedisReply& g : groups->elements) {
      auto f = FieldMap(g);
      if (!f.count("name") || f["name"]->str != workers_[w]->name()) continue;
      // Behind the stream (lag: entries added since its last delivery; nil when Redis cannot
      // tell, after deletions) or with entries read and not acknowledged.
      const bool lag_known = f.count("lag") && f["lag"]->type == RedisReply::Type::kInteger;
      const bool pending = f.count("pending") && f["pending"]->integer > 0;
      work = pending || !lag_known || f["lag"]->integer > 0;
      break;
    }
    if (work) shared_->WakeLane(shard, w);
  }
}

void OutboxRelay::Stop(bool release) {
  if (stopped_) return;
  stopped_ = true;
  listener_.reset();  // no wake-up after this
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->stopping = true;
  }
  maintenance_.reset();
  if (keeper_.joinable()) keeper_.join();
  for (auto& w : workers_) w->Join();
  if (release) {
    for (auto& w : workers_) w->ReleaseAll();
    shared_->ReleaseShards();
  }
}

// Creates every receiver's group, trims what all of them acknowledged, and refreshes the
// backlog of the lanes this replica holds.
void OutboxRelay::Maintain() {
  for (int shard = 0; shard < shared_->options.shard_count; ++shard) {
    if (shared_->Stopping()) return;
    if (!shared_->TakeDirty(shard)) continue;
    // The holder trims and exports the backlog; an idle or unheld shard costs nothing.
    const int64_t token = shared_->HeldToken(shard);
    if (token == 0) continue;
    const std::string outbox = EventKeys::Outbox(shard, shared_->options.emitter);
    // Every receiver's group, before trimming by them: once per lease taken.
    if (shared_->groups_made_under[shard] != token) {
      bool made = true;
      for (auto& w : workers_) {
        auto created = RunRedisCommand(shared_->redis,
                                       {"XGROUP", "CREATE", outbox, w->name(), "0", "MKSTREAM"});
        if (!created.ok() && !absl::StrContains(created.status().message(), "BUSYGROUP")) {
          made = false;
        }
      }
      if (made) shared_->groups_made_under[shard] = token;
    }
    if (shared_->groups_made_under[shard] != token) continue;  // trim only once they exist
    auto groups = RunRedisCommand(shared_->redis, {"XINFO", "GROUPS", outbox});
    if (!groups.ok() || groups->elements.empty()) continue;
    std::optional<std::pair<uint64_t, uint64_t>> keep_from;
    bool unknown = false;  // a group's oldest pending entry could not be read: trim nothing
    for (const RedisReply& g : groups->elements) {
      auto f = FieldMap(g);
      if (!f.count("name") || !f.count("pending") || !f.count("last-delivered-id")) {
        unknown = true;
        continue;
      }
      std::pair<uint64_t, uint64_t> first_needed = ParseStreamId(f["last-delivered-id"]->str);
      first_needed.second += 1;
      if (f["pending"]->integer > 0) {
        auto pending = RunRedisCommand(shared_->redis, {"XPENDING", outbox, f["name"]->str});
        if (pending.ok() && pending->elements.size() >= 2 &&
            pending->elements[1].type == RedisReply::Type::kString) {
          first_needed = std::min(first_needed, ParseStreamId(pending->elements[1].str));
        } else {
          unknown = true;
        }
      }
      keep_from = keep_from ? std::min(*keep_from, first_needed) : first_needed;
      for (auto& w : workers_) {
        if (w->name() != f["name"]->str) continue;
        double lag = f.count("lag") && f["lag"]->type == RedisReply::Type::kInteger
                         ? static_cast<double>(f["lag"]->integer)
                         : 0;
        w->lane(shard).SetBacklog(static_cast<double>(f["pending"]->integer) + lag);
      }
    }
    if (keep_from && !unknown) {
      (void)RunRedisCommand(
          shared_->redis,
          {"XTRIM", outbox, "MINID", absl::StrCat(keep_from->first, "-", keep_from->second)});
    }
  }
}

OutboxWakingRedisClient::OutboxWakingRedisClient(std::unique_ptr<RedisClient> inner,
                                                 std::string emitter, int shard_count)
    : inner_(std::move(inner)),
      emitter_(std::move(emitter)),
      shard_count_(shard_count),
      channel_(OutboxAppendedChannel(emitter_)),
      publisher_id_(NewTraceId().substr(0, 16)) {}

OutboxWakingRedisClient::~OutboxWakingRedisClient() { inner_.reset(); }

void OutboxWakingRedisClient::Command(std::vector<std::string> args, RedisCallback done) {
  inner_->Command(std::move(args), std::move(done));
}

void OutboxWakingRedisClient::Eval(const LuaScript& script, std::vector<std::string> keys,
                                   std::vector<std::string> args, RedisCallback done) {
  const int shard = OutboxShardOf(keys, emitter_, shard_count_);
  if (shard < 0) return inner_->Eval(script, std::move(keys), std::move(args), std::move(done));
  inner_->Eval(script, std::move(keys), std::move(args),
               [this, shard, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                 if (reply.ok()) {
                   {
                     // Before `done`: the relay starts while the caller answers its client.
                     absl::ReaderMutexLock lock(&mu_);
                     if (relay_ != nullptr) relay_->Wake(shard);
                   }
                   // The other replicas' relays (not waited for; lost if Redis is down,
                   // when their safety-net poll finds the entry).
                   inner_->Command({"PUBLISH", channel_, absl::StrCat(shard, " ", publisher_id_)},
                                   [](absl::StatusOr<RedisReply>) {});
                 }
                 done(std::move(reply));
               });
}

void OutboxWakingRedisClient::SetRelay(OutboxRelay* relay) {
  absl::MutexLock lock(&mu_);
  relay_ = relay;
}

int OutboxWakingRedisClient::OutboxShardOf(const std::vector<std::string>& keys,
                                           absl::string_view emitter, int shard_count) {
  for (const std::string& key : keys) {
    absl::string_view k = key;
    if (!absl::ConsumeSuffix(&k, emitter) || !absl::ConsumeSuffix(&k, "}:outbox:") ||
        !absl::ConsumePrefix(&k, "rg:{s")) {
      continue;
    }
    int shard = -1;
    if (absl::SimpleAtoi(k, &shard) && shard >= 0 && shard < shard_count) return shard;
  }
  return -1;
}

}  // namespace rogatory::common
