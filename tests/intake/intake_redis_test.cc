// IntakeService on RedisRequestStore against a real redis-server: concurrency (idempotent
// duplicates, version-guarded transitions), the lifecycle scripts' keys and indexes, events
// in the outbox.
#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "declared_emits.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "intake_event_handler.h"
#include "intake_harness.h"
#include "intake_metrics.h"
#include "redis_request_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/metrics.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using testing::IntakeHarness;

class IntakeRedisTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new testing::RedisServer();
    client_ = rogatory::testing::ConnectedClient(*server_).release();
  }
  static void TearDownTestSuite() {
    delete client_;
    delete server_;
  }
  void SetUp() override { ASSERT_TRUE(common::RunRedisCommand(*client_, {"FLUSHALL"}).ok()); }

  std::vector<pb::Event> OutboxOf(const std::string& id) {
    const int shard = *common::Sharding(16).ShardOf("rq", id);
    auto reply = common::RunRedisCommand(
        *client_, {"XRANGE", common::EventKeys::Outbox(shard, "intake"), "-", "+"});
    std::vector<pb::Event> out;
    EXPECT_TRUE(reply.ok());
    if (!reply.ok()) return out;
    for (const auto& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        pb::Event e;
        if (fields[i].str == common::kOutboxEventField && e.ParseFromString(fields[i + 1].str) &&
            e.request_id() == id) {
          out.push_back(e);
        }
      }
    }
    return out;
  }
  int64_t ZScoreExists(const std::string& key, const std::string& member) {
    auto reply = common::RunRedisCommand(*client_, {"ZSCORE", key, member});
    return reply.ok() && !reply->is_nil() ? 1 : 0;
  }

  static testing::RedisServer* server_;
  static common::RedisClient* client_;
  RedisRequestStore store_{*client_, common::Sharding(16), absl::Hours(48)};
  IntakeHarness h_{store_};
};
testing::RedisServer* IntakeRedisTest::server_ = nullptr;
common::RedisClient* IntakeRedisTest::client_ = nullptr;

TEST_F(IntakeRedisTest, FiftyConcurrentSubmissionsWithOneRequestIdCreateOneRequest) {
  constexpr int kCalls = 50;
  std::vector<std::thread> threads;
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<v1::Request> results(kCalls);
  std::atomic<bool> go{false};
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      statuses[i] = h_.Submit(testing::CompleteEio(), "same-key-50", &results[i]);
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    ids.insert(results[i].id());
  }
  ASSERT_EQ(ids.size(), 1u);
  // One request in the index, one history entry, one event.
  auto all = common::RunRedisCommand(
      *client_,
      {"EVAL",
       "local n = 0 for s = 0, 15 do n = n + redis.call('ZCARD', 'rg:{s' .. s .. '}:idx:all') end "
       "return n",
       "0"});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->integer, 1);
  EXPECT_EQ(h_.History(*ids.begin()).size(), 1u);
  EXPECT_EQ(OutboxOf(*ids.begin()).size(), 1u);
}

TEST_F(IntakeRedisTest, TwentyConcurrentTransitionsOnOneVersionLetExactlyOneThrough) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  constexpr int kCalls = 20;
  std::vector<std::thread> threads;
  std::vector<grpc::Status> statuses(kCalls);
  std::atomic<bool> go{false};
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      v1::TransitionRequestRequest req;
      req.set_request_id(absl::StrCat("move-", i));  // distinct calls, one version
      req.set_id(r.id());
      req.set_target_status(pb::REQUEST_STATUS_FORWARDED);
      req.set_etag(r.etag());
      while (!go.load()) std::this_thread::yield();
      statuses[i] = h_.Transition(req, nullptr);
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  int ok = 0, aborted = 0;
  for (const auto& s : statuses) {
    if (s.ok()) ++ok;
    if (s.error_code() == grpc::StatusCode::ABORTED) ++aborted;
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(aborted, kCalls - 1);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(got.etag(), "2");
  EXPECT_EQ(h_.History(r.id()).size(), 2u);
  EXPECT_EQ(OutboxOf(r.id()).size(), 2u);
}

TEST_F(IntakeRedisTest, FiftyConcurrentDuplicatesOfOneTransitionApplyOnce) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EAW);
  constexpr int kCalls = 50;
  std::vector<std::thread> threads;
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<v1::Request> results(kCalls);
  std::atomic<bool> go{false};
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      v1::TransitionRequestRequest req;
      req.set_request_id("arrest-1");
      req.set_id(r.id());
      req.set_target_status(pb::REQUEST_STATUS_ARRESTED);
      while (!go.load()) std::this_thread::yield();
      statuses[i] = h_.Transition(req, &results[i]);
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(results[i].etag(), "2");
    EXPECT_EQ(results[i].status(), pb::REQUEST_STATUS_ARRESTED);
  }
  const auto events = OutboxOf(r.id());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].type(), pb::EVENT_TYPE_PERSON_ARRESTED);
  EXPECT_EQ(events[1].sequence(), 2);
}

TEST_F(IntakeRedisTest, TransitionsMoveIndexesAndSupplementsReindexAndEventsReachTheOutbox) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const int shard = *common::Sharding(16).ShardOf("rq", r.id());
  const std::string p = common::Sharding::Prefix(shard);
  EXPECT_EQ(ZScoreExists(p + "idx:status:1", r.id()), 1);
  EXPECT_EQ(ZScoreExists(p + "idx:urgency:1", r.id()), 1);
  EXPECT_EQ(ZScoreExists(p + "idx:requested_state:DE", r.id()), 1);
  EXPECT_EQ(ZScoreExists(p + "idx:issuing_state:FR", r.id()), 1);
  ASSERT_TRUE(h_.Move(r.id(), pb::REQUEST_STATUS_FORWARDED).ok());
  EXPECT_EQ(ZScoreExists(p + "idx:status:1", r.id()), 0);
  EXPECT_EQ(ZScoreExists(p + "idx:status:5", r.id()), 1);

  // The requested state is fixed at submission (issue 16): a supplement naming it is
  // refused and leaves the indexes alone.
  v1::SupplementRequestRequest moved;
  moved.set_id(r.id());
  moved.mutable_content()->set_requested_state("AT");
  moved.mutable_update_mask()->add_paths("requested_state");
  EXPECT_EQ(h_.Supplement(moved, nullptr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ZScoreExists(p + "idx:requested_state:AT", r.id()), 0);

  v1::SupplementRequestRequest sup;
  sup.set_id(r.id());
  sup.mutable_content()->set_urgency(pb::URGENCY_URGENT);
  sup.mutable_update_mask()->add_paths("urgency");
  v1::Request after;
  ASSERT_TRUE(h_.Supplement(sup, &after).ok());
  EXPECT_EQ(after.content().requested_state(), "DE");
  EXPECT_EQ(ZScoreExists(p + "idx:urgency:1", r.id()), 0);
  EXPECT_EQ(ZScoreExists(p + "idx:urgency:2", r.id()), 1);
  EXPECT_EQ(ZScoreExists(p + "idx:requested_state:DE", r.id()), 1);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.content().urgency(), pb::URGENCY_URGENT);
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_FORWARDED);
  EXPECT_EQ(got.etag(), "3");

  const auto events = OutboxOf(r.id());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].type(), pb::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY);
  EXPECT_EQ(events[2].type(), pb::EVENT_TYPE_REQUEST_SUPPLEMENTED);
  EXPECT_EQ(events[2].request().urgency(), pb::URGENCY_URGENT);
  // Mutation idempotency records live in the request's shard and expire.
  v1::WithdrawRequestRequest w;
  w.set_request_id("withdraw-key");
  w.set_id(r.id());
  ASSERT_TRUE(h_.Withdraw(w, nullptr).ok());
  auto ttl = common::RunRedisCommand(*client_, {"PTTL", p + "idem:FR-TJ-PARIS-JI:withdraw-key"});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->integer, 47 * 3600 * 1000LL);
}

TEST_F(IntakeRedisTest, ReportedEventsAreHandledOnceAndFollowTheLifecycle) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const int shard = *common::Sharding(16).ShardOf("rq", r.id());
  IntakeEventHandler handler(store_);
  pb::Event e;
  e.set_event_id("01jevent00000000000000000r1");
  e.set_request_id(r.id());
  e.set_source("routing");
  e.set_type(pb::EVENT_TYPE_ROUTING_DECIDED);
  e.set_status(pb::REQUEST_STATUS_TRANSLATION_PENDING);
  *e.mutable_occur_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
      absl::ToUnixMillis(h_.clock().Now()) + 1000);
  const common::Dedupe dedupe{common::EventKeys::Seen(shard, "intake", e.event_id()), "60000"};
  // Concurrent deliveries of the same event: handled once.
  std::vector<std::thread> threads;
  std::atomic<int> handled{0}, duplicates{0};
  for (int i = 0; i < 10; ++i) {
    threads.emplace_back([&] {
      auto out = testing::Await<common::EventHandler::Outcome>(
          [&](auto done) { handler.Handle(e, dedupe, std::move(done)); });
      ASSERT_TRUE(out.ok()) << out.status();
      (*out == common::EventHandler::Outcome::kHandled ? handled : duplicates)++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(duplicates.load(), 9);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_TRANSLATION_PENDING);
  const auto events = OutboxOf(r.id());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].type(), pb::EVENT_TYPE_REQUEST_TRANSLATION_PENDING);
  // The history, written by the same script: what routing reported, then the status change
  // as the event the outbox announced (issue 22 item 8).
  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[1].type(), pb::EVENT_TYPE_ROUTING_DECIDED);
  EXPECT_EQ(history[1].status(), pb::REQUEST_STATUS_UNSPECIFIED);
  EXPECT_EQ(history[2].event_id(), events[1].event_id());
  EXPECT_EQ(history[2].type(), pb::EVENT_TYPE_REQUEST_TRANSLATION_PENDING);
  EXPECT_EQ(history[2].status(), pb::REQUEST_STATUS_TRANSLATION_PENDING);
  EXPECT_EQ(history[2].previous_status(), pb::REQUEST_STATUS_RECEIVED);
}

TEST_F(IntakeRedisTest, RequestGaugeIsExportedByTheLeaseHolderOnly) {
  for (int i = 0; i < 3; ++i) h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const v1::Request eaw = h_.SubmitComplete(pb::INSTRUMENT_EAW);
  ASSERT_TRUE(h_.Move(eaw.id(), pb::REQUEST_STATUS_FORWARDED).ok());
  common::Metrics a_metrics, b_metrics;
  RequestCountGauge a(*client_, common::Sharding(16), a_metrics.registry(), "replica-a",
                      absl::Seconds(30));
  RequestCountGauge b(*client_, common::Sharding(16), b_metrics.registry(), "replica-b",
                      absl::Seconds(30));
  EXPECT_TRUE(a.RefreshOnce());
  EXPECT_FALSE(b.RefreshOnce());
  const std::string text = a_metrics.Render();
  EXPECT_NE(text.find("rogatory_intake_requests{instrument=\"EIO\",status=\"RECEIVED\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rogatory_intake_requests{instrument=\"EAW\",status=\"FORWARDED\"} 1"),
            std::string::npos);
  EXPECT_EQ(b_metrics.Render().find("rogatory_intake_requests{"), std::string::npos);
}

TEST_F(IntakeRedisTest, BusinessMetricsCountRejectionsAndTimeToAcknowledgment) {
  common::Metrics metrics;
  IntakeMetrics m(metrics.registry());
  IntakeHarness h(store_, 16, nullptr, IntakeOptions{.metrics = &m});
  v1::Request r;
  v1::RequestContent bad = testing::CompleteEio();
  bad.set_requested_state("nope");
  EXPECT_FALSE(h.Submit(bad, "", &r).ok());
  ASSERT_TRUE(h.Submit(testing::CompleteEio(), "k-1", &r).ok());
  bad = testing::CompleteEio();
  bad.set_requested_state("AT");
  EXPECT_FALSE(h.Submit(bad, "k-1", nullptr).ok());
  h.clock().Advance(absl::Hours(1));
  ASSERT_TRUE(h.Move(r.id(), pb::REQUEST_STATUS_FORWARDED).ok());
  h.clock().Advance(absl::Hours(1));
  ASSERT_TRUE(h.Acknowledge(r.id()).ok());
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("rogatory_intake_submissions_rejected_total{reason=\"malformed\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("rogatory_intake_submissions_rejected_total{reason=\"idempotency_conflict\"} 1"),
      std::string::npos);
  EXPECT_NE(
      text.find("rogatory_intake_time_to_acknowledgment_seconds_sum{instrument=\"EIO\"} 7200"),
      std::string::npos)
      << text;
}

}  // namespace
}  // namespace rogatory::intake
