// The event backbone on a real redis-server: outbox streams, relays with leased lanes, and a
// real EventSinkService receiver that deduplicates in the same atomic step as its effect.
#include "rogatory/common/outbox_relay.h"

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "redis_commands.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/event_sink.h"
#include "test_lua_scripts.h"

namespace rogatory::common {
namespace {

using Steady = std::chrono::steady_clock;
constexpr int kShards = 4;

// Whether a series of `text` whose line starts with `prefix` counts more than zero (the
// series exist at zero from the start: only a count shows that something happened).
bool CountedAboveZero(const std::string& text, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, prefix) && !absl::EndsWith(line, " 0")) return true;
  }
  return false;
}

// Effect of handling an event: "<request>|<sequence>|<event id>" appended to a list in the
// request's shard, atomically with the duplicate marker.
class RecordingHandler : public EventHandler {
 public:
  explicit RecordingHandler(RedisClient& redis) : redis_(redis) {}
  void Handle(const v1::Event& e, const Dedupe& dedupe,
              std::function<void(absl::StatusOr<Outcome>)> done) override {
    static const LuaScript* script = new LuaScript(std::string(test_lua::kRecordingReceiverProbe));
    const int shard = *Sharding(kShards).ShardOf("rq", e.request_id());
    redis_.Eval(
        *script, {dedupe.seen_key, absl::StrCat(Sharding::Prefix(shard), "test:effects")},
        {dedupe.retention_ms, absl::StrCat(e.request_id(), "|", e.sequence(), "|", e.event_id())},
        [this, done](absl::StatusOr<RedisReply> r) {
          absl::StatusOr<Outcome> outcome = Outcome::kHandled;
          if (!r.ok()) {
            outcome = r.status();
          } else if (!r->elements.empty() && r->elements[0].str == "duplicate") {
            outcome = Outcome::kDuplicate;
          }
          // Optionally hold the answer back after the effect is written, as if the
          // answer were lost or the relay died before acknowledging.
          if (outcome.ok() && hold_next_answer_.exchange(false)) {
            std::thread([this, done, outcome] {
              release_.WaitForNotification();
              done(outcome);
            }).detach();
            return;
          }
          done(outcome);
        });
  }
  void HoldNextAnswer() { hold_next_answer_ = true; }
  void ReleaseHeldAnswer() { release_.Notify(); }

 private:
  RedisClient& redis_;
  std::atomic<bool> hold_next_answer_{false};
  absl::Notification release_;
};

class Receiver {
 public:
  Receiver(RedisClient& redis, int port, Metrics& metrics)
      : handler_(redis),
        sink_("tester", handler_, pipeline_, Sharding(kShards), absl::Hours(1), metrics) {
    grpc::ServerBuilder b;
    b.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials());
    b.RegisterService(&sink_);
    server_ = b.BuildAndStart();
  }
  ~Receiver() { server_->Shutdown(std::chrono::system_clock::now()); }
  RecordingHandler& handler() { return handler_; }

 private:
  MetadataAuthenticator auth_;
  NoRateLimiter limiter_;
  LogAuditor auditor_;
  RealClock clock_;
  Pipeline pipeline_{auth_, limiter_, auditor_, clock_};
  RecordingHandler handler_;
  EventSinkServiceImpl sink_;
  std::unique_ptr<grpc::Server> server_;
};

class OutboxRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = rogatory::testing::ConnectedClient(server_);
    receiver_port_ = testing::FreePort();
  }

  RelayOptions Options(const std::string& replica) {
    RelayOptions o;
    o.emitter = "intake";
    o.replica_id = replica;
    o.shard_count = kShards;
    o.receivers = {{"tester", absl::StrCat("127.0.0.1:", receiver_port_)}};
    o.routes = *EventRoutes::Parse("tester: *");
    o.lease = absl::Milliseconds(600);
    o.poll_interval = absl::Milliseconds(20);
    o.rpc_timeout = absl::Milliseconds(800);
    o.max_backoff = absl::Milliseconds(200);
    o.maintenance_interval = absl::Milliseconds(200);
    o.batch_size = 20;
    return o;
  }

  // Emits `count` events for `requests` requests spread over the shards, each request's
  // events with sequences 1, 2, ...
  void Emit(int count, int requests = 7) {
    for (int i = 0; i < count; ++i) {
      const int r = (emitted_ + i) % requests;
      const std::string id = RequestId(r);
      v1::Event e;
      e.set_event_id(absl::StrCat("ev-", emitted_ + i));
      e.set_request_id(id);
      e.set_sequence(++sequences_[id]);
      e.set_type(v1::EVENT_TYPE_REQUEST_SUBMITTED);
      e.set_source("intake");
      const int shard = *Sharding(kShards).ShardOf("rq", id);
      ASSERT_TRUE(RunRedisCommand(*redis_, {"XADD", EventKeys::Outbox(shard, "intake"), "*",
                                            kOutboxEventField, e.SerializeAsString()})
                      .ok());
    }
    emitted_ += count;
  }
  std::string RequestId(int r) {
    return Sharding::MakeId("rq", r % kShards, absl::FromUnixSeconds(1767225600 + r));
  }

  // Every effect recorded, in order per shard.
  std::vector<std::string> Effects() {
    std::vector<std::string> out;
    for (int s = 0; s < kShards; ++s) {
      auto r = RunRedisCommand(
          *redis_, {"LRANGE", absl::StrCat(Sharding::Prefix(s), "test:effects"), "0", "-1"});
      if (r.ok()) {
        for (const auto& e : r->elements) out.push_back(e.str);
      }
    }
    return out;
  }
  bool WaitForEffects(size_t n, std::chrono::seconds limit = std::chrono::seconds(20)) {
    const auto deadline = Steady::now() + limit;
    while (Steady::now() < deadline) {
      if (Effects().size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Each event exactly once, and each request's events in sequence order.
  void ExpectEachOnceInOrder() {
    auto effects = Effects();
    std::set<std::string> ids;
    std::map<std::string, int> last_seq;
    for (const auto& line : effects) {
      std::vector<std::string> f = absl::StrSplit(line, '|');
      ASSERT_EQ(f.size(), 3u);
      EXPECT_TRUE(ids.insert(f[2]).second) << "handled twice: " << f[2];
      const int seq = std::stoi(f[1]);
      EXPECT_EQ(seq, last_seq[f[0]] + 1) << "out of order for " << f[0];
      last_seq[f[0]] = seq;
    }
    EXPECT_EQ(ids.size(), static_cast<size_t>(emitted_));
  }

  testing::RedisServer server_;
  std::unique_ptr<RedisClient> redis_;
  RealClock clock_;  // the relay paces its lanes in real time
  Metrics metrics_;
  int receiver_port_ = 0;
  int emitted_ = 0;
  std::map<std::string, int> sequences_;
};

TEST_F(OutboxRelayTest, ReceiverDownForAWhileGetsEveryEventInOrderWhenBack) {
  OutboxRelay relay(*redis_, metrics_, clock_, Options("replica-a"));
  Emit(60);
  // The receiver is down: deliveries fail and back off.
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  while (!CountedAboveZero(metrics_.Render(),
                           "rogatory_event_delivery_failures_total{"
                           "emitter=\"intake\",receiver=\"tester\"") &&
         Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(Effects().empty());
  Emit(40);
  Receiver receiver(*redis_, receiver_port_, metrics_);
  ASSERT_TRUE(WaitForEffects(100));
  ExpectEachOnceInOrder();
}

// Issue 22, item 12: a lane whose renewal failed while Redis was down is taken up again
// as soon as Redis answers (under a new fencing token), not when its old lease expires,
// when every replica's lanes used to resume at once with the backlog of the whole lease.
TEST_F(OutboxRelayTest, LanesResumeRightAfterARedisRestartNotWhenTheirLeaseExpires) {
  AsyncRedisOptions o;
  o.url = *ParseRedisUrl(server_.url());
  o.command_timeout = absl::Seconds(2);
  o.max_backoff = absl::Milliseconds(100);  // reconnects at once: only the lease counts
  std::unique_ptr<RedisClient> redis = NewAsyncRedisClient(o);
  Receiver receiver(*redis_, receiver_port_, metrics_);
  RelayOptions options = Options("replica-a");
  options.lease = absl::Seconds(30);  // renewed every 10 s, retried every 7.5 s when lost
  OutboxRelay relay(*redis, metrics_, clock_, options);
  Emit(8);
  ASSERT_TRUE(WaitForEffects(8));
  // An outage longer than the renewal period: every lane's renewal fails and it drops its
  // token; the old leases stay in Redis (AOF) until 30 s after their last renewal.
  server_.Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(10500));
  server_.Start();
  const auto restarted = Steady::now();
  ASSERT_TRUE(testing::AwaitPong(*redis_));
  Emit(8);
  // Within one retry (7.5 s); the old leases end 9.5 to 19.5 s after the restart.
  EXPECT_TRUE(WaitForEffects(16, std::chrono::seconds(9)))
      << "lanes resumed only after "
      << std::chrono::duration<double>(Steady::now() - restarted).count() << " s";
  ExpectEachOnceInOrder();
}

TEST_F(OutboxRelayTest, RepeatedDeliveryAfterALostAnswerActsOnce) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  receiver.handler().HoldNextAnswer();  // its effect is written; the answer never comes
  OutboxRelay relay(*redis_, metrics_, clock_, Options("replica-a"));
  Emit(30);
  ASSERT_TRUE(WaitForEffects(30));
  // The held batch was sent again after the timeout and dropped as a repeat.
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  const std::string duplicates = "rogatory_event_duplicates_dropped_total{source=\"intake\"}";
  while (!CountedAboveZero(metrics_.Render(), duplicates) && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(CountedAboveZero(metrics_.Render(), duplicates)) << metrics_.Render();
  receiver.handler().ReleaseHeldAnswer();
  ExpectEachOnceInOrder();
}

TEST_F(OutboxRelayTest, RelayKilledBetweenReadAndAckIsTakenOverAndActsOnce) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  receiver.handler().HoldNextAnswer();
  auto dying = std::make_unique<OutboxRelay>(*redis_, metrics_, clock_, Options("replica-a"));
  Emit(1);
  ASSERT_TRUE(WaitForEffects(1));  // delivered and handled, not yet acknowledged
  dying->Abandon();                // dies: no acknowledgement, its lease is not released
  dying.reset();
  auto pending = RunRedisCommand(*redis_, {"XPENDING", EventKeys::Outbox(0, "intake"), "tester"});
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->elements[0].integer, 1);  // read, never acknowledged
  Emit(20);
  OutboxRelay successor(*redis_, metrics_, clock_, Options("replica-b"));
  ASSERT_TRUE(WaitForEffects(21));
  receiver.handler().ReleaseHeldAnswer();
  // Give the successor time to deliver (and drop) the pending entry too.
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  while (Steady::now() < deadline) {
    auto p = RunRedisCommand(*redis_, {"XPENDING", EventKeys::Outbox(0, "intake"), "tester"});
    if (p.ok() && p->elements[0].integer == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ExpectEachOnceInOrder();
}

TEST_F(OutboxRelayTest, TwoReplicasShareLanesAndAStoppedOnesLanesAreTakenOver) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  auto a = std::make_unique<OutboxRelay>(*redis_, metrics_, clock_, Options("replica-a"));
  OutboxRelay b(*redis_, metrics_, clock_, Options("replica-b"));
  Emit(200);
  ASSERT_TRUE(WaitForEffects(200));
  a->Abandon();  // a crash: its lanes stay leased until the lease runs out
  Emit(200);
  ASSERT_TRUE(WaitForEffects(400));
  a.reset();
  ExpectEachOnceInOrder();
}

TEST_F(OutboxRelayTest, AcknowledgedEntriesAreTrimmedAndBacklogIsExported) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  OutboxRelay relay(*redis_, metrics_, clock_, Options("replica-a"));
  Emit(50);
  ASSERT_TRUE(WaitForEffects(50));
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  int64_t left = -1;
  while (Steady::now() < deadline) {
    left = 0;
    for (int s = 0; s < kShards; ++s) {
      left += RunRedisCommand(*redis_, {"XLEN", EventKeys::Outbox(s, "intake")})->integer;
    }
    if (left == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(left, 0);
  const std::string text = metrics_.Render();
  EXPECT_THAT(text, ::testing::HasSubstr("rogatory_outbox_backlog{emitter=\"intake\","
                                         "receiver=\"tester\",shard=\"0\"} 0"));
  EXPECT_THAT(text, ::testing::HasSubstr("rogatory_events_delivered_total{emitter=\"intake\","
                                         "receiver=\"tester\"} 50"));
}

TEST(EventRoutesTest, DefaultsAndParsing) {
  const EventRoutes& d = EventRoutes::Defaults();
  EXPECT_TRUE(d.Wants("routing", v1::EVENT_TYPE_REQUEST_SUBMITTED));
  EXPECT_TRUE(d.Wants("deadlines", v1::EVENT_TYPE_PERSON_ARRESTED));
  EXPECT_TRUE(d.Wants("notification", v1::EVENT_TYPE_DEADLINE_MISSED));
  EXPECT_TRUE(d.Wants("intake", v1::EVENT_TYPE_ROUTING_DECIDED));
  EXPECT_FALSE(d.Wants("intake", v1::EVENT_TYPE_REQUEST_SUBMITTED));
  EXPECT_EQ(d.ReceiversOf("intake"),
            (std::vector<std::string>{"deadlines", "notification", "routing"}));
  auto bad = EventRoutes::Parse("routing: REQUEST_SUBMITTED\n  NOT_A_TYPE\n");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("line 2"));
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("NOT_A_TYPE"));
}

// A script of this process that commits to the outbox wakes the shard's lane: the event is
// delivered at once, not at the lane's next poll (10 s here).
TEST_F(OutboxRelayTest, ScriptCommittingToTheOutboxWakesItsLaneBeforeThePollInterval) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  AsyncRedisOptions o;
  o.url = *ParseRedisUrl(server_.url());
  o.command_timeout = absl::Seconds(5);
  OutboxWakingRedisClient waking(NewAsyncRedisClient(o), "intake", kShards);
  Emit(1, 1);  // before the relay starts: its first look delivers it
  RelayOptions options = Options("replica-a");
  options.poll_interval = absl::Seconds(10);
  OutboxRelay relay(waking.inner(), metrics_, clock_, options);
  waking.SetRelay(&relay);
  ASSERT_TRUE(WaitForEffects(1));  // now the lane is idle until its next poll, 10 s away

  const std::string id = RequestId(0);
  v1::Event e;
  e.set_event_id("ev-woken");
  e.set_request_id(id);
  e.set_sequence(++sequences_[id]);
  e.set_type(v1::EVENT_TYPE_REQUEST_SUBMITTED);
  e.set_source("intake");
  ++emitted_;
  static const LuaScript* emit =
      new LuaScript("redis.call('XADD', KEYS[1], '*', 'ev', ARGV[1]) return 1");
  const auto start = Steady::now();
  auto written = RunRedisScript(waking, *emit,
                                {EventKeys::Outbox(*Sharding(kShards).ShardOf("rq", id), "intake")},
                                {e.SerializeAsString()});
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_TRUE(WaitForEffects(2));
  EXPECT_LT(Steady::now() - start, std::chrono::seconds(1));
  waking.SetRelay(nullptr);
  ExpectEachOnceInOrder();
}

// Another process's commit wakes the lane through Redis pub/sub: the committing client here
// wakes no relay of its own (as in a replica that does not hold the lane), and the relay's
// safety-net poll is 60 s, so only the PUBLISH can deliver the event in time.
TEST_F(OutboxRelayTest, CommitInAnotherProcessWakesTheLaneThroughPubSub) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  AsyncRedisOptions o;
  o.url = *ParseRedisUrl(server_.url());
  o.command_timeout = absl::Seconds(5);
  OutboxWakingRedisClient other_process(NewAsyncRedisClient(o), "intake", kShards);
  Emit(1, 1);  // before the relay starts: its first look delivers it
  RelayOptions options = Options("replica-a");
  options.poll_interval = absl::Seconds(60);
  options.pubsub = *ParseRedisUrl(server_.url());
  OutboxRelay relay(*redis_, metrics_, clock_, options);
  ASSERT_TRUE(WaitForEffects(1));
  // The relay's subscription is in place.
  const auto subscribed_by = Steady::now() + std::chrono::seconds(10);
  while (Steady::now() < subscribed_by) {
    auto n = RunRedisCommand(*redis_, {"PUBSUB", "NUMSUB", OutboxAppendedChannel("intake")});
    if (n.ok() && n->elements.size() == 2 && n->elements[1].integer == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the resubscribe wake-up ran

  const std::string id = RequestId(0);
  v1::Event e;
  e.set_event_id("ev-published");
  e.set_request_id(id);
  e.set_sequence(++sequences_[id]);
  e.set_type(v1::EVENT_TYPE_REQUEST_SUBMITTED);
  e.set_source("intake");
  ++emitted_;
  static const LuaScript* emit =
      new LuaScript("redis.call('XADD', KEYS[1], '*', 'ev', ARGV[1]) return 1");
  const auto start = Steady::now();
  auto written = RunRedisScript(other_process, *emit,
                                {EventKeys::Outbox(*Sharding(kShards).ShardOf("rq", id), "intake")},
                                {e.SerializeAsString()});
  ASSERT_TRUE(written.ok()) << written.status();
  ASSERT_TRUE(WaitForEffects(2, std::chrono::seconds(5)));
  EXPECT_LT(Steady::now() - start, std::chrono::seconds(1));
  ExpectEachOnceInOrder();
}

// An idle relay (default pacing: a safety-net poll every few seconds, pushed wake-ups) sends
// Redis only a handful of commands per second, not a read per lane every 100 ms.
TEST_F(OutboxRelayTest, IdleRelaySendsRedisAFewCommandsPerSecond) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  RelayOptions options = Options("replica-a");
  const RelayOptions defaults;
  options.lease = defaults.lease;
  options.poll_interval = defaults.poll_interval;
  options.maintenance_interval = defaults.maintenance_interval;
  options.pubsub = *ParseRedisUrl(server_.url());
  OutboxRelay relay(*redis_, metrics_, clock_, options);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // leases taken, first looks done
  testing::CommandCounter commands(*redis_);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  const int64_t total = commands.Total();
  ASSERT_GE(total, 0);
  // kShards lanes of one receiver.
  const double per_second = static_cast<double>(total) / 4.0;
  // A lane read or lease renewal is a script of a few commands; each lane does at most two of
  // each in the window. Polling every 100 ms, these lanes sent over 100/s.
  EXPECT_LE(per_second, 20.0) << "commands/s of an idle relay with " << kShards << " lanes";
}

// Issue 19: an idle relay of many lanes (three receivers over 16 shards, the default
// pacing) does not read each lane at the safety net: one look per shard says which lanes
// have anything to do, and the shard leases are renewed a few times per lease, not per lane.
// Reading every lane every 5 s and renewing each lease at a third of 10 s, it sent ~50/s.
TEST_F(OutboxRelayTest, IdleRelayOfManyLanesLooksPerShardNotPerLane) {
  RelayOptions options = Options("replica-a");
  const RelayOptions defaults;
  options.shard_count = 16;
  options.receivers = {{"tester", absl::StrCat("127.0.0.1:", receiver_port_)},
                       {"second", absl::StrCat("127.0.0.1:", receiver_port_)},
                       {"third", absl::StrCat("127.0.0.1:", receiver_port_)}};
  options.routes = *EventRoutes::Parse("tester: *\nsecond: *\nthird: *");
  options.lease = defaults.lease;
  options.poll_interval = defaults.poll_interval;
  options.subscribed_poll_interval = defaults.subscribed_poll_interval;
  options.maintenance_interval = defaults.maintenance_interval;
  options.pubsub = *ParseRedisUrl(server_.url());
  OutboxRelay relay(*redis_, metrics_, clock_, options);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // leases taken, first looks done
  testing::CommandCounter counter(*redis_);
  std::this_thread::sleep_for(std::chrono::seconds(11));
  const int64_t commands = counter.Total();
  ASSERT_GE(commands, 0);
  const double per_second = static_cast<double>(commands) / 11.0;
  EXPECT_LE(per_second, 12.0) << "commands/s of an idle relay with 48 lanes";
}

// A commit whose wake-up is lost (no pub/sub here, and no process-local wake) is still
// delivered by the safety net's look at its shard, though every lane is idle.
TEST_F(OutboxRelayTest, CommitWithoutAWakeUpIsDeliveredAtTheSafetyNet) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  RelayOptions options = Options("replica-a");
  options.poll_interval = absl::Milliseconds(300);
  OutboxRelay relay(*redis_, metrics_, clock_, options);
  Emit(3);
  ASSERT_TRUE(WaitForEffects(3));
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // every lane idle
  Emit(5);                                                      // XADD only: nobody is told
  ASSERT_TRUE(WaitForEffects(8));
  ExpectEachOnceInOrder();
}

// A replica that was already running takes over an abandoned replica's shards (when their
// lease runs out, without any wake-up), including the entries the dead one read but never
// acknowledged, and delivers them before the newer ones of their request.
TEST_F(OutboxRelayTest, RunningReplicaTakesOverAbandonedShardsWithTheirUnacknowledgedEntries) {
  Receiver receiver(*redis_, receiver_port_, metrics_);
  receiver.handler().HoldNextAnswer();
  auto dying = std::make_unique<OutboxRelay>(*redis_, metrics_, clock_, Options("replica-a"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a holds every shard
  OutboxRelay successor(*redis_, metrics_, clock_, Options("replica-b"));
  Emit(1, 1);
  ASSERT_TRUE(WaitForEffects(1));  // handled by a's lane; its answer is held
  const std::string outbox =
      EventKeys::Outbox(*Sharding(kShards).ShardOf("rq", RequestId(0)), "intake");
  auto pending = RunRedisCommand(*redis_, {"XPENDING", outbox, "tester"});
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->elements[0].integer, 1);  // read, not acknowledged
  // Dies while waiting for the answer (Abandon waits for it to time out, meanwhile a's lease
  // runs out and b may take over already): a acknowledges nothing and releases nothing.
  dying->Abandon();
  dying.reset();
  Emit(10, 3);
  ASSERT_TRUE(WaitForEffects(11));
  receiver.handler().ReleaseHeldAnswer();
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  while (Steady::now() < deadline) {
    auto p = RunRedisCommand(*redis_, {"XPENDING", outbox, "tester"});
    if (p.ok() && p->elements[0].integer == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto p = RunRedisCommand(*redis_, {"XPENDING", outbox, "tester"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->elements[0].integer, 0) << "the taken-over entry was never acknowledged";
  // b delivered the entry a had read again (the receiver dropped it as a repeat).
  EXPECT_TRUE(CountedAboveZero(metrics_.Render(),
                               "rogatory_event_duplicates_dropped_total{source=\"intake\"}"))
      << metrics_.Render();
  ExpectEachOnceInOrder();
}

// A commit woken while its lane backed off after a failed delivery (the wake-up is not
// taken then) is delivered when the receiver is back, right after the entries the lane had
// read: the lane reads until a read finds nothing, not only its pending entries.
TEST_F(OutboxRelayTest, CommitWokenWhileTheLaneBacksOffIsDeliveredWhenTheReceiverIsBack) {
  AsyncRedisOptions o;
  o.url = *ParseRedisUrl(server_.url());
  o.command_timeout = absl::Seconds(5);
  OutboxWakingRedisClient waking(NewAsyncRedisClient(o), "intake", kShards);
  Emit(1, 1);  // before the relay starts: its first look reads it; the receiver is down
  RelayOptions options = Options("replica-a");
  options.poll_interval = absl::Seconds(60);  // no safety net within the test
  options.max_backoff = absl::Milliseconds(500);
  OutboxRelay relay(waking.inner(), metrics_, clock_, options);
  waking.SetRelay(&relay);
  const auto failed_by = Steady::now() + std::chrono::seconds(10);
  while (!CountedAboveZero(metrics_.Render(),
                           "rogatory_event_delivery_failures_total{"
                           "emitter=\"intake\",receiver=\"tester\"") &&
         Steady::now() < failed_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string id = RequestId(0);
  v1::Event e;
  e.set_event_id("ev-while-backing-off");
  e.set_request_id(id);
  e.set_sequence(++sequences_[id]);
  e.set_type(v1::EVENT_TYPE_REQUEST_SUBMITTED);
  e.set_source("intake");
  ++emitted_;
  static const LuaScript* emit =
      new LuaScript("redis.call('XADD', KEYS[1], '*', 'ev', ARGV[1]) return 1");
  auto written = RunRedisScript(waking, *emit,
                                {EventKeys::Outbox(*Sharding(kShards).ShardOf("rq", id), "intake")},
                                {e.SerializeAsString()});
  ASSERT_TRUE(written.ok()) << written.status();
  Receiver receiver(*redis_, receiver_port_, metrics_);
  ASSERT_TRUE(WaitForEffects(2, std::chrono::seconds(10)));
  waking.SetRelay(nullptr);
  ExpectEachOnceInOrder();
}

// A receiver that wants nothing the emitter emits gets no lanes (no lease, no group, no
// reads); one that wants some of it does.
TEST_F(OutboxRelayTest, NoLanesForAReceiverThatWantsNothingTheEmitterEmits) {
  auto lanes_held = [this] {
    int held = 0;
    for (int s = 0; s < kShards; ++s) {
      auto n = RunRedisCommand(*redis_, {"EXISTS", EventKeys::RelayLease(s, "intake", "*")});
      if (n.ok() && n->integer == 1) ++held;
    }
    return held;
  };
  RelayOptions options = Options("replica-a");
  options.routes = *EventRoutes::Parse("tester: REQUEST_SUBMITTED");
  options.emits = {v1::EVENT_TYPE_ROUTING_DECIDED};
  {
    OutboxRelay relay(*redis_, metrics_, clock_, options);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(lanes_held(), 0);
    auto groups = RunRedisCommand(*redis_, {"XINFO", "GROUPS", EventKeys::Outbox(0, "intake")});
    EXPECT_TRUE(!groups.ok() || groups->elements.empty());
  }
  options.emits = {v1::EVENT_TYPE_ROUTING_DECIDED, v1::EVENT_TYPE_REQUEST_SUBMITTED};
  OutboxRelay relay(*redis_, metrics_, clock_, options);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(lanes_held(), kShards);
}

// Only a key that is exactly the emitter's outbox of an existing shard wakes a lane.
TEST(OutboxWakingRedisClientTest, RecognisesOnlyTheEmittersOutboxKeys) {
  using W = OutboxWakingRedisClient;
  EXPECT_EQ(W::OutboxShardOf({EventKeys::Outbox(3, "intake")}, "intake", kShards), 3);
  EXPECT_EQ(W::OutboxShardOf({"rg:{s0}:rq:x", EventKeys::Outbox(0, "intake")}, "intake", kShards),
            0);
  EXPECT_EQ(W::OutboxShardOf({EventKeys::Outbox(1, "routing")}, "intake", kShards), -1);
  EXPECT_EQ(W::OutboxShardOf({"rg:{s1}:outbox:intake:x"}, "intake", kShards), -1);
  EXPECT_EQ(W::OutboxShardOf({"rg:{s1}:xoutbox:intake"}, "intake", kShards), -1);
  EXPECT_EQ(W::OutboxShardOf({"rg:{s4}:outbox:intake"}, "intake", kShards), -1);  // no shard 4
  EXPECT_EQ(W::OutboxShardOf({"rg:{sx}:outbox:intake"}, "intake", kShards), -1);
  EXPECT_EQ(W::OutboxShardOf({}, "intake", kShards), -1);
}

}  // namespace
}  // namespace rogatory::common
