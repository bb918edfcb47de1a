#pragma once

// The contract every deadlines::DeadlineStore keeps, as a typed test suite: the in-memory
// store runs it as a unit test (tests/deadlines/in_memory_deadline_store_test.cc), the Redis
// store against a real redis-server (tests/deadlines/redis_deadline_store_test.cc).

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "deadline_logic.h"
#include "deadline_store.h"
#include "gtest/gtest.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"

namespace rogatory::testing {

// Each factory type provides:
//   static std::unique_ptr<deadlines::DeadlineStore> Make();   (empty, Shards() shards)
//   static std::vector<common::v1::Event> Outbox(deadlines::DeadlineStore&, int shard);
//   static int Shards();
template <typename Factory>
class DeadlineStoreContractTest : public ::testing::Test {
 protected:
  using Outcome = deadlines::CommitOutcome;

  void SetUp() override { store_ = Factory::Make(); }

  template <typename T, typename Fn>
  static absl::StatusOr<T> Wait(Fn&& call) {
    absl::Notification done;
    absl::StatusOr<T> result = absl::UnknownError("no answer");
    call([&](absl::StatusOr<T> r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  static std::string RequestId(int shard, int n) {
    return common::Sharding::MakeId("rq", shard, absl::FromUnixSeconds(1767225600 + n));
  }

  // A RUNNING deadline of `request` due at `due`, with one reminder an hour before.
  deadlines::v1::Deadline MakeDeadline(const std::string& request, absl::Time due,
                                       const std::string& authority = "DE-BY-GSTA-MUENCHEN") {
    const int shard = *store_->ShardOfRequest(request);
    deadlines::v1::Deadline d;
    d.set_id(common::Sharding::MakeId("dl", shard, absl::FromUnixSeconds(1767225600 + ++n_)));
    d.set_request_id(request);
    d.set_rule_id("TEST_RULE");
    d.set_state(deadlines::v1::DEADLINE_STATE_RUNNING);
    d.set_instrument(common::v1::INSTRUMENT_EIO);
    d.set_executing_authority_id(authority);
    *d.mutable_due_time() = deadlines::ToProtoTime(due);
    *d.add_reminders()->mutable_fire_time() = deadlines::ToProtoTime(due - absl::Hours(1));
    return d;
  }

  static common::v1::Event EventFor(const deadlines::v1::Deadline& d, common::v1::EventType type) {
    return deadlines::ChangeEvent(d, type, absl::FromUnixSeconds(1767225600),
                                  common::NewUlid(absl::FromUnixSeconds(1767225600)), "");
  }

  absl::StatusOr<Outcome> Commit(int shard, std::vector<deadlines::DeadlineWrite> writes,
                                 const deadlines::CommitOptions& options = {}) {
    return Wait<Outcome>(
        [&](auto done) { store_->Commit(shard, std::move(writes), options, std::move(done)); });
  }
  // Writes a new deadline (with its DEADLINE_STARTED event).
  Outcome Create(const deadlines::v1::Deadline& d) {
    auto o = Commit(Shard(d), {{d, 0, EventFor(d, common::v1::EVENT_TYPE_DEADLINE_STARTED)}});
    EXPECT_TRUE(o.ok()) << o.status();
    return o.ok() ? *o : Outcome::kConflict;
  }
  // Replaces the stored deadline with `d` (its next version).
  absl::StatusOr<Outcome> Replace(const deadlines::StoredDeadline& stored,
                                  const deadlines::v1::Deadline& d,
                                  const deadlines::CommitOptions& options = {}) {
    deadlines::DeadlineWrite w{d, stored.version, std::nullopt,
                               deadlines::IndexedAuthority(stored.deadline)};
    return Commit(Shard(d), {std::move(w)}, options);
  }
  absl::StatusOr<deadlines::StoredDeadline> Get(const std::string& id,
                                                const std::string& idempotency_key = "") {
    return Wait<deadlines::StoredDeadline>(
        [&](auto done) { store_->Get(id, std::move(done), idempotency_key); });
  }
  std::vector<std::string> Ids(int shard, const std::string& index) {
    auto listed = Wait<std::vector<deadlines::StoredDeadline>>([&](auto done) {
      store_->ListIndex(shard, index, absl::FromUnixSeconds(int64_t{1} << 40), 100,
                        std::move(done));
    });
    EXPECT_TRUE(listed.ok()) << listed.status();
    std::vector<std::string> ids;
    if (listed.ok()) {
      for (const auto& s : *listed) ids.push_back(s.deadline.id());
    }
    return ids;
  }
  int64_t Stat(int shard, const std::string& name) {
    auto stats = store_->Stats(shard);
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (stats.ok()) {
      for (const auto& [field, value] : *stats) {
        if (field == name) return value;
      }
    }
    return 0;
  }
  int Shard(const deadlines::v1::Deadline& d) { return *store_->ShardOfDeadline(d.id()); }

  std::unique_ptr<deadlines::DeadlineStore> store_;
  int n_ = 0;
  const absl::Time due_ = absl::FromUnixSeconds(1767225600) + absl::Hours(72);
};

TYPED_TEST_SUITE_P(DeadlineStoreContractTest);

TYPED_TEST_P(DeadlineStoreContractTest, CreatedDeadlineIsReadBackAtVersionOneAndIndexed) {
  const std::string rq = this->RequestId(1, 1);
  auto d = this->MakeDeadline(rq, this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  auto got = this->Get(d.id());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version, 1);
  // As written, with the etag of version 1 (the store stamps it).
  EXPECT_EQ(got->deadline.etag(), "1");
  auto written = d;
  written.set_etag("1");
  EXPECT_EQ(got->deadline.SerializeAsString(), written.SerializeAsString());
  auto blocking = this->store_->GetBlocking(d.id());
  ASSERT_TRUE(blocking.ok()) << blocking.status();
  EXPECT_EQ(blocking->version, 1);
  EXPECT_EQ(this->Ids(1, "byreq:" + rq), std::vector<std::string>{d.id()});
  EXPECT_EQ(this->Ids(1, "open"), std::vector<std::string>{d.id()});
  EXPECT_EQ(this->Ids(1, "byauth:DE-BY-GSTA-MUENCHEN"), std::vector<std::string>{d.id()});
  EXPECT_EQ(this->Stat(1, absl::StrCat("open:", common::v1::INSTRUMENT_EIO)), 1);
}

TYPED_TEST_P(DeadlineStoreContractTest, MissingDeadlineIsNotFound) {
  auto d = this->MakeDeadline(this->RequestId(2, 1), this->due_);
  EXPECT_TRUE(absl::IsNotFound(this->Get(d.id()).status()));
  EXPECT_TRUE(absl::IsNotFound(this->store_->GetBlocking(d.id()).status()));
  EXPECT_TRUE(absl::IsNotFound(this->Get("not-a-deadline-id").status()));
}

TYPED_TEST_P(DeadlineStoreContractTest, NewDeadlineWrittenTwiceExists) {
  auto d = this->MakeDeadline(this->RequestId(1, 2), this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  EXPECT_EQ(this->Create(d), deadlines::CommitOutcome::kExists);
  EXPECT_EQ(this->Get(d.id())->version, 1);
}

TYPED_TEST_P(DeadlineStoreContractTest, ChangeOfAnotherVersionConflictsAndChangesNothing) {
  auto d = this->MakeDeadline(this->RequestId(1, 3), this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  auto stored = *this->Get(d.id());
  auto changed = d;
  changed.set_state(deadlines::v1::DEADLINE_STATE_MET);
  ASSERT_EQ(*this->Replace(stored, changed), deadlines::CommitOutcome::kOk);
  // The same change on the version it replaced.
  EXPECT_EQ(*this->Replace(stored, changed), deadlines::CommitOutcome::kConflict);
  EXPECT_EQ(this->Get(d.id())->version, 2);
}

// Issue 20: Deadline.etag is the stored version; every write changes it, every read (Get,
// the indexes) returns it, and a write made against a stale etag's version conflicts and
// changes nothing (the tracker then answers ABORTED, STALE_ETAG).
TYPED_TEST_P(DeadlineStoreContractTest, EtagChangesWithEveryWriteAndAStaleOneConflicts) {
  const std::string rq = this->RequestId(1, 14);
  auto d = this->MakeDeadline(rq, this->due_);
  d.set_etag("whatever the writer said");
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  auto v1 = *this->Get(d.id());
  EXPECT_EQ(v1.deadline.etag(), deadlines::DeadlineEtag(1));
  auto changed = v1.deadline;
  changed.set_state(deadlines::v1::DEADLINE_STATE_SUSPENDED);
  ASSERT_EQ(*this->Replace(v1, changed), deadlines::CommitOutcome::kOk);
  auto v2 = *this->Get(d.id());
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v2.deadline.etag(), deadlines::DeadlineEtag(2));
  EXPECT_NE(v2.deadline.etag(), v1.deadline.etag());
  auto listed = this->template Wait<std::vector<deadlines::StoredDeadline>>([&](auto done) {
    this->store_->ListIndex(1, "byreq:" + rq, absl::FromUnixSeconds(int64_t{1} << 40), 100,
                            std::move(done));
  });
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].deadline.etag(), deadlines::DeadlineEtag(2));
  // A change made on the deadline as read at the first etag.
  auto stale = v1.deadline;
  stale.set_state(deadlines::v1::DEADLINE_STATE_CANCELLED);
  EXPECT_EQ(*this->Replace(v1, stale), deadlines::CommitOutcome::kConflict);
  auto now = *this->Get(d.id());
  EXPECT_EQ(now.deadline.etag(), deadlines::DeadlineEtag(2));
  EXPECT_EQ(now.deadline.state(), deadlines::v1::DEADLINE_STATE_SUSPENDED);
}

TYPED_TEST_P(DeadlineStoreContractTest, ChangeNamingAnotherStoredAuthorityConflicts) {
  auto d = this->MakeDeadline(this->RequestId(1, 4), this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  auto stored = *this->Get(d.id());
  auto changed = d;
  changed.set_state(deadlines::v1::DEADLINE_STATE_MET);
  deadlines::DeadlineWrite w{changed, stored.version, std::nullopt, "FR-TJ-PARIS"};
  EXPECT_EQ(*this->Commit(1, {w}), deadlines::CommitOutcome::kConflict);
  EXPECT_EQ(this->Ids(1, "byauth:DE-BY-GSTA-MUENCHEN"), std::vector<std::string>{d.id()});
  EXPECT_EQ(this->Get(d.id())->version, 1);
}

TYPED_TEST_P(DeadlineStoreContractTest, ClosingMovesTheDeadlineOutOfOpenIndexesAndCounts) {
  const std::string rq = this->RequestId(1, 5);
  auto d = this->MakeDeadline(rq, this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  auto changed = d;
  changed.set_state(deadlines::v1::DEADLINE_STATE_MET);
  ASSERT_EQ(*this->Replace(*this->Get(d.id()), changed), deadlines::CommitOutcome::kOk);
  EXPECT_EQ(this->Ids(1, "byreq:" + rq), std::vector<std::string>{d.id()});
  EXPECT_TRUE(this->Ids(1, "open").empty());
  EXPECT_TRUE(this->Ids(1, "byauth:DE-BY-GSTA-MUENCHEN").empty());
  EXPECT_EQ(this->Stat(1, absl::StrCat("open:", common::v1::INSTRUMENT_EIO)), 0);
  // No timer is left to claim, however late.
  auto claimed = this->store_->Claim(1, this->due_ + absl::Hours(1000), absl::Seconds(10), 10);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  EXPECT_TRUE(claimed->empty());
}

TYPED_TEST_P(DeadlineStoreContractTest, ChangedAuthorityMovesTheDeadlineBetweenAuthorityIndexes) {
  auto d = this->MakeDeadline(this->RequestId(1, 6), this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  auto changed = d;
  changed.set_executing_authority_id("FR-TJ-PARIS");
  ASSERT_EQ(*this->Replace(*this->Get(d.id()), changed), deadlines::CommitOutcome::kOk);
  EXPECT_TRUE(this->Ids(1, "byauth:DE-BY-GSTA-MUENCHEN").empty());
  EXPECT_EQ(this->Ids(1, "byauth:FR-TJ-PARIS"), std::vector<std::string>{d.id()});
  EXPECT_EQ(this->Stat(1, absl::StrCat("open:", common::v1::INSTRUMENT_EIO)), 1);
}

TYPED_TEST_P(DeadlineStoreContractTest, RepeatUnderAnIdempotencyKeyIsReplayed) {
  auto d = this->MakeDeadline(this->RequestId(1, 7), this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  deadlines::CommitOptions options;
  options.idempotency_key = "k1";
  auto changed = d;
  changed.set_state(deadlines::v1::DEADLINE_STATE_SUSPENDED);
  auto stored = *this->Get(d.id());
  EXPECT_FALSE(this->Get(d.id(), "k1")->replayed);
  ASSERT_EQ(*this->Replace(stored, changed, options), deadlines::CommitOutcome::kOk);
  EXPECT_TRUE(this->Get(d.id(), "k1")->replayed);
  EXPECT_FALSE(this->Get(d.id(), "k2")->replayed);
  EXPECT_EQ(*this->Replace(*this->Get(d.id()), changed, options),
            deadlines::CommitOutcome::kReplayed);
}

TYPED_TEST_P(DeadlineStoreContractTest, ReceivedEventIsHandledOnceAndARefusalLetsItRetry) {
  const std::string rq = this->RequestId(1, 8);
  auto d = this->MakeDeadline(rq, this->due_);
  deadlines::CommitOptions options;
  common::Dedupe dedupe{common::EventKeys::Seen(1, "deadlines", "ev1"), "600000"};
  options.dedupe = &dedupe;
  options.parties_request_id = rq;
  options.parties.issuing_authority_id = "FR-TJ-PARIS";
  options.parties.requested_state = "DE";
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  // Refused (exists): the marker is undone, so the redelivery is handled.
  EXPECT_EQ(*this->Commit(1, {{d, 0, std::nullopt}}, options), deadlines::CommitOutcome::kExists);
  auto parties = this->template Wait<std::optional<common::RequestParties>>(
      [&](auto done) { this->store_->GetParties(rq, std::move(done)); });
  ASSERT_TRUE(parties.ok());
  EXPECT_FALSE(parties->has_value());
  EXPECT_EQ(*this->Commit(1, {}, options), deadlines::CommitOutcome::kOk);
  EXPECT_EQ(*this->Commit(1, {}, options), deadlines::CommitOutcome::kDuplicate);
  parties = this->template Wait<std::optional<common::RequestParties>>(
      [&](auto done) { this->store_->GetParties(rq, std::move(done)); });
  ASSERT_TRUE(parties.ok() && parties->has_value());
  EXPECT_EQ((*parties)->issuing_authority_id, "FR-TJ-PARIS");
  EXPECT_EQ((*parties)->requested_state, "DE");
  EXPECT_EQ((*parties)->executing_authority_id, "");
}

TYPED_TEST_P(DeadlineStoreContractTest, EventsCarryTheRequestsNextSequence) {
  const std::string rq = this->RequestId(3, 9);
  auto a = this->MakeDeadline(rq, this->due_);
  auto b = this->MakeDeadline(rq, this->due_ + absl::Hours(1));
  ASSERT_EQ(this->Create(a), deadlines::CommitOutcome::kOk);
  ASSERT_EQ(this->Create(b), deadlines::CommitOutcome::kOk);
  auto met = a;
  met.set_state(deadlines::v1::DEADLINE_STATE_MET);
  deadlines::DeadlineWrite w{met, 1, this->EventFor(met, common::v1::EVENT_TYPE_DEADLINE_MET),
                             deadlines::IndexedAuthority(a)};
  ASSERT_EQ(*this->Commit(3, {w}), deadlines::CommitOutcome::kOk);
  std::vector<int64_t> sequences;
  std::vector<common::v1::EventType> types;
  for (const auto& e : TypeParam::Outbox(*this->store_, 3)) {
    EXPECT_EQ(e.request_id(), rq);
    sequences.push_back(e.sequence());
    types.push_back(e.type());
  }
  EXPECT_EQ(sequences, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(types, (std::vector<common::v1::EventType>{common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                                       common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                                       common::v1::EVENT_TYPE_DEADLINE_MET}));
}

TYPED_TEST_P(DeadlineStoreContractTest, DueTimerIsClaimedOnceAndItsCommitReleasesIt) {
  auto d = this->MakeDeadline(this->RequestId(1, 10), this->due_);
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  const absl::Time reminder = this->due_ - absl::Hours(1);
  auto early = this->store_->Claim(1, reminder - absl::Milliseconds(1), absl::Seconds(10), 10);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_TRUE(early->empty());
  auto claimed = this->store_->Claim(1, reminder, absl::Seconds(10), 10);
  ASSERT_TRUE(claimed.ok()) << claimed.status();
  ASSERT_EQ(claimed->size(), 1u);
  const deadlines::ClaimedTimer t = (*claimed)[0];
  EXPECT_EQ(t.member, d.id() + "|r0");
  EXPECT_EQ(t.due, reminder);
  EXPECT_FALSE(t.takeover);
  ASSERT_TRUE(t.deadline.has_value());
  EXPECT_EQ(t.deadline->version, 1);
  // Claimed: nobody else gets it while the lease runs.
  EXPECT_TRUE(this->store_->Claim(1, reminder + absl::Seconds(5), absl::Seconds(10), 10)->empty());
  // A commit with another token is fenced.
  deadlines::CommitOptions wrong;
  wrong.claim_member = t.member;
  wrong.claim_token = t.token + "0";
  EXPECT_EQ(*this->Commit(1, {}, wrong), deadlines::CommitOutcome::kFenced);
  // Firing: the reminder is marked fired, the next timer (the due time) scheduled.
  auto fired = d;
  fired.mutable_reminders(0)->set_fired(true);
  deadlines::CommitOptions options;
  options.claim_member = t.member;
  options.claim_token = t.token;
  ASSERT_EQ(*this->Replace(*t.deadline, fired, options), deadlines::CommitOutcome::kOk);
  EXPECT_TRUE(this->store_->Claim(1, this->due_ - absl::Seconds(1), absl::Hours(1), 10)->empty());
  auto next = this->store_->Claim(1, this->due_, absl::Seconds(10), 10);
  ASSERT_EQ(next->size(), 1u);
  EXPECT_EQ((*next)[0].member, d.id() + "|d");
  EXPECT_EQ((*next)[0].deadline->version, 2);
}

TYPED_TEST_P(DeadlineStoreContractTest, ClaimWhoseLeaseRanOutIsTakenOverWithANewToken) {
  auto d = this->MakeDeadline(this->RequestId(1, 11), this->due_);
  d.clear_reminders();
  ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  auto first = this->store_->Claim(1, this->due_, absl::Seconds(10), 10);
  ASSERT_EQ(first->size(), 1u);
  auto again = this->store_->Claim(1, this->due_ + absl::Seconds(11), absl::Seconds(10), 10);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_TRUE((*again)[0].takeover);
  EXPECT_EQ((*again)[0].due, this->due_);
  EXPECT_NE((*again)[0].token, (*first)[0].token);
  // The first claimant is fenced; the second releases it.
  deadlines::CommitOptions old_claim;
  old_claim.claim_member = (*first)[0].member;
  old_claim.claim_token = (*first)[0].token;
  EXPECT_EQ(*this->Commit(1, {}, old_claim), deadlines::CommitOutcome::kFenced);
  deadlines::CommitOptions new_claim;
  new_claim.claim_member = (*again)[0].member;
  new_claim.claim_token = (*again)[0].token;
  EXPECT_EQ(*this->Commit(1, {}, new_claim), deadlines::CommitOutcome::kOk);
  EXPECT_TRUE(this->store_->Claim(1, this->due_ + absl::Hours(1), absl::Seconds(10), 10)->empty());
}

TYPED_TEST_P(DeadlineStoreContractTest, IndexPagesFollowScoreThenIdAfterTheCursor) {
  const std::string rq = this->RequestId(2, 12);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto d = this->MakeDeadline(rq, this->due_ + absl::Hours(i / 2));
    ids.push_back(d.id());
    ASSERT_EQ(this->Create(d), deadlines::CommitOutcome::kOk);
  }
  auto page = [&](int64_t max, int limit, std::optional<deadlines::IndexCursor> after) {
    return this->template Wait<deadlines::IndexPage>([&](auto done) {
      this->store_->ListIndexPage(2, "byreq:" + rq, max, limit, after, std::move(done));
    });
  };
  const int64_t all = absl::ToUnixMillis(this->due_ + absl::Hours(10));
  auto first = page(all, 2, std::nullopt);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->entries.size(), 2u);
  EXPECT_TRUE(first->more);
  EXPECT_EQ(first->entries[0].id, ids[0]);
  EXPECT_EQ(first->entries[1].id, ids[1]);
  EXPECT_EQ(first->entries[0].score, absl::ToUnixMillis(this->due_));
  ASSERT_TRUE(first->entries[0].deadline.has_value());
  EXPECT_EQ(first->entries[0].deadline->deadline.id(), ids[0]);
  auto rest = page(all, 10, deadlines::IndexCursor{first->entries[1].score, first->entries[1].id});
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->entries.size(), 3u);
  EXPECT_FALSE(rest->more);
  EXPECT_EQ(rest->entries[0].id, ids[2]);
  EXPECT_EQ(rest->entries[2].id, ids[4]);
  // The maximum score stops a page.
  auto early = page(absl::ToUnixMillis(this->due_), 10, std::nullopt);
  EXPECT_EQ(early->entries.size(), 2u);
  EXPECT_FALSE(early->more);
}

TYPED_TEST_P(DeadlineStoreContractTest, ErasedRequestLeavesNoDeadlineTimerIndexOrCount) {
  const std::string rq = this->RequestId(1, 13);
  auto a = this->MakeDeadline(rq, this->due_);
  auto b = this->MakeDeadline(rq, this->due_, "FR-TJ-PARIS");
  auto other = this->MakeDeadline(this->RequestId(1, 14), this->due_);
  ASSERT_EQ(this->Create(a), deadlines::CommitOutcome::kOk);
  ASSERT_EQ(this->Create(b), deadlines::CommitOutcome::kOk);
  ASSERT_EQ(this->Create(other), deadlines::CommitOutcome::kOk);
  deadlines::CommitOptions parties;
  parties.parties_request_id = rq;
  parties.parties.issuing_authority_id = "FR-TJ-PARIS";
  ASSERT_EQ(*this->Commit(1, {}, parties), deadlines::CommitOutcome::kOk);
  const common::Dedupe dedupe{common::EventKeys::Seen(1, "deadlines", "erased"), "600000"};
  auto erase = [&] {
    return this->template Wait<deadlines::CommitOutcome>(
        [&](auto done) { this->store_->EraseRequest(1, rq, dedupe, std::move(done)); });
  };
  EXPECT_EQ(*erase(), deadlines::CommitOutcome::kOk);
  EXPECT_EQ(*erase(), deadlines::CommitOutcome::kDuplicate);
  EXPECT_TRUE(absl::IsNotFound(this->Get(a.id()).status()));
  EXPECT_TRUE(absl::IsNotFound(this->Get(b.id()).status()));
  EXPECT_TRUE(this->Ids(1, "byreq:" + rq).empty());
  EXPECT_TRUE(this->Ids(1, "byauth:FR-TJ-PARIS").empty());
  EXPECT_EQ(this->Ids(1, "open"), std::vector<std::string>{other.id()});
  EXPECT_EQ(this->Stat(1, absl::StrCat("open:", common::v1::INSTRUMENT_EIO)), 1);
  auto got = this->template Wait<std::optional<common::RequestParties>>(
      [&](auto done) { this->store_->GetParties(rq, std::move(done)); });
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  auto claimed = this->store_->Claim(1, this->due_ + absl::Hours(1), absl::Seconds(10), 10);
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].member.substr(0, other.id().size()), other.id());
}

// The due-soon gauges: open deadlines of a shard due after `from` and at or before `to`.
TYPED_TEST_P(DeadlineStoreContractTest, OpenDeadlinesDueInAWindowAreCountedPerShard) {
  auto soon = this->MakeDeadline(this->RequestId(1, 7), this->due_);
  auto late = this->MakeDeadline(this->RequestId(1, 8), this->due_ + absl::Hours(48));
  auto other_shard = this->MakeDeadline(this->RequestId(2, 9), this->due_);
  ASSERT_EQ(this->Create(soon), deadlines::CommitOutcome::kOk);
  ASSERT_EQ(this->Create(late), deadlines::CommitOutcome::kOk);
  ASSERT_EQ(this->Create(other_shard), deadlines::CommitOutcome::kOk);
  const absl::Time from = this->due_ - absl::Hours(1);
  EXPECT_EQ(*this->store_->CountOpenDue(1, from, this->due_), 1);
  EXPECT_EQ(*this->store_->CountOpenDue(1, from, this->due_ - absl::Milliseconds(1)), 0);
  EXPECT_EQ(*this->store_->CountOpenDue(1, this->due_, this->due_ + absl::Hours(48)), 1);
  EXPECT_EQ(*this->store_->CountOpenDue(1, from, this->due_ + absl::Hours(48)), 2);
  EXPECT_EQ(
      *this->store_->CountOpenDue(1, this->due_ + absl::Hours(48), this->due_ + absl::Hours(96)),
      0);
  EXPECT_EQ(*this->store_->CountOpenDue(2, from, this->due_), 1);
}

REGISTER_TYPED_TEST_SUITE_P(
    DeadlineStoreContractTest, CreatedDeadlineIsReadBackAtVersionOneAndIndexed,
    OpenDeadlinesDueInAWindowAreCountedPerShard, MissingDeadlineIsNotFound,
    NewDeadlineWrittenTwiceExists, ChangeOfAnotherVersionConflictsAndChangesNothing,
    ChangeNamingAnotherStoredAuthorityConflicts, ClosingMovesTheDeadlineOutOfOpenIndexesAndCounts,
    ChangedAuthorityMovesTheDeadlineBetweenAuthorityIndexes, RepeatUnderAnIdempotencyKeyIsReplayed,
    ReceivedEventIsHandledOnceAndARefusalLetsItRetry, EventsCarryTheRequestsNextSequence,
    DueTimerIsClaimedOnceAndItsCommitReleasesIt, ClaimWhoseLeaseRanOutIsTakenOverWithANewToken,
    IndexPagesFollowScoreThenIdAfterTheCursor, ErasedRequestLeavesNoDeadlineTimerIndexOrCount,
    EtagChangesWithEveryWriteAndAStaleOneConflicts);

}  // namespace rogatory::testing
