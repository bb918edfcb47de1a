#pragma once

// The contract every RequestStore keeps, as a typed test suite: the in-memory fake runs it
// as a unit test, the Redis store against a real redis-server.

#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "intake_event_handler.h"
#include "intake_fixtures.h"
#include "request_store.h"
#include "retention.h"
#include "rogatory/common/ids.h"

namespace rogatory::testing {

// Each fixture type provides: static std::unique_ptr<intake::RequestStore> Make(); and
// static int Shards();
template <typename Factory>
class RequestStoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = Factory::Make(); }

  intake::NewRequest MakeNew(int64_t create_ms, int shard = -1,
                             common::v1::Instrument instrument = common::v1::INSTRUMENT_EIO) {
    intake::NewRequest n;
    const absl::Time t = absl::FromUnixMillis(create_ms);
    if (shard < 0) shard = static_cast<int>(counter_++ % Factory::Shards());
    n.request.set_id(common::Sharding::MakeId("rq", shard, t));
    *n.request.mutable_content() = CompleteEio();
    n.request.mutable_content()->set_instrument(instrument);
    n.request.set_status(common::v1::REQUEST_STATUS_RECEIVED);
    *n.request.mutable_create_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(create_ms);
    n.request.set_etag("1");
    n.submitted.set_event_id(common::NewUlid(t));
    n.submitted.set_request_id(n.request.id());
    n.submitted.set_sequence(1);
    return n;
  }

  absl::StatusOr<intake::CreateOutcome> Create(intake::NewRequest n) {
    return Await<intake::CreateOutcome>(
        [&](auto done) { store_->Create(std::move(n), std::move(done)); });
  }
  absl::StatusOr<intake::v1::Request> Get(const std::string& id) {
    return Await<intake::v1::Request>([&](auto done) { store_->Get(id, std::move(done)); });
  }
  absl::StatusOr<intake::ListPage> List(const intake::ListQuery& q) {
    return Await<intake::ListPage>([&](auto done) { store_->List(q, std::move(done)); });
  }
  // Every page of a query, following next cursors.
  std::vector<intake::v1::Request> ListAll(intake::ListQuery q) {
    std::vector<intake::v1::Request> all;
    for (int guard = 0; guard < 1000; ++guard) {
      auto page = List(q);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (auto& r : page->requests) all.push_back(r);
      if (!page->next.has_value()) break;
      q.after = page->next;
    }
    return all;
  }

  // A deadline event about `id` from deadline-tracking, recorded through intake's handler.
  absl::StatusOr<common::EventHandler::Outcome> Deadline(const std::string& id,
                                                         common::v1::EventType type,
                                                         const std::string& deadline_id,
                                                         int64_t due_ms, int64_t at_ms,
                                                         const std::string& event_id = "") {
    common::v1::Event e;
    e.set_event_id(event_id.empty() ? common::NewUlid(absl::FromUnixMillis(at_ms)) : event_id);
    e.set_request_id(id);
    e.set_source("deadlines");
    e.set_type(type);
    *e.mutable_occur_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(at_ms);
    e.mutable_deadline()->set_deadline_id(deadline_id);
    e.mutable_deadline()->set_rule_id("EIO_RECOGNITION");
    if (due_ms > 0) {
      *e.mutable_deadline()->mutable_due_time() =
          google::protobuf::util::TimeUtil::MillisecondsToTimestamp(due_ms);
    }
    auto shard = common::Sharding(Factory::Shards()).ShardOf("rq", id);
    const common::Dedupe dedupe{
        common::EventKeys::Seen(shard.ok() ? *shard : 0, "intake", e.event_id()), "600000"};
    intake::IntakeEventHandler handler(*store_);
    return Await<common::EventHandler::Outcome>(
        [&](auto done) { handler.Handle(e, dedupe, std::move(done)); });
  }
  static int64_t DueOf(const intake::v1::Request& r) {
    return google::protobuf::util::TimeUtil::TimestampToMilliseconds(r.next_deadline().due_time());
  }
  static intake::ListQuery Worklist(const std::string& authority) {
    intake::ListQuery q;
    q.scope = common::ListScope{false, authority, ""};
    return q;
  }

  std::unique_ptr<intake::RequestStore> store_;
  uint64_t counter_ = 0;
};

TYPED_TEST_SUITE_P(RequestStoreContractTest);

TYPED_TEST_P(RequestStoreContractTest, CreatedRequestCanBeReadBack) {
  auto n = this->MakeNew(1767225600000);
  const std::string id = n.request.id();
  auto created = this->Create(n);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->replayed);
  auto got = this->Get(id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->content().subjects(0).family_name(), "Testperson");
  EXPECT_EQ(got->status(), common::v1::REQUEST_STATUS_RECEIVED);
}

TYPED_TEST_P(RequestStoreContractTest, UnknownIdIsNotFound) {
  auto got = this->Get(common::Sharding::MakeId("rq", 0, absl::FromUnixSeconds(1)));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST_P(RequestStoreContractTest, SameKeySamePayloadReturnsFirstRequest) {
  auto first = this->MakeNew(1767225600000, 1);
  first.idempotency = intake::Idempotency{"FR-TJ-PARIS-JI", "key-1", "fp-a"};
  auto second = this->MakeNew(1767225601000, 1);
  second.idempotency = first.idempotency;
  auto a = this->Create(first);
  auto b = this->Create(second);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(b->replayed);
  EXPECT_EQ(b->request.id(), a->request.id());
  EXPECT_EQ(this->Get(second.request.id()).status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST_P(RequestStoreContractTest, SameKeyDifferentPayloadIsAlreadyExists) {
  auto first = this->MakeNew(1767225600000, 2);
  first.idempotency = intake::Idempotency{"FR-TJ-PARIS-JI", "key-2", "fp-a"};
  auto second = this->MakeNew(1767225601000, 2);
  second.idempotency = intake::Idempotency{"FR-TJ-PARIS-JI", "key-2", "fp-b"};
  ASSERT_TRUE(this->Create(first).ok());
  EXPECT_EQ(this->Create(second).status().code(), absl::StatusCode::kAlreadyExists);
}

TYPED_TEST_P(RequestStoreContractTest, KeysAreScopedToTheCaller) {
  auto first = this->MakeNew(1767225600000, 3);
  first.idempotency = intake::Idempotency{"FR-TJ-PARIS-JI", "key-3", "fp-a"};
  auto second = this->MakeNew(1767225601000, 3);
  second.idempotency = intake::Idempotency{"BE-PROC-BRUXELLES", "key-3", "fp-b"};
  ASSERT_TRUE(this->Create(first).ok());
  auto b = this->Create(second);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->replayed);
}

TYPED_TEST_P(RequestStoreContractTest, ConcurrentDuplicatesCreateExactlyOneRequest) {
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<intake::CreateOutcome>> results(16);
  std::vector<intake::NewRequest> inputs;
  for (int i = 0; i < 16; ++i) {
    auto n = this->MakeNew(1767225600000 + i, 4);
    n.idempotency = intake::Idempotency{"FR-TJ-PARIS-JI", "key-4", "fp-same"};
    inputs.push_back(std::move(n));
  }
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] { results[i] = this->Create(inputs[i]); });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  int created = 0;
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    ids.insert(r->request.id());
    created += r->replayed ? 0 : 1;
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(created, 1);
}

TYPED_TEST_P(RequestStoreContractTest, ListWalksEveryRequestNewestFirstAcrossPages) {
  std::set<std::string> expected;
  for (int i = 0; i < 45; ++i) {
    // Several requests share a millisecond, to exercise the id tie-break.
    auto n = this->MakeNew(1767225600000 + (i / 3) * 1000);
    expected.insert(n.request.id());
    ASSERT_TRUE(this->Create(std::move(n)).ok());
  }
  intake::ListQuery q;
  q.page_size = 7;
  auto all = this->ListAll(q);
  std::set<std::string> seen;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_TRUE(seen.insert(all[i].id()).second) << "duplicate " << all[i].id();
    if (i > 0) {
      EXPECT_TRUE(intake::ComesBefore(intake::CursorOf(all[i - 1]), intake::CursorOf(all[i])));
    }
  }
  EXPECT_EQ(seen, expected);
}

// A page is gathered from every shard; when the newest requests all sit in one shard, the
// page must still come back full and in order (the Redis store asks each shard for a share
// of the page first, then tops up from the shards that may hold more).
TYPED_TEST_P(RequestStoreContractTest, FullPageWhenTheNewestRequestsShareOneShard) {
  std::vector<std::string> newest_first;
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(this->Create(this->MakeNew(1767225600000 + i)).ok());
  for (int i = 0; i < 60; ++i) {
    auto n = this->MakeNew(1767225700000 + i, /*shard=*/3);
    newest_first.insert(newest_first.begin(), n.request.id());
    ASSERT_TRUE(this->Create(std::move(n)).ok());
  }
  intake::ListQuery q;
  q.page_size = 50;
  auto page = this->List(q);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->requests.size(), 50u);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(page->requests[i].id(), newest_first[i]) << i;
  ASSERT_TRUE(page->next.has_value());
  q.after = page->next;
  auto rest = this->ListAll(q);
  ASSERT_EQ(rest.size(), 30u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(rest[i].id(), newest_first[50 + i]) << i;
}

TYPED_TEST_P(RequestStoreContractTest, ListFiltersByInstrumentAndState) {
  auto eaw = this->MakeNew(1767225600000, -1, common::v1::INSTRUMENT_EAW);
  eaw.request.mutable_content()->set_requested_state("BE");
  const std::string eaw_id = eaw.request.id();
  ASSERT_TRUE(this->Create(std::move(eaw)).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(this->Create(this->MakeNew(1767225601000 + i)).ok());

  intake::ListQuery by_instrument;
  by_instrument.instrument = common::v1::INSTRUMENT_EAW;
  auto a = this->ListAll(by_instrument);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].id(), eaw_id);

  intake::ListQuery by_state;
  by_state.requested_state = "BE";
  auto b = this->ListAll(by_state);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].id(), eaw_id);

  intake::ListQuery by_status;
  by_status.status = common::v1::REQUEST_STATUS_RECEIVED;
  by_status.issuing_state = "FR";
  EXPECT_EQ(this->ListAll(by_status).size(), 6u);
}

TYPED_TEST_P(RequestStoreContractTest, ListFiltersByUrgencyAndCreationTimeRange) {
  std::set<std::string> urgent_in_range;
  for (int i = 0; i < 12; ++i) {
    auto n = this->MakeNew(1767225600000 + i * 1000);
    if (i % 3 == 0) n.request.mutable_content()->set_urgency(common::v1::URGENCY_URGENT);
    if (i % 3 == 0 && i >= 3 && i < 9) urgent_in_range.insert(n.request.id());
    ASSERT_TRUE(this->Create(std::move(n)).ok());
  }
  intake::ListQuery q;
  q.page_size = 2;
  q.urgency = common::v1::URGENCY_URGENT;
  q.created_from_ms = 1767225600000 + 3000;
  q.created_to_ms = 1767225600000 + 9000;
  std::set<std::string> got;
  for (const auto& r : this->ListAll(q)) got.insert(r.id());
  EXPECT_EQ(got, urgent_in_range);
  intake::ListQuery all_urgent;
  all_urgent.urgency = common::v1::URGENCY_URGENT;
  EXPECT_EQ(this->ListAll(all_urgent).size(), 4u);
}

TYPED_TEST_P(RequestStoreContractTest, RequestCreatedDuringPagingIsNeitherSkippedNorRepeated) {
  std::set<std::string> before;
  for (int i = 0; i < 20; ++i) {
    auto n = this->MakeNew(1767225600000 + i * 1000);
    before.insert(n.request.id());
    ASSERT_TRUE(this->Create(std::move(n)).ok());
  }
  intake::ListQuery q;
  q.page_size = 6;
  std::vector<std::string> seen;
  bool added = false;
  for (int guard = 0; guard < 100; ++guard) {
    auto page = this->List(q);
    ASSERT_TRUE(page.ok());
    for (const auto& r : page->requests) seen.push_back(r.id());
    if (!added) {  // a new request arrives after the first page was handed out
      ASSERT_TRUE(this->Create(this->MakeNew(1767225700000)).ok());
      added = true;
    }
    if (!page->next) break;
    q.after = page->next;
  }
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), seen.size());
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), before);
}

TYPED_TEST_P(RequestStoreContractTest, ListByUpdateShowsMostRecentlyChangedFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto n = this->MakeNew(1767225600000 + i * 1000);
    ids.push_back(n.request.id());
    ASSERT_TRUE(this->Create(std::move(n)).ok());
  }
  // The oldest request changes last.
  intake::Mutation m;
  m.id = ids[0];
  m.expected_version = 1;
  m.new_version = 2;
  m.updated_ms = 1767225900000;
  m.fields.emplace_back("status", "2");
  auto applied =
      Await<intake::MutationOutcome>([&](auto done) { this->store_->Mutate(m, std::move(done)); });
  ASSERT_TRUE(applied.ok()) << applied.status();
  intake::ListQuery q;
  q.by_update = true;
  q.page_size = 2;
  auto all = this->ListAll(q);
  ASSERT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].id(), ids[0]);
  EXPECT_EQ(all[1].id(), ids[4]);
  // A stale version is refused and changes nothing.
  auto stale =
      Await<intake::MutationOutcome>([&](auto done) { this->store_->Mutate(m, std::move(done)); });
  EXPECT_TRUE(intake::IsStaleVersion(stale.status())) << stale.status();
}

TYPED_TEST_P(RequestStoreContractTest, ReportedDecisionIsRecordedOnceWithItsStatus) {
  auto n = this->MakeNew(1767225600000, 6);
  const std::string id = n.request.id();
  ASSERT_TRUE(this->Create(std::move(n)).ok());
  common::v1::Event decided;
  decided.set_event_id("01jevent0000000000000000001");
  decided.set_request_id(id);
  decided.set_source("routing");
  decided.set_type(common::v1::EVENT_TYPE_ROUTING_DECIDED);
  decided.set_status(common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  *decided.mutable_occur_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(1767225700000);
  const common::Dedupe dedupe{common::EventKeys::Seen(6, "intake", decided.event_id()), "600000"};
  intake::IntakeEventHandler handler(*this->store_);
  auto record = [&] {
    return Await<common::EventHandler::Outcome>(
        [&](auto done) { handler.Handle(decided, dedupe, std::move(done)); });
  };
  auto first = record();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, common::EventHandler::Outcome::kHandled);
  auto again = record();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, common::EventHandler::Outcome::kDuplicate);

  auto got = this->Get(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status(), common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  EXPECT_EQ(got->etag(), "2");
  EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToMilliseconds(got->update_time()),
            1767225700000);
  auto history = Await<std::vector<common::v1::Event>>(
      [&](auto done) { this->store_->History(id, std::move(done)); });
  ASSERT_TRUE(history.ok());
  // Submitted, the decision as reported (the cause), then the status change it made as an
  // entry of its own, each once.
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[1].type(), common::v1::EVENT_TYPE_ROUTING_DECIDED);
  EXPECT_EQ((*history)[1].status(), common::v1::REQUEST_STATUS_UNSPECIFIED);
  EXPECT_EQ((*history)[2].status(), common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  EXPECT_EQ((*history)[2].previous_status(), common::v1::REQUEST_STATUS_RECEIVED);

  intake::ListQuery pending;
  pending.status = common::v1::REQUEST_STATUS_TRANSLATION_PENDING;
  auto listed = this->ListAll(pending);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].status(), common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  intake::ListQuery received;
  received.status = common::v1::REQUEST_STATUS_RECEIVED;
  EXPECT_TRUE(this->ListAll(received).empty());
}

TYPED_TEST_P(RequestStoreContractTest, EventAboutUnknownRequestIsDroppedAsHandled) {
  common::v1::Event e;
  e.set_event_id("01jevent0000000000000000002");
  e.set_request_id(common::Sharding::MakeId("rq", 2, absl::FromUnixSeconds(1)));
  e.set_type(common::v1::EVENT_TYPE_DEADLINE_STARTED);
  const common::Dedupe dedupe{common::EventKeys::Seen(2, "intake", e.event_id()), "600000"};
  auto loaded = Await<intake::Snapshot>(
      [&](auto done) { this->store_->Load(e.request_id(), std::nullopt, std::move(done)); });
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  intake::IntakeEventHandler handler(*this->store_);
  auto r = Await<common::EventHandler::Outcome>(
      [&](auto done) { handler.Handle(e, dedupe, std::move(done)); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, common::EventHandler::Outcome::kHandled);
}

// Retention (issue 8 point 5): a move into a final status indexes the request by the move's
// time; step 1 leaves a tombstone, step 2 removes it; each step is guarded, idempotent and
// leaves a pending audit until ErasureAudited.
TYPED_TEST_P(RequestStoreContractTest, ClosedRequestIsErasedInTwoAuditedSteps) {
  constexpr int64_t kT = 1767225600000;
  auto n = this->MakeNew(kT, 3);
  const std::string id = n.request.id();
  ASSERT_TRUE(this->Create(std::move(n)).ok());
  auto open = this->MakeNew(kT, 4);
  const std::string open_id = open.request.id();
  ASSERT_TRUE(this->Create(std::move(open)).ok());
  auto mutate = [&](intake::Mutation m) {
    return Await<intake::MutationOutcome>(
        [&](auto done) { this->store_->Mutate(std::move(m), std::move(done)); });
  };
  auto work = [&](int64_t closed_before, int64_t tombstoned_before) {
    auto w = Await<intake::RetentionWork>([&](auto done) {
      this->store_->FindRetentionWork(closed_before, tombstoned_before, 10, std::move(done));
    });
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : intake::RetentionWork{};
  };
  intake::Mutation withdraw;
  withdraw.id = id;
  withdraw.expected_version = 1;
  withdraw.new_version = 2;
  withdraw.updated_ms = kT + 1000;
  withdraw.fields.emplace_back(
      "status", absl::StrCat(static_cast<int>(common::v1::REQUEST_STATUS_WITHDRAWN)));
  ASSERT_TRUE(mutate(withdraw).ok());
  intake::Mutation ack;
  ack.id = open_id;
  ack.expected_version = 1;
  ack.new_version = 2;
  ack.updated_ms = kT + 1000;
  ack.fields.emplace_back("status",
                          absl::StrCat(static_cast<int>(common::v1::REQUEST_STATUS_ACKNOWLEDGED)));
  ASSERT_TRUE(mutate(ack).ok());

  EXPECT_TRUE(work(kT + 999, 0).personal.empty());
  EXPECT_EQ(work(kT + 1000, 0).personal, std::vector<std::string>{id});
  EXPECT_EQ(work(kT + 1000000, 0).personal, std::vector<std::string>{id});  // never the open one

  auto snap = Await<intake::Snapshot>(
      [&](auto done) { this->store_->Load(id, std::nullopt, std::move(done)); });
  ASSERT_TRUE(snap.ok());
  intake::PersonalDataErasure e;
  e.id = id;
  e.expected_version = snap->version;
  e.closed_before_ms = kT + 5000;
  e.now_ms = kT + 5000;
  e.tombstone = intake::MakeTombstone(snap->request);
  e.erased.set_event_id("01jerased000000000000000001");
  e.erased.set_request_id(id);
  e.erased.set_type(common::v1::EVENT_TYPE_REQUEST_ERASED);
  auto step1 = [&](intake::PersonalDataErasure x) {
    return Await<bool>(
        [&](auto done) { this->store_->ErasePersonalData(std::move(x), std::move(done)); });
  };
  intake::PersonalDataErasure stale = e;
  stale.expected_version = snap->version - 1;
  EXPECT_EQ(step1(stale).status().code(), absl::StatusCode::kAborted);
  intake::PersonalDataErasure early = e;
  early.closed_before_ms = kT + 999;
  EXPECT_FALSE(*step1(early));
  auto erased = step1(e);
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_TRUE(*erased);
  EXPECT_FALSE(*step1(e));  // idempotent

  auto got = this->Get(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status(), common::v1::REQUEST_STATUS_WITHDRAWN);
  EXPECT_EQ(got->etag(), absl::StrCat(snap->version + 1));
  EXPECT_EQ(got->content().subjects_size(), 0);
  EXPECT_TRUE(got->content().statement_of_facts().empty());
  EXPECT_EQ(got->content().instrument(), common::v1::INSTRUMENT_EIO);
  auto history = Await<std::vector<common::v1::Event>>(
      [&](auto done) { this->store_->History(id, std::move(done)); });
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->back().type(), common::v1::EVENT_TYPE_REQUEST_ERASED);

  auto after1 = work(kT + 1000000, kT + 4999);
  EXPECT_TRUE(after1.personal.empty());
  EXPECT_TRUE(after1.whole.empty());
  ASSERT_EQ(after1.unaudited.size(), 1u);
  EXPECT_EQ(after1.unaudited[0].id, id);
  EXPECT_EQ(after1.unaudited[0].step, intake::ErasureStep::kPersonalData);
  EXPECT_EQ(after1.unaudited[0].erased_ms, kT + 5000);
  auto audited = [&](const intake::PendingErasureAudit& a) {
    return Await<bool>([&](auto done) { this->store_->ErasureAudited(a, std::move(done)); });
  };
  EXPECT_TRUE(*audited(after1.unaudited[0]));
  EXPECT_FALSE(*audited(after1.unaudited[0]));
  EXPECT_EQ(work(kT + 1000000, kT + 5000).whole, std::vector<std::string>{id});

  auto step2 = [&](int64_t before) {
    return Await<bool>(
        [&](auto done) { this->store_->EraseRequest(id, before, kT + 9000, std::move(done)); });
  };
  EXPECT_FALSE(*step2(kT + 4999));
  EXPECT_TRUE(*step2(kT + 5000));
  EXPECT_FALSE(*step2(kT + 5000));
  EXPECT_EQ(this->Get(id).status().code(), absl::StatusCode::kNotFound);
  auto done2 = work(kT + 1000000, kT + 1000000);
  EXPECT_TRUE(done2.personal.empty());
  EXPECT_TRUE(done2.whole.empty());
  ASSERT_EQ(done2.unaudited.size(), 1u);
  EXPECT_EQ(done2.unaudited[0].step, intake::ErasureStep::kRequest);
  EXPECT_TRUE(this->Get(open_id).ok());
}

TYPED_TEST_P(RequestStoreContractTest, NextDeadlineFollowsDeadlineEvents) {
  using ET = common::v1::EventType;
  auto n = this->MakeNew(1767225600000, 3);
  const std::string id = n.request.id();
  ASSERT_TRUE(this->Create(std::move(n)).ok());
  const int64_t t = 1767225600000, day = 86400000;
  // A caller's change computed before the deadline started (its snapshot has none).
  auto before = Await<intake::Snapshot>(
      [&](auto done) { this->store_->Load(id, std::nullopt, std::move(done)); });
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(
      this->Deadline(id, ET::EVENT_TYPE_DEADLINE_STARTED, "dl-a", t + 30 * day, t + 1).ok());
  intake::Mutation change;
  change.id = id;
  change.expected_version = before->version;
  change.new_version = before->version + 1;
  change.updated_ms = t + 2;
  change.request = before->request;
  change.request->mutable_content()->set_statement_of_facts("Supplemented facts.");
  ASSERT_TRUE(Await<intake::MutationOutcome>([&](auto done) {
                this->store_->Mutate(std::move(change), std::move(done));
              }).ok());
  auto got = this->Get(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->next_deadline().deadline_id(), "dl-a");
  EXPECT_EQ(got->next_deadline().rule_id(), "EIO_RECOGNITION");
  EXPECT_EQ(this->DueOf(*got), t + 30 * day);
  EXPECT_FALSE(got->next_deadline().at_risk());
  // Deadline-tracking's bookkeeping left the etag (the caller's guarded change applied) and
  // that change, computed without it, did not undo it.
  EXPECT_EQ(got->etag(), "2");
  EXPECT_EQ(got->content().statement_of_facts(), "Supplemented facts.");

  // A sooner one becomes the next; its reminder marks it at risk.
  ASSERT_TRUE(
      this->Deadline(id, ET::EVENT_TYPE_DEADLINE_STARTED, "dl-b", t + 10 * day, t + 2).ok());
  ASSERT_TRUE(
      this->Deadline(id, ET::EVENT_TYPE_DEADLINE_REMINDER, "dl-b", t + 10 * day, t + 3).ok());
  got = this->Get(id);
  EXPECT_EQ(got->next_deadline().deadline_id(), "dl-b");
  EXPECT_TRUE(got->next_deadline().at_risk());
  EXPECT_EQ(got->next_deadline().open_deadlines(), 2);

  // Extended past dl-a: dl-a is next again; dl-b's at-risk mark went with its old due time.
  ASSERT_TRUE(
      this->Deadline(id, ET::EVENT_TYPE_DEADLINE_EXTENDED, "dl-b", t + 40 * day, t + 4).ok());
  got = this->Get(id);
  EXPECT_EQ(got->next_deadline().deadline_id(), "dl-a");
  EXPECT_EQ(this->DueOf(*got), t + 30 * day);

  // A reminder about dl-b's old due time, delivered late, marks nothing.
  ASSERT_TRUE(
      this->Deadline(id, ET::EVENT_TYPE_DEADLINE_REMINDER, "dl-b", t + 10 * day, t + 4).ok());
  // dl-a met: dl-b (extended, not at risk) is next. Redelivered, the MET changes nothing.
  const std::string met_id = "01jmet00000000000000000001";
  auto met = this->Deadline(id, ET::EVENT_TYPE_DEADLINE_MET, "dl-a", 0, t + 5, met_id);
  ASSERT_TRUE(met.ok()) << met.status();
  EXPECT_EQ(*met, common::EventHandler::Outcome::kHandled);
  got = this->Get(id);
  EXPECT_EQ(got->next_deadline().deadline_id(), "dl-b");
  EXPECT_EQ(this->DueOf(*got), t + 40 * day);
  EXPECT_FALSE(got->next_deadline().at_risk());
  const std::string etag = got->etag();
  auto again = this->Deadline(id, ET::EVENT_TYPE_DEADLINE_MET, "dl-a", 0, t + 5, met_id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, common::EventHandler::Outcome::kDuplicate);
  // The same facts under another event id (a re-emission) change nothing either.
  ASSERT_TRUE(this->Deadline(id, ET::EVENT_TYPE_DEADLINE_MET, "dl-a", 0, t + 6).ok());
  ASSERT_TRUE(
      this->Deadline(id, ET::EVENT_TYPE_DEADLINE_STARTED, "dl-b", t + 40 * day, t + 7).ok());
  got = this->Get(id);
  EXPECT_EQ(got->etag(), etag);
  EXPECT_EQ(got->next_deadline().open_deadlines(), 1);

  // Suspended, it drops out; resumed, it is back; cancelled, nothing is open.
  ASSERT_TRUE(this->Deadline(id, ET::EVENT_TYPE_DEADLINE_SUSPENDED, "dl-b", 0, t + 8).ok());
  got = this->Get(id);
  EXPECT_FALSE(got->next_deadline().has_due_time());
  ASSERT_TRUE(
      this->Deadline(id, ET::EVENT_TYPE_DEADLINE_RESUMED, "dl-b", t + 45 * day, t + 9).ok());
  got = this->Get(id);
  EXPECT_EQ(this->DueOf(*got), t + 45 * day);
  ASSERT_TRUE(this->Deadline(id, ET::EVENT_TYPE_DEADLINE_MISSED, "dl-b", 0, t + 10).ok());
  got = this->Get(id);
  EXPECT_TRUE(got->next_deadline().missed());
  EXPECT_TRUE(got->next_deadline().at_risk());
  ASSERT_TRUE(this->Deadline(id, ET::EVENT_TYPE_DEADLINE_CANCELLED, "dl-b", 0, t + 11).ok());
  got = this->Get(id);
  EXPECT_FALSE(got->has_next_deadline());

  // The worklist rows follow: nothing due before any time now.
  intake::ListQuery due = this->Worklist("FR-TJ-PARIS-JI");
  due.next_due_before_ms = t + 100 * day;
  EXPECT_TRUE(this->ListAll(due).empty());
}

TYPED_TEST_P(RequestStoreContractTest, WorklistFiltersOnStatusesOpenSideCounterpartAndDue) {
  using ET = common::v1::EventType;
  const int64_t t = 1767225600000, day = 86400000;
  // Issued by the caller (FR-TJ-PARIS-JI) to DE, BE and IT; one to it from ES.
  std::vector<std::string> ids;
  for (const char* to : {"DE", "BE", "IT"}) {
    auto n = this->MakeNew(t + ids.size() * 1000);
    n.request.mutable_content()->set_requested_state(to);
    ids.push_back(n.request.id());
    ASSERT_TRUE(this->Create(std::move(n)).ok());
  }
  auto incoming = this->MakeNew(t + 5000);
  incoming.request.mutable_content()->mutable_issuing_authority()->set_authority_id("ES-AN-MADRID");
  incoming.request.mutable_content()->mutable_issuing_authority()->set_state("ES");
  incoming.request.mutable_content()->set_requested_state("FR");
  incoming.request.mutable_executing_authority()->set_authority_id("FR-TJ-PARIS-JI");
  incoming.request.set_status(common::v1::REQUEST_STATUS_EXECUTED);
  const std::string incoming_id = incoming.request.id();
  ASSERT_TRUE(this->Create(std::move(incoming)).ok());
  // Another authority's request: never in the caller's worklist, whatever the filter.
  auto other = this->MakeNew(t + 6000);
  other.request.mutable_content()->mutable_issuing_authority()->set_authority_id("FR-TJ-LYON");
  ASSERT_TRUE(this->Create(std::move(other)).ok());
  ASSERT_TRUE(
      this->Deadline(ids[1], ET::EVENT_TYPE_DEADLINE_STARTED, "dl-1", t + 9 * day, t + 1).ok());
  ASSERT_TRUE(
      this->Deadline(incoming_id, ET::EVENT_TYPE_DEADLINE_STARTED, "dl-2", t + 3 * day, t + 1)
          .ok());

  auto ids_of = [](const std::vector<intake::v1::Request>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs) out.push_back(r.id());
    return out;
  };
  auto q = this->Worklist("FR-TJ-PARIS-JI");
  EXPECT_EQ(this->ListAll(q).size(), 4u);
  q.side = intake::v1::CALLER_SIDE_EXECUTING;
  EXPECT_EQ(ids_of(this->ListAll(q)), std::vector<std::string>{incoming_id});
  q.side = intake::v1::CALLER_SIDE_ISSUING;
  EXPECT_EQ(this->ListAll(q).size(), 3u);
  q = this->Worklist("FR-TJ-PARIS-JI");
  q.counterpart_state = "ES";  // the issuing state, where the caller executes
  EXPECT_EQ(ids_of(this->ListAll(q)), std::vector<std::string>{incoming_id});
  q.counterpart_state = "BE";  // the requested state, where the caller issued
  EXPECT_EQ(ids_of(this->ListAll(q)), std::vector<std::string>{ids[1]});
  q.counterpart_state = "FR";  // the caller's own state is the counterpart of none
  EXPECT_TRUE(this->ListAll(q).empty());
  q = this->Worklist("FR-TJ-PARIS-JI");
  q.open_only = true;  // EXECUTED is not open
  EXPECT_EQ(this->ListAll(q).size(), 3u);
  q = this->Worklist("FR-TJ-PARIS-JI");
  q.statuses = {common::v1::REQUEST_STATUS_EXECUTED, common::v1::REQUEST_STATUS_REFUSED};
  EXPECT_EQ(ids_of(this->ListAll(q)), std::vector<std::string>{incoming_id});
  q.statuses = {common::v1::REQUEST_STATUS_EXECUTED, common::v1::REQUEST_STATUS_RECEIVED};
  EXPECT_EQ(this->ListAll(q).size(), 4u);
  q = this->Worklist("FR-TJ-PARIS-JI");
  q.next_due_before_ms = t + 5 * day;
  EXPECT_EQ(ids_of(this->ListAll(q)), std::vector<std::string>{incoming_id});
  q.next_due_before_ms = t + 10 * day;
  q.open_only = true;
  EXPECT_EQ(ids_of(this->ListAll(q)), std::vector<std::string>{ids[1]});
  // Lyon's worklist holds only its own request.
  EXPECT_EQ(this->ListAll(this->Worklist("FR-TJ-LYON")).size(), 1u);
}

TYPED_TEST_P(RequestStoreContractTest, WorklistByNextDueSoonestFirstAcrossPages) {
  using ET = common::v1::EventType;
  const int64_t t = 1767225600000, day = 86400000;
  // Seven requests over the shards; five with deadlines due in a shuffled order.
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) {
    auto n = this->MakeNew(t + i * 1000);
    ids.push_back(n.request.id());
    ASSERT_TRUE(this->Create(std::move(n)).ok());
  }
  const int due_days[] = {7, 2, 0, 9, 0, 4, 1};  // 0: no deadline
  for (int i = 0; i < 7; ++i) {
    if (due_days[i] == 0) continue;
    ASSERT_TRUE(this->Deadline(ids[i], ET::EVENT_TYPE_DEADLINE_STARTED, absl::StrCat("dl-", i),
                               t + due_days[i] * day, t + 10)
                    .ok());
  }
  auto q = this->Worklist("FR-TJ-PARIS-JI");
  q.by_next_due = true;
  q.page_size = 2;
  auto first = this->List(q);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->requests.size(), 2u);
  EXPECT_EQ(first->requests[0].id(), ids[6]);
  EXPECT_EQ(first->requests[1].id(), ids[1]);
  ASSERT_TRUE(first->next.has_value());
  std::vector<std::string> order;
  for (const auto& r : this->ListAll(q)) order.push_back(r.id());
  // Soonest first; the two without a deadline last, newest created first.
  EXPECT_EQ(order,
            (std::vector<std::string>{ids[6], ids[1], ids[5], ids[0], ids[3], ids[4], ids[2]}));
}

REGISTER_TYPED_TEST_SUITE_P(
    RequestStoreContractTest, CreatedRequestCanBeReadBack,
    ReportedDecisionIsRecordedOnceWithItsStatus, EventAboutUnknownRequestIsDroppedAsHandled,
    UnknownIdIsNotFound, SameKeySamePayloadReturnsFirstRequest,
    SameKeyDifferentPayloadIsAlreadyExists, KeysAreScopedToTheCaller,
    ConcurrentDuplicatesCreateExactlyOneRequest, ListWalksEveryRequestNewestFirstAcrossPages,
    FullPageWhenTheNewestRequestsShareOneShard, ListFiltersByInstrumentAndState,
    ListFiltersByUrgencyAndCreationTimeRange, RequestCreatedDuringPagingIsNeitherSkippedNorRepeated,
    ListByUpdateShowsMostRecentlyChangedFirst, ClosedRequestIsErasedInTwoAuditedSteps,
    NextDeadlineFollowsDeadlineEvents, WorklistFiltersOnStatusesOpenSideCounterpartAndDue,
    WorklistByNextDueSoonestFirstAcrossPages);

}  // namespace rogatory::testing
