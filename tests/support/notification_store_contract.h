#pragma once

// The contract every NotificationStore keeps, as a typed test suite: the in-memory fake runs
// it as a unit test, the Redis store against a real redis-server.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "notification_store.h"

namespace rogatory::testing {

// Each factory provides:
//   static std::unique_ptr<notification::NotificationStore> Make();
//   static void AddInboxEntry(notification::NotificationStore&, int shard, authority,
//                             const notification::NotificationStore::InboxEntry&,
//                             event_id, request_id);   // entry.id set, increasing
//   static void AddReceivedEvent(notification::NotificationStore&, int shard, request_id,
//                                event_id, accept_ms, parties {iss, exe, ...}, recipients);
//   static void AddDeadLetter(notification::NotificationStore&, int shard,
//                             const notification::NotificationStore::DeadLetterRecord&);
// The Add* put what the fan-out, the event handler and the webhook dispatcher write.
template <typename Factory>
class NotificationStoreContractTest : public ::testing::Test {
 protected:
  using Store = notification::NotificationStore;
  void SetUp() override { store_ = Factory::Make(); }

  template <typename T, typename Fn>
  static absl::StatusOr<T> Await(Fn&& call) {
    absl::Notification done;
    absl::StatusOr<T> result = absl::UnknownError("no answer");
    call([&](absl::StatusOr<T> r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  Store::NewSubscription NewSub(const std::string& id, const std::string& request_id = "",
                                const std::string& fingerprint = "") {
    Store::NewSubscription s;
    s.shard = 2;
    s.id = id;
    s.owner = "DE-STA-BERLIN";
    s.owner_state = "DE";
    s.endpoint_uri = "https://hooks.example/" + id;
    s.filter.types = ",10,";
    s.create_ms = 1767225600000;
    s.secret = "whsec_" + id;
    s.request_id = request_id;
    s.fingerprint = fingerprint;
    s.idempotency_ttl = absl::Hours(48);
    s.max_per_owner = 3;
    return s;
  }
  absl::StatusOr<Store::CreateResult> Create(const Store::NewSubscription& s) {
    return Await<Store::CreateResult>(
        [&](auto done) { store_->CreateSubscription(s, std::move(done)); });
  }
  std::vector<Store::StoredSubscription> List(int shard, const std::string& owner) {
    auto listed = Await<std::vector<Store::StoredSubscription>>(
        [&](auto done) { store_->ListSubscriptions(shard, owner, std::move(done)); });
    EXPECT_TRUE(listed.ok()) << listed.status();
    return listed.ok() ? *listed : std::vector<Store::StoredSubscription>{};
  }

  Store::InboxEntry Entry(uint64_t ms, uint64_t seq, const std::string& event) {
    Store::InboxEntry e;
    e.id = notification::StreamId{ms, seq};
    e.cursor = e.id.ToString();
    e.event = event;
    e.states = ",DE,FR,";
    e.recipient_state = "DE";
    e.accept_ms = static_cast<int64_t>(ms);
    return e;
  }

  std::unique_ptr<Store> store_;
};

TYPED_TEST_SUITE_P(NotificationStoreContractTest);

TYPED_TEST_P(NotificationStoreContractTest, CreatedSubscriptionIsListedAndReplayedByRequestId) {
  using Outcome = notification::NotificationStore::CreateOutcome;
  auto created = this->Create(this->NewSub("sub-a", "req-1", "fp-1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->outcome, Outcome::kCreated);

  auto replayed = this->Create(this->NewSub("sub-other", "req-1", "fp-1"));
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(replayed->outcome, Outcome::kReplayed);
  EXPECT_EQ(replayed->existing.id, "sub-a");
  EXPECT_EQ(replayed->existing.endpoint_uri, "https://hooks.example/sub-a");
  EXPECT_EQ(replayed->existing.secret, "whsec_sub-a");
  EXPECT_EQ(replayed->existing.filter.types, ",10,");
  EXPECT_EQ(replayed->existing.create_ms, 1767225600000);

  auto conflict = this->Create(this->NewSub("sub-b", "req-1", "fp-other"));
  ASSERT_TRUE(conflict.ok());
  EXPECT_EQ(conflict->outcome, Outcome::kConflict);

  auto listed = this->List(2, "DE-STA-BERLIN");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, "sub-a");
  EXPECT_EQ(listed[0].filter.types, ",10,");
  EXPECT_EQ(listed[0].rotate_ms, 0);
  EXPECT_TRUE(this->List(2, "FR-TJ-PARIS").empty());
}

TYPED_TEST_P(NotificationStoreContractTest, OwnerLimitAndDeletedReplay) {
  using Outcome = notification::NotificationStore::CreateOutcome;
  using Deleted = notification::NotificationStore::DeleteOutcome;
  ASSERT_EQ(this->Create(this->NewSub("sub-1", "req-1", "fp-1"))->outcome, Outcome::kCreated);
  ASSERT_EQ(this->Create(this->NewSub("sub-2"))->outcome, Outcome::kCreated);
  ASSERT_EQ(this->Create(this->NewSub("sub-3"))->outcome, Outcome::kCreated);
  EXPECT_EQ(this->Create(this->NewSub("sub-4"))->outcome, Outcome::kLimit);

  auto foreign = this->template Await<Deleted>([&](auto done) {
    this->store_->DeleteSubscription(2, "FR-TJ-PARIS", "sub-1", std::move(done));
  });
  EXPECT_EQ(*foreign, Deleted::kForeign);
  auto deleted = this->template Await<Deleted>([&](auto done) {
    this->store_->DeleteSubscription(2, "DE-STA-BERLIN", "sub-1", std::move(done));
  });
  EXPECT_EQ(*deleted, Deleted::kDeleted);
  auto again = this->template Await<Deleted>([&](auto done) {
    this->store_->DeleteSubscription(2, "DE-STA-BERLIN", "sub-1", std::move(done));
  });
  EXPECT_EQ(*again, Deleted::kAbsent);
  EXPECT_EQ(this->Create(this->NewSub("sub-5", "req-1", "fp-1"))->outcome, Outcome::kGone);
  EXPECT_EQ(this->List(2, "DE-STA-BERLIN").size(), 2u);
}

TYPED_TEST_P(NotificationStoreContractTest, RotationIsTheOwnersOnly) {
  using Store = notification::NotificationStore;
  ASSERT_TRUE(this->Create(this->NewSub("sub-r")).ok());
  Store::RotateRequest r;
  r.shard = 2;
  r.id = "sub-r";
  r.owner = "FR-TJ-PARIS";
  r.new_secret = "whsec_new";
  r.now_ms = 1767225700000;
  r.previous_expire_ms = 1767312100000;
  auto foreign = this->template Await<std::optional<Store::StoredSubscription>>(
      [&](auto done) { this->store_->RotateSecret(r, std::move(done)); });
  ASSERT_TRUE(foreign.ok());
  EXPECT_FALSE(foreign->has_value());
  r.owner = "DE-STA-BERLIN";
  auto rotated = this->template Await<std::optional<Store::StoredSubscription>>(
      [&](auto done) { this->store_->RotateSecret(r, std::move(done)); });
  ASSERT_TRUE(rotated.ok() && rotated->has_value());
  EXPECT_EQ((*rotated)->secret, "whsec_new");
  EXPECT_EQ((*rotated)->rotate_ms, 1767225700000);
  EXPECT_EQ((*rotated)->endpoint_uri, "https://hooks.example/sub-r");
  EXPECT_EQ(this->List(2, "DE-STA-BERLIN")[0].rotate_ms, 1767225700000);
}

TYPED_TEST_P(NotificationStoreContractTest, InboxReadsAfterAPositionAndOpensAtItsBounds) {
  using Store = notification::NotificationStore;
  const std::string who = "FR-TJ-PARIS";
  for (uint64_t i = 1; i <= 3; ++i) {
    TypeParam::AddInboxEntry(*this->store_, 1, who,
                             this->Entry(1000 * i, 0, "ev" + std::to_string(i)),
                             "e" + std::to_string(i), "rq-1");
  }
  auto bounds = this->template Await<Store::InboxBounds>(
      [&](auto done) { this->store_->OpenInbox(1, who, "0-0", 100, std::move(done)); });
  ASSERT_TRUE(bounds.ok()) << bounds.status();
  EXPECT_EQ(bounds->floor.ToString(), "0-0");
  EXPECT_EQ(bounds->last.ToString(), "3000-0");

  auto page = this->template Await<Store::InboxPage>([&](auto done) {
    this->store_->ReadInbox(1, who, notification::StreamId{1000, 0}, 10, std::move(done));
  });
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->examined, 2u);
  EXPECT_EQ(page->entries[0].cursor, "2000-0");
  EXPECT_EQ(page->entries[0].event, "ev2");
  EXPECT_EQ(page->entries[0].states, ",DE,FR,");
  EXPECT_EQ(page->entries[0].recipient_state, "DE");
  EXPECT_EQ(page->entries[0].accept_ms, 2000);
  EXPECT_FALSE(page->entries[0].reannouncement);

  auto one = this->template Await<Store::InboxPage>([&](auto done) {
    this->store_->ReadInbox(1, who, notification::StreamId{}, 1, std::move(done));
  });
  ASSERT_EQ(one->entries.size(), 1u);
  EXPECT_EQ(one->entries[0].cursor, "1000-0");
}

TYPED_TEST_P(NotificationStoreContractTest, OpeningTrimsByAgeAndLengthAndRaisesTheFloor) {
  using Store = notification::NotificationStore;
  const std::string who = "FR-TJ-PARIS";
  for (uint64_t i = 1; i <= 5; ++i) {
    TypeParam::AddInboxEntry(*this->store_, 1, who, this->Entry(1000 * i, 0, "ev"), "e", "rq");
  }
  // Older than 2000 ms goes; then at most 2 entries stay.
  auto bounds = this->template Await<Store::InboxBounds>(
      [&](auto done) { this->store_->OpenInbox(1, who, "2000-0", 2, std::move(done)); });
  ASSERT_TRUE(bounds.ok()) << bounds.status();
  EXPECT_EQ(bounds->floor.ToString(), "3000-0");
  EXPECT_EQ(bounds->last.ToString(), "5000-0");
  auto page = this->template Await<Store::InboxPage>([&](auto done) {
    this->store_->ReadInbox(1, who, notification::StreamId{}, 10, std::move(done));
  });
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->floor.ToString(), "3000-0");
  EXPECT_EQ(page->entries[0].cursor, "4000-0");
}

TYPED_TEST_P(NotificationStoreContractTest, AckReadsUpToTheCursorAndThePointerOnlyMovesOn) {
  using Store = notification::NotificationStore;
  const std::string who = "FR-TJ-PARIS";
  for (uint64_t i = 1; i <= 3; ++i) {
    TypeParam::AddInboxEntry(*this->store_, 1, who, this->Entry(1000 * i, 0, "ev"),
                             "e" + std::to_string(i), "rq-" + std::to_string(i));
  }
  auto unacked = this->template Await<std::vector<Store::Unacked>>(
      [&](auto done) { this->store_->ReadUnacked(1, who, "2000-0", 100, std::move(done)); });
  ASSERT_TRUE(unacked.ok()) << unacked.status();
  ASSERT_EQ(unacked->size(), 2u);
  EXPECT_EQ((*unacked)[1].cursor, "2000-0");
  EXPECT_EQ((*unacked)[1].event_id, "e2");
  EXPECT_EQ((*unacked)[1].request_id, "rq-2");
  auto moved = this->template Await<bool>(
      [&](auto done) { this->store_->AdvanceAcked(1, who, "2000-0", std::move(done)); });
  EXPECT_TRUE(*moved);
  auto back = this->template Await<bool>(
      [&](auto done) { this->store_->AdvanceAcked(1, who, "1000-0", std::move(done)); });
  EXPECT_FALSE(*back);
  auto rest = this->template Await<std::vector<Store::Unacked>>(
      [&](auto done) { this->store_->ReadUnacked(1, who, "3000-0", 100, std::move(done)); });
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].event_id, "e3");
}

TYPED_TEST_P(NotificationStoreContractTest, EvidenceIsRecordedOnceForReceivedEventsOnly) {
  using Store = notification::NotificationStore;
  const absl::Time now = absl::FromUnixMillis(1767225605000);
  TypeParam::AddReceivedEvent(*this->store_, 3, "rq-3", "ev-1", 1767225600000,
                              {{"iss", "FR-TJ-PARIS"}, {"exe", "DE-STA-BERLIN"}, {"tra", "TR-1"}},
                              {"FR-TJ-PARIS", "DE-STA-BERLIN"});
  auto retrieved = this->template Await<int>([&](auto done) {
    this->store_->RecordRetrieved(3, "DE-STA-BERLIN", {"ev-1", "ev-unknown"}, now, absl::Hours(1),
                                  std::move(done));
  });
  ASSERT_TRUE(retrieved.ok()) << retrieved.status();
  EXPECT_EQ(*retrieved, 1);
  auto again = this->template Await<int>([&](auto done) {
    this->store_->RecordRetrieved(3, "DE-STA-BERLIN", {"ev-1"}, now, absl::Hours(1),
                                  std::move(done));
  });
  EXPECT_EQ(*again, 0);
  auto stage = [&](const std::string& event_id) {
    return this->template Await<bool>([&](auto done) {
      this->store_->RecordStage(3, event_id, notification::v1::DELIVERY_STAGE_DELIVERED,
                                "FR-TJ-PARIS", "sub-9", now, absl::Hours(1), std::move(done));
    });
  };
  EXPECT_TRUE(*stage("ev-1"));
  EXPECT_FALSE(*stage("ev-1"));
  EXPECT_FALSE(*stage("ev-unknown"));

  auto by_request = this->template Await<std::optional<Store::RequestEvidence>>(
      [&](auto done) { this->store_->ReadRequestEvidence(3, "rq-3", 500, std::move(done)); });
  ASSERT_TRUE(by_request.ok()) << by_request.status();
  ASSERT_TRUE(by_request->has_value());
  const Store::RequestEvidence& e = **by_request;
  EXPECT_EQ(e.request_id, "rq-3");
  EXPECT_EQ(e.issuing, "FR-TJ-PARIS");
  EXPECT_EQ(e.executing, "DE-STA-BERLIN");
  EXPECT_EQ(e.translator, "TR-1");
  EXPECT_EQ(e.central, "");
  // Accepted twice, retrieved once, delivered once.
  ASSERT_EQ(e.records.size(), 4u);
  int delivered = 0;
  for (const auto& r : e.records) {
    EXPECT_EQ(r.event_id, "ev-1");
    if (r.stage == notification::v1::DELIVERY_STAGE_DELIVERED) {
      ++delivered;
      EXPECT_EQ(r.recipient, "FR-TJ-PARIS");
      EXPECT_EQ(r.subscription, "sub-9");
      EXPECT_EQ(r.record_ms, 1767225605000);
    }
  }
  EXPECT_EQ(delivered, 1);

  auto by_event = this->template Await<std::optional<Store::RequestEvidence>>(
      [&](auto done) { this->store_->ReadEventEvidence(3, "ev-1", std::move(done)); });
  ASSERT_TRUE(by_event.ok() && by_event->has_value());
  EXPECT_EQ((*by_event)->request_id, "rq-3");
  EXPECT_EQ((*by_event)->records.size(), 4u);
  auto unknown = this->template Await<std::optional<Store::RequestEvidence>>(
      [&](auto done) { this->store_->ReadEventEvidence(3, "ev-unknown", std::move(done)); });
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->has_value());
  auto no_request = this->template Await<std::optional<Store::RequestEvidence>>(
      [&](auto done) { this->store_->ReadRequestEvidence(3, "rq-none", 500, std::move(done)); });
  ASSERT_TRUE(no_request.ok());
  EXPECT_FALSE(no_request->has_value());
}

TYPED_TEST_P(NotificationStoreContractTest, DeadLettersAreListedPerOwnerAndRedrivenOnce) {
  using Store = notification::NotificationStore;
  for (int i = 1; i <= 3; ++i) {
    Store::DeadLetterRecord d;
    d.id = "sub-" + std::to_string(i) + "/ev-" + std::to_string(i);
    d.dead_ms = 1767225600000 + i;
    d.subscription_id = "sub-" + std::to_string(i);
    d.event_id = "ev-" + std::to_string(i);
    d.request_id = "rq-" + std::to_string(i);
    d.recipient = i == 2 ? "FR-TJ-PARIS" : "DE-STA-BERLIN";
    d.recipient_state = i == 2 ? "FR" : "DE";
    d.attempts = 8;
    d.last_outcome = "http_5xx";
    TypeParam::AddDeadLetter(*this->store_, 2, d);
  }
  auto all = this->template Await<Store::DeadLetterPage>(
      [&](auto done) { this->store_->ListDeadLetters(2, 0, 10, "", std::move(done)); });
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->examined, 3);
  ASSERT_EQ(all->dead_letters.size(), 3u);
  EXPECT_EQ(all->dead_letters[0].id, "sub-1/ev-1");
  EXPECT_EQ(all->dead_letters[0].dead_ms, 1767225600001);
  EXPECT_EQ(all->dead_letters[0].attempts, 8);
  EXPECT_EQ(all->dead_letters[0].last_outcome, "http_5xx");
  EXPECT_EQ(all->dead_letters[0].recipient_state, "DE");
  auto mine = this->template Await<Store::DeadLetterPage>(
      [&](auto done) { this->store_->ListDeadLetters(2, 1, 2, "DE-STA-BERLIN", std::move(done)); });
  EXPECT_EQ(mine->examined, 2);
  ASSERT_EQ(mine->dead_letters.size(), 1u);
  EXPECT_EQ(mine->dead_letters[0].id, "sub-3/ev-3");

  auto foreign = this->template Await<bool>([&](auto done) {
    this->store_->RedriveDeadLetter(2, "sub-2/ev-2", 1767225700000, "DE-STA-BERLIN",
                                    std::move(done));
  });
  EXPECT_FALSE(*foreign);
  auto redriven = this->template Await<bool>([&](auto done) {
    this->store_->RedriveDeadLetter(2, "sub-2/ev-2", 1767225700000, "", std::move(done));
  });
  EXPECT_TRUE(*redriven);
  auto twice = this->template Await<bool>([&](auto done) {
    this->store_->RedriveDeadLetter(2, "sub-2/ev-2", 1767225700000, "", std::move(done));
  });
  EXPECT_FALSE(*twice);
  auto left = this->template Await<Store::DeadLetterPage>(
      [&](auto done) { this->store_->ListDeadLetters(2, 0, 10, "", std::move(done)); });
  EXPECT_EQ(left->dead_letters.size(), 2u);
}

REGISTER_TYPED_TEST_SUITE_P(NotificationStoreContractTest,
                            CreatedSubscriptionIsListedAndReplayedByRequestId,
                            OwnerLimitAndDeletedReplay, RotationIsTheOwnersOnly,
                            InboxReadsAfterAPositionAndOpensAtItsBounds,
                            OpeningTrimsByAgeAndLengthAndRaisesTheFloor,
                            AckReadsUpToTheCursorAndThePointerOnlyMovesOn,
                            EvidenceIsRecordedOnceForReceivedEventsOnly,
                            DeadLettersAreListedPerOwnerAndRedrivenOnce);

}  // namespace rogatory::testing
