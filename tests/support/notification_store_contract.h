#pragma once

// The contract every NotificationStore keeps, as a typed test suite: the in-memory fake runs
// it as a unit test, the Redis store against a real redis-server.

#include <limits>
#include <map>
#include <memory>
#include <set>
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

  // An event of request "rq-3" (shard 3), received at 1767225600000 with timers; a deadline
  // event when `catch_up` is "keep" or "drop".
  static common::Dedupe Dedupe(const std::string& event_id) {
    return common::Dedupe{common::EventKeys::Seen(3, "notification", event_id), "3600000"};
  }
  static Store::ReceivedEvent Received(const std::string& event_id, const std::string& catch_up,
                                       const std::string& deadline_id = "dl-1") {
    Store::ReceivedEvent r;
    r.shard = 3;
    r.dedupe = Dedupe(event_id);
    r.event_id = event_id;
    r.request_id = "rq-3";
    r.event = "bytes of " + event_id;
    r.now_ms = 1767225600000;
    r.evidence_retention = absl::Hours(1);
    r.due_ms = 1767229200000;
    r.instrument = 1;
    r.type = 50;
    r.catch_up_action = catch_up;
    r.deadline_id = catch_up.empty() ? "" : deadline_id;
    r.catch_up_limit = 64;
    return r;
  }
  absl::StatusOr<Store::ReceiveResult> Receive(const Store::ReceivedEvent& r) {
    return Await<Store::ReceiveResult>(
        [&](auto done) { store_->ReceiveEvent(r, std::move(done)); });
  }

  // A delivery of event `event_id` of request "rq-3" into DE-STA-BERLIN's inbox (shard 2,
  // where NewSub puts its subscriptions), now 1767225600000.
  static Store::InboxDelivery Delivery(const std::string& event_id,
                                       std::vector<std::string> subscription_ids = {},
                                       std::vector<std::string> matched = {}) {
    Store::InboxDelivery d;
    d.shard = 2;
    d.recipient = "DE-STA-BERLIN";
    d.recipient_state = "DE";
    d.notification_id = event_id;
    d.event = "bytes of " + event_id;
    d.event_id = event_id;
    d.request_id = "rq-3";
    d.kind = "n";
    d.states = ",DE,FR,";
    d.accept_ms = 1767225500000;
    d.now_ms = 1767225600000;
    d.min_id = "0-0";
    d.max_length = 100;
    d.marker_retention = absl::Hours(1);
    d.subscription_ids = std::move(subscription_ids);
    d.matched = std::move(matched);
    return d;
  }
  absl::StatusOr<Store::DeliveryResult> Deliver(const Store::InboxDelivery& d) {
    return Await<Store::DeliveryResult>(
        [&](auto done) { store_->DeliverToInbox(d, std::move(done)); });
  }
  std::vector<Store::InboxEntry> Inbox(const std::string& authority) {
    auto page = Await<Store::InboxPage>([&](auto done) {
      store_->ReadInbox(2, authority, notification::StreamId{}, 100, std::move(done));
    });
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->entries : std::vector<Store::InboxEntry>{};
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

// A received event, in its request's shard: once (the duplicate marker), to the parties its
// events named so far, with "accepted" evidence for each.
TYPED_TEST_P(NotificationStoreContractTest, ReceivedEventReachesItsPartiesOnce) {
  using Store = notification::NotificationStore;
  Store::ReceivedEvent r = this->Received("ev-1", "");
  r.party_updates = {{"iss", "FR-TJ-PARIS"}, {"iss_st", "FR"}, {"exe", "DE-STA-BERLIN"},
                     {"exe_st", "DE"},       {"tra", "TR-1"},  {"tra_st", "DE"}};
  r.extra_recipients = {"IT-MIN-ROMA@IT"};
  auto first = this->Receive(r);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->duplicate);
  EXPECT_EQ(first->recipients, 3);  // not the translator: not a translation job event
  EXPECT_EQ(first->caught_up, 0);
  auto again = this->Receive(r);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);

  // A later event that names no party reaches the parties the record holds.
  auto later = this->Receive(this->Received("ev-2", ""));
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->recipients, 2);

  auto evidence = this->template Await<std::optional<Store::RequestEvidence>>(
      [&](auto done) { this->store_->ReadEventEvidence(3, "ev-1", std::move(done)); });
  ASSERT_TRUE(evidence.ok() && evidence->has_value());
  EXPECT_EQ((*evidence)->issuing, "FR-TJ-PARIS");
  EXPECT_EQ((*evidence)->executing, "DE-STA-BERLIN");
  EXPECT_EQ((*evidence)->translator, "TR-1");
  std::set<std::string> accepted;
  for (const auto& record : (*evidence)->records) {
    EXPECT_EQ(record.stage, notification::v1::DELIVERY_STAGE_ACCEPTED);
    EXPECT_EQ(record.record_ms, 1767225600000);
    accepted.insert(record.recipient);
  }
  EXPECT_EQ(accepted, (std::set<std::string>{"FR-TJ-PARIS", "DE-STA-BERLIN", "IT-MIN-ROMA"}));
}

// A party that joins a request is owed the events of its deadlines still running: they are
// fanned out to it (with "accepted" evidence) in the step of the event that adds it; a met
// deadline's events are no longer owed, and an erased request owes nothing.
TYPED_TEST_P(NotificationStoreContractTest, JoiningPartyIsCaughtUpWithRunningDeadlinesOnly) {
  using Store = notification::NotificationStore;
  Store::ReceivedEvent start = this->Received("ev-start", "keep");
  start.party_updates = {{"iss", "FR-TJ-PARIS"}, {"iss_st", "FR"}};
  ASSERT_EQ(this->Receive(start)->caught_up, 0);
  ASSERT_EQ(this->Receive(this->Received("ev-other", "keep", "dl-2"))->recipients, 1);
  ASSERT_EQ(this->Receive(this->Received("ev-met", "drop", "dl-2"))->recipients, 1);

  Store::ReceivedEvent routed = this->Received("ev-routed", "");
  routed.party_updates = {{"exe", "DE-STA-BERLIN"}, {"exe_st", "DE"}};
  auto joined = this->Receive(routed);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->caught_up, 1);  // ev-start; dl-2 was met
  EXPECT_EQ(joined->recipients, 2);
  auto evidence = this->template Await<std::optional<Store::RequestEvidence>>(
      [&](auto done) { this->store_->ReadEventEvidence(3, "ev-start", std::move(done)); });
  ASSERT_TRUE(evidence.ok() && evidence->has_value());
  std::set<std::string> accepted;
  for (const auto& record : (*evidence)->records) accepted.insert(record.recipient);
  EXPECT_EQ(accepted, (std::set<std::string>{"FR-TJ-PARIS", "DE-STA-BERLIN"}));

  // A party already in the record does not join again.
  Store::ReceivedEvent repeat = this->Received("ev-repeat", "");
  repeat.party_updates = {{"exe", "DE-STA-BERLIN"}, {"exe_st", "DE"}};
  EXPECT_EQ(this->Receive(repeat)->caught_up, 0);

  auto erased = this->template Await<int>([&](auto done) {
    this->store_->EraseRequest(3, "rq-3", this->Dedupe("ev-erased"), std::move(done));
  });
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(*erased, 5);  // every event of the request
  auto twice = this->template Await<int>([&](auto done) {
    this->store_->EraseRequest(3, "rq-3", this->Dedupe("ev-erased"), std::move(done));
  });
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_EQ(*twice, -1);
  Store::ReceivedEvent central = this->Received("ev-central", "");
  central.party_updates = {{"cen", "DE-BFJ"}, {"cen_st", "DE"}};
  auto after_erase = this->Receive(central);
  ASSERT_TRUE(after_erase.ok()) << after_erase.status();
  EXPECT_EQ(after_erase->caught_up, 0);
  EXPECT_EQ(after_erase->recipients, 3);
}

// The fan-out outbox is read through its consumer group: an entry once, again only as this
// consumer's own unacknowledged entry, never after its acknowledgement. Retrieval timers
// re-announce an event its recipient has not retrieved, then escalate to another party.
TYPED_TEST_P(NotificationStoreContractTest, FanoutIsReadOnceAndTimersReannounceThenEscalate) {
  using Store = notification::NotificationStore;
  auto read = [&](bool own_first) {
    return this->template Await<Store::FanoutBatch>([&](auto done) {
      this->store_->ReadFanout({3, "c1", 10, own_first, 0}, std::move(done));
    });
  };
  EXPECT_EQ(read(false).status().code(), absl::StatusCode::kFailedPrecondition);
  for (int twice = 0; twice < 2; ++twice) {  // again: no harm
    ASSERT_TRUE(this->template Await<bool>(
                        [&](auto done) { this->store_->PrepareFanout(3, std::move(done)); })
                    .ok());
  }
  Store::ReceivedEvent r = this->Received("ev-1", "");
  r.party_updates = {
      {"iss", "FR-TJ-PARIS"}, {"iss_st", "FR"}, {"exe", "DE-STA-BERLIN"}, {"exe_st", "DE"}};
  ASSERT_TRUE(this->Receive(r).ok());

  auto first = read(false);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->own_drained);
  ASSERT_EQ(first->entries.size(), 1u);
  const Store::FanoutEntry entry = first->entries[0];
  EXPECT_FALSE(entry.gone);
  EXPECT_EQ(entry.fields.at("ev"), "bytes of ev-1");
  EXPECT_EQ(entry.fields.at("to"), "FR-TJ-PARIS@FR,DE-STA-BERLIN@DE");
  EXPECT_EQ(entry.fields.at("kind"), "n");
  EXPECT_EQ(entry.fields.at("typ"), "50");
  EXPECT_EQ(entry.fields.at("st"), ",FR,,DE,");
  EXPECT_TRUE(read(false)->entries.empty());
  auto own = read(true);
  EXPECT_FALSE(own->own_drained);
  ASSERT_EQ(own->entries.size(), 1u);
  EXPECT_EQ(own->entries[0].id, entry.id);
  auto acked = this->template Await<int>(
      [&](auto done) { this->store_->AckFanout(3, {entry.id}, std::move(done)); });
  ASSERT_TRUE(acked.ok()) << acked.status();
  EXPECT_EQ(*acked, 1);
  auto drained = read(true);
  EXPECT_TRUE(drained->entries.empty());
  EXPECT_TRUE(drained->own_drained);

  // DE retrieves; FR does not.
  ASSERT_TRUE(this->template Await<int>([&](auto done) {
                    this->store_->RecordRetrieved(3, "DE-STA-BERLIN", {"ev-1"},
                                                  absl::FromUnixMillis(r.now_ms), absl::Hours(1),
                                                  std::move(done));
                  })
                  .ok());
  auto timers = [&](int64_t now_ms) {
    return this->template Await<Store::TimerOutcome>([&](auto done) {
      this->store_->RunRetrievalTimers({3, now_ms, 100, 600000}, std::move(done));
    });
  };
  auto backlog = [&] {
    return *this->template Await<Store::Backlog>(
        [&](auto done) { this->store_->CountBacklog(3, std::move(done)); });
  };
  EXPECT_EQ(backlog().unretrieved, 1);
  // Nothing due yet: it says when the next timer is (the fan-out sleeps until then).
  auto early = timers(r.due_ms - 1);
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->handled, 0);
  EXPECT_EQ(early->next_due_ms, r.due_ms);
  EXPECT_TRUE(read(false)->entries.empty());
  auto reannouncing = timers(r.due_ms);
  ASSERT_TRUE(reannouncing.ok());
  EXPECT_EQ(reannouncing->handled, 1);
  // Re-announced: the escalation waits 600000 ms.
  EXPECT_EQ(reannouncing->next_due_ms, r.due_ms + 600000);
  auto reannounced = read(false);
  ASSERT_EQ(reannounced->entries.size(), 1u);
  EXPECT_EQ(reannounced->entries[0].fields.at("kind"), "r");
  EXPECT_EQ(reannounced->entries[0].fields.at("to"), "FR-TJ-PARIS@");
  EXPECT_EQ(reannounced->entries[0].fields.at("ev"), "bytes of ev-1");
  EXPECT_EQ(timers(r.due_ms + 599999)->handled, 0);
  EXPECT_EQ(backlog().unretrieved, 1);
  auto second = timers(r.due_ms + 600000);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->handled, 1);
  EXPECT_EQ(second->next_due_ms, std::numeric_limits<int64_t>::max()) << "no timer left";
  auto escalated = read(false);
  ASSERT_EQ(escalated->entries.size(), 1u);
  EXPECT_EQ(escalated->entries[0].fields.at("kind"), "x");
  EXPECT_EQ(escalated->entries[0].fields.at("to"), "DE-STA-BERLIN@DE");
  EXPECT_EQ(escalated->entries[0].fields.at("about"), "FR-TJ-PARIS");
  EXPECT_EQ(escalated->entries[0].fields.at("typ"), "92");
  EXPECT_EQ(backlog().unretrieved, 0);
  EXPECT_EQ(backlog().dead_letters, 0);

  auto evidence = this->template Await<std::optional<Store::RequestEvidence>>(
      [&](auto done) { this->store_->ReadEventEvidence(3, "ev-1", std::move(done)); });
  ASSERT_TRUE(evidence.ok() && evidence->has_value());
  std::set<std::pair<int, std::string>> stages;
  for (const auto& record : (*evidence)->records) stages.insert({record.stage, record.recipient});
  EXPECT_TRUE(stages.count({notification::v1::DELIVERY_STAGE_REANNOUNCED, "FR-TJ-PARIS"}));
  EXPECT_TRUE(stages.count({notification::v1::DELIVERY_STAGE_ESCALATED, "FR-TJ-PARIS"}));
  EXPECT_FALSE(stages.count({notification::v1::DELIVERY_STAGE_REANNOUNCED, "DE-STA-BERLIN"}));
}

TYPED_TEST_P(NotificationStoreContractTest, DeliveryAddsTheEntryAndQueuesTheMatchedJobsOnly) {
  using Outcome = notification::NotificationStore::DeliveryOutcome;
  ASSERT_TRUE(this->Create(this->NewSub("sub-a")).ok());
  ASSERT_TRUE(this->Create(this->NewSub("sub-b")).ok());
  // The caller filtered: sub-a matches, sub-b does not.
  auto delivered = this->Deliver(this->Delivery("ev-1", {"sub-a", "sub-b"}, {"sub-a"}));
  ASSERT_TRUE(delivered.ok()) << delivered.status();
  EXPECT_EQ(delivered->outcome, Outcome::kDelivered);
  EXPECT_EQ(delivered->cursor, "1767225600000-0");
  EXPECT_EQ(delivered->jobs, 1);
  // Both match the next one; a reannouncement queues no webhook and checks no subscription.
  auto both = this->Deliver(this->Delivery("ev-2", {"sub-a", "sub-b"}, {"sub-a", "sub-b"}));
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->jobs, 2);
  auto again = this->Delivery("ev-1");
  again.notification_id = "ev-1:r";
  again.kind = "r";
  auto reannounced = this->Deliver(again);
  ASSERT_TRUE(reannounced.ok()) << reannounced.status();
  EXPECT_EQ(reannounced->outcome, Outcome::kDelivered);
  EXPECT_EQ(reannounced->jobs, 0);

  const auto entries = this->Inbox("DE-STA-BERLIN");
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].cursor, "1767225600000-0");
  EXPECT_EQ(entries[0].event, "bytes of ev-1");
  EXPECT_EQ(entries[0].states, ",DE,FR,");
  EXPECT_EQ(entries[0].recipient_state, "DE");
  EXPECT_EQ(entries[0].accept_ms, 1767225500000);
  EXPECT_FALSE(entries[0].reannouncement);
  EXPECT_EQ(entries[1].cursor, "1767225600000-1");  // the same ms: the next sequence
  EXPECT_TRUE(entries[2].reannouncement);
  // Acknowledging names the delivered event and its request.
  auto unacked =
      this->template Await<std::vector<notification::NotificationStore::Unacked>>([&](auto done) {
        this->store_->ReadUnacked(2, "DE-STA-BERLIN", entries[0].cursor, 10, std::move(done));
      });
  ASSERT_TRUE(unacked.ok() && unacked->size() == 1u);
  EXPECT_EQ((*unacked)[0].event_id, "ev-1");
  EXPECT_EQ((*unacked)[0].request_id, "rq-3");
}

TYPED_TEST_P(NotificationStoreContractTest, DuplicateDeliveryIsRefusedAndAddsNothing) {
  using Outcome = notification::NotificationStore::DeliveryOutcome;
  ASSERT_TRUE(this->Create(this->NewSub("sub-a")).ok());
  auto first = this->Deliver(this->Delivery("ev-1", {"sub-a"}, {"sub-a"}));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->outcome, Outcome::kDelivered);
  auto second = this->Deliver(this->Delivery("ev-1", {"sub-a"}, {"sub-a"}));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->outcome, Outcome::kDuplicate);
  EXPECT_EQ(second->jobs, 0);
  // Even with stale subscriptions: the notification is in, so there is nothing to retry.
  auto stale = this->Deliver(this->Delivery("ev-1"));
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_EQ(stale->outcome, Outcome::kDuplicate);
  EXPECT_EQ(this->Inbox("DE-STA-BERLIN").size(), 1u);
}

TYPED_TEST_P(NotificationStoreContractTest, DeliveryWaitsForTheBatchsPreviousOneToTheInbox) {
  using Outcome = notification::NotificationStore::DeliveryOutcome;
  auto second = this->Delivery("ev-2");
  second.previous_notification_id = "ev-1";
  auto blocked = this->Deliver(second);
  ASSERT_TRUE(blocked.ok()) << blocked.status();
  EXPECT_EQ(blocked->outcome, Outcome::kBlocked);
  EXPECT_TRUE(this->Inbox("DE-STA-BERLIN").empty());

  ASSERT_EQ(this->Deliver(this->Delivery("ev-1"))->outcome, Outcome::kDelivered);
  auto after = this->Deliver(second);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->outcome, Outcome::kDelivered);
  const auto entries = this->Inbox("DE-STA-BERLIN");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].event, "bytes of ev-1");
  EXPECT_EQ(entries[1].event, "bytes of ev-2");
}

TYPED_TEST_P(NotificationStoreContractTest, ChangedSubscriptionsAreAnsweredRetryWithTheCurrentIds) {
  using Outcome = notification::NotificationStore::DeliveryOutcome;
  using Deleted = notification::NotificationStore::DeleteOutcome;
  ASSERT_TRUE(this->Create(this->NewSub("sub-b")).ok());
  ASSERT_TRUE(this->Create(this->NewSub("sub-a")).ok());
  // The caller knew none: answered with the current ones, sorted; nothing written.
  auto retry = this->Deliver(this->Delivery("ev-1"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->outcome, Outcome::kRetry);
  EXPECT_EQ(retry->subscription_ids, (std::vector<std::string>{"sub-a", "sub-b"}));
  EXPECT_TRUE(this->Inbox("DE-STA-BERLIN").empty());

  ASSERT_EQ(this->template Await<Deleted>([&](auto done) {
                  this->store_->DeleteSubscription(2, "DE-STA-BERLIN", "sub-b", std::move(done));
                })
                .value_or(Deleted::kAbsent),
            Deleted::kDeleted);
  auto deleted = this->Deliver(this->Delivery("ev-1", {"sub-a", "sub-b"}, {"sub-b"}));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->outcome, Outcome::kRetry);
  EXPECT_EQ(deleted->subscription_ids, (std::vector<std::string>{"sub-a"}));
  EXPECT_TRUE(this->Inbox("DE-STA-BERLIN").empty());

  auto delivered = this->Deliver(this->Delivery("ev-1", {"sub-a"}, {"sub-a"}));
  ASSERT_TRUE(delivered.ok()) << delivered.status();
  EXPECT_EQ(delivered->outcome, Outcome::kDelivered);
  EXPECT_EQ(delivered->jobs, 1);
}

TYPED_TEST_P(NotificationStoreContractTest, DeliveryTrimsTheInboxByAgeAndLength) {
  using Store = notification::NotificationStore;
  const std::string who = "DE-STA-BERLIN";
  for (uint64_t i = 1; i <= 4; ++i) {
    TypeParam::AddInboxEntry(*this->store_, 2, who,
                             this->Entry(1000 * i, 0, "ev" + std::to_string(i)),
                             "e" + std::to_string(i), "rq-1");
  }
  // Entries before 2000 are too old; with the new one, at most 2 are kept.
  auto d = this->Delivery("ev-5");
  d.min_id = "2000-0";
  d.max_length = 2;
  ASSERT_EQ(this->Deliver(d)->outcome, Store::DeliveryOutcome::kDelivered);
  const auto entries = this->Inbox(who);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].cursor, "4000-0");
  EXPECT_EQ(entries[1].event, "bytes of ev-5");
  auto bounds = this->template Await<Store::InboxBounds>(
      [&](auto done) { this->store_->OpenInbox(2, who, "0-0", 100, std::move(done)); });
  ASSERT_TRUE(bounds.ok()) << bounds.status();
  EXPECT_EQ(bounds->floor.ToString(), "3000-0");
}

REGISTER_TYPED_TEST_SUITE_P(
    NotificationStoreContractTest, CreatedSubscriptionIsListedAndReplayedByRequestId,
    OwnerLimitAndDeletedReplay, RotationIsTheOwnersOnly,
    InboxReadsAfterAPositionAndOpensAtItsBounds, OpeningTrimsByAgeAndLengthAndRaisesTheFloor,
    AckReadsUpToTheCursorAndThePointerOnlyMovesOn, EvidenceIsRecordedOnceForReceivedEventsOnly,
    DeadLettersAreListedPerOwnerAndRedrivenOnce, ReceivedEventReachesItsPartiesOnce,
    JoiningPartyIsCaughtUpWithRunningDeadlinesOnly, FanoutIsReadOnceAndTimersReannounceThenEscalate,
    DeliveryAddsTheEntryAndQueuesTheMatchedJobsOnly, DuplicateDeliveryIsRefusedAndAddsNothing,
    DeliveryWaitsForTheBatchsPreviousOneToTheInbox,
    ChangedSubscriptionsAreAnsweredRetryWithTheCurrentIds, DeliveryTrimsTheInboxByAgeAndLength);

}  // namespace rogatory::testing
