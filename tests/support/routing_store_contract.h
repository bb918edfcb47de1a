#pragma once

// The contract every routing::RoutingStore keeps, as a typed test suite: the in-memory fake
// runs it as a unit test (tests/routing/in_memory_routing_store_test.cc), the Redis store
// against a real redis-server (tests/routing/redis_routing_store_contract_test.cc). Only
// what the interface shows is asserted; the Redis outbox has its own tests.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "routing_store.h"

namespace rogatory::testing {

// Each factory provides: static std::unique_ptr<routing::RoutingStore> Make(); (an empty
// store) and static int Shards();
template <typename Factory>
class RoutingStoreContractTest : public ::testing::Test {
 protected:
  using Outcome = routing::Outcome;
  using Event = common::v1::Event;
  static constexpr int kMaxAttempts = 3;

  void SetUp() override { store_ = Factory::Make(); }

  std::string NewRequestId(int shard) {
    return common::Sharding::MakeId("rq", shard % Factory::Shards(),
                                    start_ + absl::Milliseconds(++counter_));
  }

  Event Trigger(const std::string& rid, common::v1::EventType type) {
    Event e;
    e.set_event_id(common::NewUlid(start_ + absl::Milliseconds(++counter_)));
    e.set_request_id(rid);
    e.set_type(type);
    e.set_trace_id("0af7651916cd43dd8448eb211c80319c");
    e.set_instrument(common::v1::INSTRUMENT_EIO);
    e.set_source("intake");
    e.mutable_request()->mutable_issuing_authority()->set_authority_id("ES-FISCALIA");
    e.mutable_request()->mutable_issuing_authority()->set_state("ES");
    e.mutable_request()->set_requested_state("BE");
    e.mutable_request()->set_source_language("es");
    e.mutable_request()->set_urgency(urgency_);
    return e;
  }

  common::Dedupe DedupeFor(const Event& e) {
    auto shard = *sharding_.ShardOf("rq", e.request_id());
    return {common::EventKeys::Seen(shard, "routing", e.event_id()), "600000"};
  }

  routing::v1::RoutingDecision Translate(const std::string& rid, const std::string& target) {
    routing::v1::RoutingDecision d;
    d.set_request_id(rid);
    d.set_translation_required(target != "");
    d.set_target_language(target);
    d.mutable_competent_authority()->set_authority_id("BE-PROSECUTOR");
    d.set_channel(common::v1::CHANNEL_DIRECT_JUDICIAL);
    d.set_registry_version("test@1");
    return d;
  }

  absl::StatusOr<Outcome> Decide(const std::string& rid, const std::string& target,
                                 Event* out = nullptr) {
    Event e = Trigger(rid, common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
    if (out) *out = e;
    return Await<Outcome>([&](auto cb) {
      store_->RecordDecision(e, Translate(rid, target),
                             common::v1::REQUEST_STATUS_TRANSLATION_PENDING, DedupeFor(e), start_,
                             std::move(cb));
    });
  }

  absl::StatusOr<Outcome> AddDocument(const std::string& rid, const std::string& doc,
                                      const std::string& lang, Event* out = nullptr) {
    Event e = Trigger(rid, common::v1::EVENT_TYPE_DOCUMENT_ADDED);
    e.mutable_document()->set_document_id(doc);
    e.mutable_document()->set_language(lang);
    e.mutable_document()->set_sha256(std::string(64, 'a'));
    if (out) *out = e;
    return Await<Outcome>(
        [&](auto cb) { store_->AddDocument(e, DedupeFor(e), start_, std::move(cb)); });
  }

  absl::StatusOr<Outcome> Deadline(const std::string& rid, int days) {
    Event e = Trigger(rid, common::v1::EVENT_TYPE_DEADLINE_STARTED);
    e.mutable_deadline()->set_deadline_id("dl-1");
    const absl::Time due = start_ + absl::Hours(24 * days);
    *e.mutable_deadline()->mutable_due_time() =
        google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(due));
    return Await<Outcome>(
        [&](auto cb) { store_->UpdateDeadline(e, due, DedupeFor(e), std::move(cb)); });
  }

  absl::StatusOr<Outcome> End(const std::string& rid, common::v1::EventType type) {
    Event e = Trigger(rid, type);
    return Await<Outcome>(
        [&](auto cb) { store_->EndRequest(e, DedupeFor(e), start_, std::move(cb)); });
  }

  absl::StatusOr<routing::v1::TranslationJob> Claim(const std::string& who, absl::Time now,
                                                    const std::string& request_id = "") {
    routing::ClaimSpec spec{who, {{"es", "nl"}}, absl::Minutes(30), request_id};
    return Await<routing::v1::TranslationJob>(
        [&](auto cb) { store_->Claim(spec, now, std::move(cb)); });
  }

  absl::StatusOr<routing::CompleteResult> Complete(const routing::v1::TranslationJob& j,
                                                   const std::string& who, absl::Time now,
                                                   const std::string& doc = "doc-nl") {
    return Await<routing::CompleteResult>([&](auto cb) {
      store_->Complete(j.id(), j.lease_token(), who, doc, std::string(64, 'b'), now, std::move(cb));
    });
  }

  absl::StatusOr<routing::FailResult> Fail(const routing::v1::TranslationJob& j,
                                           const std::string& who, bool retryable, absl::Time now) {
    return Await<routing::FailResult>([&](auto cb) {
      store_->Fail(j.id(), j.lease_token(), who, "UNREADABLE", retryable, kMaxAttempts, now,
                   std::move(cb));
    });
  }

  absl::StatusOr<routing::v1::TranslationJob> GetJob(const std::string& id) {
    return Await<routing::v1::TranslationJob>([&](auto cb) { store_->GetJob(id, std::move(cb)); });
  }

  std::vector<routing::v1::TranslationJob> Jobs(const std::string& rid) {
    auto jobs = Await<std::vector<routing::v1::TranslationJob>>(
        [&](auto cb) { store_->ListJobsOfRequest(rid, std::move(cb)); });
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    return jobs.ok() ? *jobs : std::vector<routing::v1::TranslationJob>();
  }

  absl::StatusOr<routing::QueueListPage> List(const routing::QueueListSpec& spec) {
    return Await<routing::QueueListPage>([&](auto cb) { store_->ListQueue(spec, std::move(cb)); });
  }

  // A request in `shard` with one queued es>nl job. Returns the request id.
  std::string QueueJob(int shard) {
    const std::string rid = NewRequestId(shard);
    EXPECT_TRUE(Decide(rid, "nl").ok());
    EXPECT_TRUE(AddDocument(rid, "doc-1", "es").ok());
    return rid;
  }

  const absl::Time start_ = absl::FromUnixSeconds(1767225600);
  common::Sharding sharding_{Factory::Shards()};
  std::unique_ptr<routing::RoutingStore> store_;
  common::v1::Urgency urgency_ = common::v1::URGENCY_NORMAL;
  int counter_ = 0;
};

TYPED_TEST_SUITE_P(RoutingStoreContractTest);

TYPED_TEST_P(RoutingStoreContractTest, DocumentAfterDecisionQueuesOneJobAndRepeatsAreDuplicates) {
  const std::string rid = this->NewRequestId(1);
  ASSERT_TRUE(this->Decide(rid, "nl").ok());
  common::v1::Event first;
  auto r = this->AddDocument(rid, "doc-1", "es", &first);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, routing::Outcome::kHandled);
  auto again = Await<routing::Outcome>([&](auto cb) {
    this->store_->AddDocument(first, this->DedupeFor(first), this->start_, std::move(cb));
  });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, routing::Outcome::kDuplicate);
  ASSERT_TRUE(this->AddDocument(rid, "doc-1", "es").ok());  // another event, same document
  const auto jobs = this->Jobs(rid);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].request_id(), rid);
  EXPECT_EQ(jobs[0].document_id(), "doc-1");
  EXPECT_EQ(jobs[0].source_language(), "es");
  EXPECT_EQ(jobs[0].target_language(), "nl");
  EXPECT_EQ(jobs[0].status(), routing::v1::TRANSLATION_JOB_STATUS_QUEUED);
  auto got = this->GetJob(jobs[0].id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id(), jobs[0].id());
}

TYPED_TEST_P(RoutingStoreContractTest, DocumentsBeforeTheDecisionAreQueuedWhenItArrives) {
  const std::string rid = this->NewRequestId(2);
  ASSERT_TRUE(this->AddDocument(rid, "doc-es", "ES").ok());  // language tags ignore case
  ASSERT_TRUE(this->AddDocument(rid, "doc-fr", "fr").ok());
  EXPECT_TRUE(this->Jobs(rid).empty());
  ASSERT_TRUE(this->Decide(rid, "nl").ok());
  const auto jobs = this->Jobs(rid);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].document_id(), "doc-es");
  auto decision = Await<routing::v1::RoutingDecision>(
      [&](auto cb) { this->store_->GetDecision(rid, std::move(cb)); });
  ASSERT_TRUE(decision.ok());
  EXPECT_EQ(decision->target_language(), "nl");
  EXPECT_EQ(Await<routing::v1::RoutingDecision>(
                [&](auto cb) { this->store_->GetDecision(this->NewRequestId(2), std::move(cb)); })
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TYPED_TEST_P(RoutingStoreContractTest, ClaimsTakeUrgentFirstThenTheEarliestDeadline) {
  const std::string late = this->QueueJob(2), soon = this->QueueJob(7);
  this->urgency_ = common::v1::URGENCY_URGENT;
  const std::string urgent = this->QueueJob(9);
  ASSERT_TRUE(this->Deadline(late, 30).ok());
  ASSERT_TRUE(this->Deadline(soon, 5).ok());
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    auto j = this->Claim("XL-1", this->start_);
    ASSERT_TRUE(j.ok()) << j.status();
    EXPECT_EQ(j->status(), routing::v1::TRANSLATION_JOB_STATUS_CLAIMED);
    EXPECT_EQ(j->claimed_by(), "XL-1");
    EXPECT_EQ(j->attempts(), 1);
    order.push_back(j->request_id());
  }
  EXPECT_EQ(order, (std::vector<std::string>{urgent, soon, late}));
  EXPECT_EQ(this->Claim("XL-1", this->start_).status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST_P(RoutingStoreContractTest, OnlyTheHolderActsAndACompletionReplaysForTheSameDocument) {
  const std::string rid = this->QueueJob(3);
  auto j = this->Claim("XL-1", this->start_);
  ASSERT_TRUE(j.ok()) << j.status();
  // Another translator learns nothing, whatever the token.
  EXPECT_EQ(this->Complete(*j, "XL-2", this->start_).status().code(), absl::StatusCode::kNotFound);
  auto beat = Await<routing::v1::TranslationJob>([&](auto cb) {
    this->store_->Heartbeat(j->id(), j->lease_token() + 1, "XL-1", absl::ZeroDuration(),
                            this->start_, std::move(cb));
  });
  EXPECT_EQ(beat.status().code(), absl::StatusCode::kFailedPrecondition);
  beat = Await<routing::v1::TranslationJob>([&](auto cb) {
    this->store_->Heartbeat(j->id(), j->lease_token(), "XL-1", absl::Hours(1),
                            this->start_ + absl::Minutes(10), std::move(cb));
  });
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_GT(beat->lease_expire_time().seconds(), j->lease_expire_time().seconds());
  auto done = this->Complete(*j, "XL-1", this->start_ + absl::Minutes(20));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_FALSE(done->replayed);
  EXPECT_TRUE(done->request_done);
  EXPECT_EQ(done->turnaround, absl::Minutes(20));
  EXPECT_EQ(done->job.status(), routing::v1::TRANSLATION_JOB_STATUS_COMPLETED);
  EXPECT_EQ(done->job.translated_document_id(), "doc-nl");
  auto replay = this->Complete(*j, "XL-1", this->start_ + absl::Minutes(21));
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(this->Complete(*j, "XL-1", this->start_, "other-doc").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(this->Jobs(rid)[0].status(), routing::v1::TRANSLATION_JOB_STATUS_COMPLETED);
}

TYPED_TEST_P(RoutingStoreContractTest, RequestIsDoneOnlyWhenItsLastJobCompletes) {
  const std::string rid = this->NewRequestId(4);
  ASSERT_TRUE(this->Decide(rid, "nl").ok());
  ASSERT_TRUE(this->AddDocument(rid, "doc-1", "es").ok());
  ASSERT_TRUE(this->AddDocument(rid, "doc-2", "es").ok());
  auto a = this->Claim("XL-1", this->start_);
  auto b = this->Claim("XL-1", this->start_);
  ASSERT_TRUE(a.ok() && b.ok());
  auto first = this->Complete(*a, "XL-1", this->start_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->request_done);
  auto second = this->Complete(*b, "XL-1", this->start_);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->request_done);
}

TYPED_TEST_P(RoutingStoreContractTest,
             RetryableFailuresRequeueUntilTheAttemptsRunOutThenDeadLetter) {
  this->QueueJob(5);
  for (int attempt = 1; attempt <= TestFixture::kMaxAttempts; ++attempt) {
    auto j = this->Claim("XL-1", this->start_);
    ASSERT_TRUE(j.ok()) << j.status();
    EXPECT_EQ(j->attempts(), attempt);
    auto failed = this->Fail(*j, "XL-1", /*retryable=*/true, this->start_);
    ASSERT_TRUE(failed.ok()) << failed.status();
    EXPECT_EQ(failed->dead_lettered, attempt == TestFixture::kMaxAttempts);
    EXPECT_EQ(failed->job.failure_code(), "UNREADABLE");
    auto replay = this->Fail(*j, "XL-1", true, this->start_);
    ASSERT_TRUE(replay.ok()) << replay.status();
    EXPECT_TRUE(replay->replayed);
  }
  EXPECT_EQ(this->Claim("XL-1", this->start_).status().code(), absl::StatusCode::kNotFound);
  auto stats = Await<routing::ShardStats>(
      [&](auto cb) { this->store_->Stats(5 % TypeParam::Shards(), std::move(cb)); });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->dead_letters, 1);
}

TYPED_TEST_P(RoutingStoreContractTest, ExpiredLeaseIsRefusedAndTheSweeperQueuesTheJobAgain) {
  const int shard = 6 % TypeParam::Shards();
  this->QueueJob(shard);
  auto j = this->Claim("XL-1", this->start_);
  ASSERT_TRUE(j.ok()) << j.status();
  const absl::Time later = this->start_ + absl::Hours(1);
  EXPECT_EQ(this->Complete(*j, "XL-1", later).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto swept = Await<routing::SweepResult>([&](auto cb) {
    this->store_->SweepExpiredLeases(shard, TestFixture::kMaxAttempts, 100, later, std::move(cb));
  });
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(swept->expired, 1);
  EXPECT_EQ(swept->dead_lettered, 0);
  auto again = this->Claim("XL-2", later);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id(), j->id());
  EXPECT_EQ(again->attempts(), 2);
  EXPECT_EQ(again->failure_code(), "LEASE_EXPIRED");
  // The first translator's late completion is refused; the second's stands.
  EXPECT_FALSE(this->Complete(*j, "XL-1", later).ok());
  EXPECT_TRUE(this->Complete(*again, "XL-2", later).ok());
}

TYPED_TEST_P(RoutingStoreContractTest, EndedRequestCancelsQueuedAndClaimedJobs) {
  const std::string rid = this->NewRequestId(8);
  ASSERT_TRUE(this->Decide(rid, "nl").ok());
  ASSERT_TRUE(this->AddDocument(rid, "doc-1", "es").ok());
  ASSERT_TRUE(this->AddDocument(rid, "doc-2", "es").ok());
  auto held = this->Claim("XL-1", this->start_);
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(this->End(rid, common::v1::EVENT_TYPE_REQUEST_WITHDRAWN).ok());
  for (const auto& j : this->Jobs(rid)) {
    EXPECT_EQ(j.status(), routing::v1::TRANSLATION_JOB_STATUS_CANCELLED);
  }
  EXPECT_EQ(this->Complete(*held, "XL-1", this->start_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(this->Claim("XL-1", this->start_).status().code(), absl::StatusCode::kNotFound);
  // A document after the end queues nothing.
  ASSERT_TRUE(this->AddDocument(rid, "doc-3", "es").ok());
  EXPECT_EQ(this->Jobs(rid).size(), 2u);
}

TYPED_TEST_P(RoutingStoreContractTest, NewDecisionIntoAnotherLanguageCancelsQueuedJobs) {
  const std::string rid = this->QueueJob(10);
  ASSERT_TRUE(this->Decide(rid, "fr").ok());
  const auto jobs = this->Jobs(rid);
  ASSERT_EQ(jobs.size(), 2u);
  int cancelled = 0, queued_fr = 0;
  for (const auto& j : jobs) {
    if (j.status() == routing::v1::TRANSLATION_JOB_STATUS_CANCELLED) ++cancelled;
    if (j.status() == routing::v1::TRANSLATION_JOB_STATUS_QUEUED && j.target_language() == "fr") {
      ++queued_fr;
    }
  }
  EXPECT_EQ(cancelled, 1);
  EXPECT_EQ(queued_fr, 1);
  EXPECT_EQ(this->Claim("XL-1", this->start_).status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST_P(RoutingStoreContractTest, RepeatedClaimWithTheSameRequestIdReturnsTheFirstJob) {
  this->QueueJob(11);
  this->QueueJob(12);
  auto first = this->Claim("XL-1", this->start_, "claim-1");
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = this->Claim("XL-1", this->start_, "claim-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id(), first->id());
  auto other = this->Claim("XL-1", this->start_, "claim-2");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->id(), first->id());
}

TYPED_TEST_P(RoutingStoreContractTest, PartiesAreRecordedAndErasureForgetsEverything) {
  const std::string rid = this->QueueJob(13);
  auto parties = Await<std::optional<common::RequestParties>>(
      [&](auto cb) { this->store_->GetParties(rid, std::move(cb)); });
  ASSERT_TRUE(parties.ok());
  ASSERT_TRUE(parties->has_value());
  EXPECT_EQ((*parties)->issuing_authority_id, "ES-FISCALIA");
  EXPECT_EQ((*parties)->requested_state, "BE");
  // Until intake names one, the decision's competent authority stands as executing.
  EXPECT_EQ((*parties)->executing_authority_id, "BE-PROSECUTOR");
  const std::string job = this->Jobs(rid)[0].id();
  common::v1::Event erased = this->Trigger(rid, common::v1::EVENT_TYPE_REQUEST_ERASED);
  ASSERT_TRUE(Await<routing::Outcome>([&](auto cb) {
                this->store_->EraseRequest(erased, this->DedupeFor(erased), this->start_,
                                           std::move(cb));
              }).ok());
  EXPECT_TRUE(this->Jobs(rid).empty());
  EXPECT_EQ(this->GetJob(job).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->Claim("XL-1", this->start_).status().code(), absl::StatusCode::kNotFound);
  parties = Await<std::optional<common::RequestParties>>(
      [&](auto cb) { this->store_->GetParties(rid, std::move(cb)); });
  ASSERT_TRUE(parties.ok());
  EXPECT_FALSE(parties->has_value());
  EXPECT_EQ(Await<routing::v1::RoutingDecision>(
                [&](auto cb) { this->store_->GetDecision(rid, std::move(cb)); })
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TYPED_TEST_P(RoutingStoreContractTest, QueueListingsPageInClaimOrderAndHeldListsOnlyTheHolders) {
  std::vector<std::string> rids;
  for (int i = 0; i < 7; ++i) rids.push_back(this->QueueJob(i));
  routing::QueueListSpec spec;
  spec.page_size = 3;
  std::vector<std::string> seen;
  for (int guard = 0; guard < 10; ++guard) {
    auto page = this->List(spec);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& j : page->jobs) seen.push_back(j.request_id());
    if (!page->next) break;
    spec.after = page->next;
  }
  std::vector<std::string> sorted = rids;
  EXPECT_EQ(seen.size(), 7u);
  std::sort(seen.begin(), seen.end());
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(seen, sorted);
  auto held = this->Claim("XL-1", this->start_);
  ASSERT_TRUE(held.ok());
  routing::QueueListSpec mine;
  mine.held = true;
  mine.holder = "XL-1";
  auto page = this->List(mine);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].id(), held->id());
  mine.holder = "XL-2";
  page = this->List(mine);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->jobs.empty());
  mine.holder = "XL-1";
  mine.targets = {"fr"};
  page = this->List(mine);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->jobs.empty());
  routing::QueueListSpec claimable;
  claimable.page_size = 50;
  claimable.sources = {"ES"};
  page = this->List(claimable);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 6u);
  routing::QueueListSpec empty;
  empty.page_size = 0;
  EXPECT_EQ(this->List(empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TYPED_TEST_P(RoutingStoreContractTest, StatsCountQueuedJobsPerPairAndUnroutableRequests) {
  const int shard = 14 % TypeParam::Shards();
  this->QueueJob(shard);
  this->QueueJob(shard);
  const std::string lost = this->NewRequestId(shard);
  common::v1::Event e = this->Trigger(lost, common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
  routing::v1::RoutingDecision d = this->Translate(lost, "");
  d.set_unroutable(true);
  d.add_reasons()->set_code("NO_AUTHORITY");
  ASSERT_TRUE(Await<routing::Outcome>([&](auto cb) {
                this->store_->RecordDecision(e, d, common::v1::REQUEST_STATUS_UNSPECIFIED,
                                             this->DedupeFor(e), this->start_, std::move(cb));
              }).ok());
  auto stats =
      Await<routing::ShardStats>([&](auto cb) { this->store_->Stats(shard, std::move(cb)); });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->unroutable, 1);
  ASSERT_EQ(stats->pairs.size(), 1u);
  EXPECT_EQ(stats->pairs[0].source, "es");
  EXPECT_EQ(stats->pairs[0].target, "nl");
  EXPECT_EQ(stats->pairs[0].depth, 2);
  ASSERT_TRUE(stats->pairs[0].oldest.has_value());
  EXPECT_EQ(*stats->pairs[0].oldest, this->start_);
}

REGISTER_TYPED_TEST_SUITE_P(RoutingStoreContractTest,
                            DocumentAfterDecisionQueuesOneJobAndRepeatsAreDuplicates,
                            DocumentsBeforeTheDecisionAreQueuedWhenItArrives,
                            ClaimsTakeUrgentFirstThenTheEarliestDeadline,
                            OnlyTheHolderActsAndACompletionReplaysForTheSameDocument,
                            RequestIsDoneOnlyWhenItsLastJobCompletes,
                            RetryableFailuresRequeueUntilTheAttemptsRunOutThenDeadLetter,
                            ExpiredLeaseIsRefusedAndTheSweeperQueuesTheJobAgain,
                            EndedRequestCancelsQueuedAndClaimedJobs,
                            NewDecisionIntoAnotherLanguageCancelsQueuedJobs,
                            RepeatedClaimWithTheSameRequestIdReturnsTheFirstJob,
                            PartiesAreRecordedAndErasureForgetsEverything,
                            QueueListingsPageInClaimOrderAndHeldListsOnlyTheHolders,
                            StatsCountQueuedJobsPerPairAndUnroutableRequests);

}  // namespace rogatory::testing
