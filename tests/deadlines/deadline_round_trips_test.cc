// The Redis round trips of the deadline store's operations, counted exactly at the client
// (every Command and Eval is one). Issue 17 moved every key name out of the scripts: the
// writes kept their count; a read of deadlines named by an index or a claim now takes one
// more (the index, then the deadlines it names, with their keys declared).
#include <atomic>

#include "gtest/gtest.h"
#include "redis_deadline_store.h"
#include "redis_fixture.h"

namespace rogatory::deadlines {
namespace {

using testing::Waiter;

class CountingRedisClient final : public common::RedisClient {
 public:
  explicit CountingRedisClient(common::RedisClient& inner) : inner_(inner) {}
  void Command(std::vector<std::string> args, common::RedisCallback done) override {
    ++count_;
    inner_.Command(std::move(args), std::move(done));
  }
  void Eval(const common::LuaScript& script, std::vector<std::string> keys,
            std::vector<std::string> args, common::RedisCallback done) override {
    ++count_;
    inner_.Eval(script, std::move(keys), std::move(args), std::move(done));
  }
  int Take() { return count_.exchange(0); }

 private:
  common::RedisClient& inner_;
  std::atomic<int> count_{0};
};

class DeadlineRoundTripsTest : public testing::DeadlinesRedisTest {
 protected:
  void SetUp() override {
    DeadlinesRedisTest::SetUp();
    counting_ = std::make_unique<CountingRedisClient>(*redis_);
    store_ = std::make_unique<RedisDeadlineStore>(*counting_, common::Sharding(testing::kShards));
    tracker_ = std::make_unique<DeadlineTracker>(*store_, *registry_, clock_);
    handler_ = std::make_unique<DeadlineEventHandler>(*tracker_);
  }

  common::v1::Event Event(const std::string& request_id, common::v1::EventType type) {
    common::v1::Event e;
    e.set_event_id(common::NewUlid(clock_.Now()));
    e.set_request_id(request_id);
    e.set_type(type);
    *e.mutable_occur_time() = ToProtoTime(clock_.Now());
    e.set_instrument(common::v1::INSTRUMENT_EAW);
    e.set_source("intake");
    e.mutable_request()->set_requested_state("DE");
    e.mutable_request()->set_urgency(common::v1::URGENCY_NORMAL);
    e.mutable_request()->mutable_executing_authority()->set_authority_id("DE-BY-GSTA-MUENCHEN");
    e.mutable_request()->mutable_executing_authority()->set_state("DE");
    return e;
  }

  std::unique_ptr<CountingRedisClient> counting_;
};

TEST_F(DeadlineRoundTripsTest, EachOperationTakesItsBudgetOfRoundTrips) {
  const std::string rq = RequestId(1);
  // Start (CreateDeadline): the commit.
  auto started = StartDeadline(rq, "EAW_DECISION_NO_CONSENT");
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(counting_->Take(), 1);
  // A change through the API (CompleteDeadline): read, then commit.
  Waiter<absl::StatusOr<v1::Deadline>> completed;
  tracker_->Mutate(
      started->id(), "", "", [&](v1::Deadline& d) { return Complete(d, clock_.Now()); },
      completed.Callback());
  ASSERT_TRUE(completed.Get().ok());
  EXPECT_EQ(counting_->Take(), 2);
  // A received event about a request without deadlines: its index, then the commit.
  const std::string other = RequestId(2);
  ASSERT_TRUE(Deliver(Event(other, common::v1::EVENT_TYPE_PERSON_ARRESTED)).ok());
  EXPECT_EQ(counting_->Take(), 2);
  // ... and with deadlines: its index, their deadlines, the commit (before: 2).
  ASSERT_TRUE(Deliver(Event(other, common::v1::EVENT_TYPE_CONSENT_GIVEN)).ok());
  EXPECT_EQ(counting_->Take(), 3);
  // A page of an index: the page, then its deadlines (before: 1).
  Waiter<absl::StatusOr<IndexPage>> page;
  store_->ListIndexPage(2, "byreq:" + other, int64_t{1} << 50, 10, std::nullopt, page.Callback());
  auto got = page.Get();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->entries.size(), 2u);
  EXPECT_EQ(counting_->Take(), 2);
  // A claim of due timers: the claim, then the claimed deadlines (before: 1).
  auto claimed = store_->Claim(2, clock_.Now() + absl::Hours(24 * 400), absl::Seconds(10), 10);
  ASSERT_TRUE(claimed.ok());
  EXPECT_FALSE(claimed->empty());
  EXPECT_EQ(counting_->Take(), 2);
  // Retention: the request's index, its deadlines' authorities, the erase (before: 1).
  common::Dedupe dedupe{common::EventKeys::Seen(2, "deadlines", "erased"), "600000"};
  Waiter<absl::StatusOr<CommitOutcome>> erased;
  store_->EraseRequest(2, other, dedupe, erased.Callback());
  ASSERT_EQ(*erased.Get(), CommitOutcome::kOk);
  EXPECT_EQ(counting_->Take(), 3);
}

// A page listed again on the same replica (a list polled, or paged over again) is read in
// one round trip again, as before issue 17: the page script is given the deadlines the page
// listed last time and reads them with the page when it lists no other. A page whose
// entries changed reads as a first one does, and every read is fresh.
TEST_F(DeadlineRoundTripsTest, APageListedAgainReadsItsDeadlinesWithThePage) {
  const std::string rq = RequestId(3);
  auto first = StartDeadline(rq, "EAW_DECISION_NO_CONSENT");
  ASSERT_TRUE(first.ok()) << first.status();
  const int shard = *store_->ShardOfRequest(rq);
  auto list = [&]() {
    Waiter<absl::StatusOr<IndexPage>> page;
    store_->ListIndexPage(shard, "byreq:" + rq, int64_t{1} << 50, 10, std::nullopt,
                          page.Callback());
    return page.Get();
  };
  ASSERT_TRUE(list().ok());
  counting_->Take();

  auto again = list();
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->entries.size(), 1u);
  ASSERT_TRUE(again->entries[0].deadline.has_value());
  EXPECT_EQ(again->entries[0].deadline->deadline.id(), first->id());
  EXPECT_EQ(counting_->Take(), 1) << "the hinted page: its deadlines read with it";

  // The deadline changes: the hinted read returns it as it is now.
  Waiter<absl::StatusOr<v1::Deadline>> completed;
  tracker_->Mutate(
      first->id(), "", "", [&](v1::Deadline& d) { return Complete(d, clock_.Now()); },
      completed.Callback());
  absl::StatusOr<v1::Deadline> now = completed.Get();
  ASSERT_TRUE(now.ok());
  counting_->Take();
  auto changed = list();
  ASSERT_TRUE(changed.ok());
  ASSERT_EQ(changed->entries.size(), 1u);
  ASSERT_TRUE(changed->entries[0].deadline.has_value());
  EXPECT_EQ(changed->entries[0].deadline->deadline.state(), now->state());
  EXPECT_EQ(counting_->Take(), 1);

  // A second deadline on the page: not in the hint, so read after the page.
  auto second = StartDeadline(rq, "EAW_DECISION_CONSENT");
  ASSERT_TRUE(second.ok()) << second.status();
  counting_->Take();
  auto grown = list();
  ASSERT_TRUE(grown.ok());
  ASSERT_EQ(grown->entries.size(), 2u);
  for (const IndexEntry& e : grown->entries) EXPECT_TRUE(e.deadline.has_value()) << e.id;
  EXPECT_EQ(counting_->Take(), 2);
  ASSERT_TRUE(list().ok());
  EXPECT_EQ(counting_->Take(), 1);
}

}  // namespace
}  // namespace rogatory::deadlines
