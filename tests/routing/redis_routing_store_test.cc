// RedisRoutingStore on a real redis-server: decisions and their events, job creation from
// either order of events, queue order, claims under contention, leases, failures,
// dead letters and cancellation.
#include "redis_routing_store.h"

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/metrics.h"
#include "routing_background.h"

namespace rogatory::routing {
namespace {

using common::v1::Event;
using rogatory::testing::Await;
using ::testing::HasSubstr;

constexpr int kShards = 16;
const absl::Time kStart = absl::FromUnixSeconds(1767225600);

common::RedisClient& Client() { return rogatory::testing::SharedRedisClient(); }

class RoutingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(common::RunRedisCommand(Client(), {"FLUSHALL"}).ok()); }

  std::string NewRequestId(int shard) {
    return common::Sharding::MakeId("rq", shard, kStart + absl::Milliseconds(++counter_));
  }

  Event Trigger(const std::string& rid, common::v1::EventType type) {
    Event e;
    e.set_event_id(common::NewUlid(kStart));
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

  v1::RoutingDecision Translate(const std::string& rid, const std::string& target) {
    v1::RoutingDecision d;
    d.set_request_id(rid);
    d.set_translation_required(true);
    d.set_target_language(target);
    d.mutable_competent_authority()->set_authority_id("BE-PROSECUTOR");
    d.set_channel(common::v1::CHANNEL_DIRECT_JUDICIAL);
    d.set_registry_version("test@1");
    return d;
  }

  void Decide(const std::string& rid, const v1::RoutingDecision& d,
              common::v1::RequestStatus status = common::v1::REQUEST_STATUS_TRANSLATION_PENDING) {
    Event e = Trigger(rid, common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
    auto r = Await<Outcome>(
        [&](auto cb) { store_.RecordDecision(e, d, status, DedupeFor(e), kStart, std::move(cb)); });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  absl::StatusOr<Outcome> AddDocument(const std::string& rid, const std::string& doc,
                                      const std::string& lang, Event* out = nullptr) {
    Event e = Trigger(rid, common::v1::EVENT_TYPE_DOCUMENT_ADDED);
    e.mutable_document()->set_document_id(doc);
    e.mutable_document()->set_language(lang);
    e.mutable_document()->set_sha256(std::string(64, 'a'));
    if (out) *out = e;
    return Await<Outcome>(
        [&](auto cb) { store_.AddDocument(e, DedupeFor(e), kStart, std::move(cb)); });
  }

  absl::StatusOr<v1::TranslationJob> Claim(const std::string& who, absl::Time now,
                                           absl::Duration lease = absl::Minutes(30)) {
    ClaimSpec spec{who, {{"es", "nl"}}, lease, ""};
    return Await<v1::TranslationJob>([&](auto cb) { store_.Claim(spec, now, std::move(cb)); });
  }

  absl::StatusOr<CompleteResult> Complete(const v1::TranslationJob& j, const std::string& who,
                                          absl::Time now, const std::string& doc = "doc-nl") {
    return Await<CompleteResult>([&](auto cb) {
      store_.Complete(j.id(), j.lease_token(), who, doc, std::string(64, 'b'), now, std::move(cb));
    });
  }

  // The events routing wrote to its outbox in a shard, in order.
  std::vector<Event> Outbox(int shard) {
    auto r = common::RunRedisCommand(
        Client(), {"XRANGE", common::EventKeys::Outbox(shard, "routing"), "-", "+"});
    std::vector<Event> out;
    if (!r.ok()) return out;
    for (const auto& entry : r->elements) {
      const auto& fields = entry.elements[1].elements;
      Event e;
      EXPECT_TRUE(e.ParseFromString(fields[1].str));
      out.push_back(e);
    }
    return out;
  }
  std::vector<Event> OutboxOf(const std::string& rid) {
    return Outbox(*sharding_.ShardOf("rq", rid));
  }

  // Queues one job `source`>`target` for a new request in `shard`, with a deadline in `days`
  // days (none when 0). Returns the request id.
  std::string QueueJob(int shard, int days, const std::string& source = "es",
                       const std::string& target = "nl") {
    const std::string rid = NewRequestId(shard);
    Event submitted = Trigger(rid, common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
    submitted.mutable_request()->set_source_language(source);
    auto decided = Await<Outcome>([&](auto cb) {
      store_.RecordDecision(submitted, Translate(rid, target),
                            common::v1::REQUEST_STATUS_TRANSLATION_PENDING, DedupeFor(submitted),
                            kStart, std::move(cb));
    });
    EXPECT_TRUE(decided.ok()) << decided.status();
    EXPECT_TRUE(AddDocument(rid, "doc-1", source).ok());
    if (days > 0) {
      Event e = Trigger(rid, common::v1::EVENT_TYPE_DEADLINE_STARTED);
      e.mutable_deadline()->set_deadline_id("dl-1");
      const absl::Time due = kStart + absl::Hours(24 * days);
      *e.mutable_deadline()->mutable_due_time() =
          google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(due));
      EXPECT_TRUE(Await<Outcome>([&](auto cb) {
                    store_.UpdateDeadline(e, due, DedupeFor(e), std::move(cb));
                  }).ok());
    }
    return rid;
  }

  common::Sharding sharding_{kShards};
  RedisRoutingStore store_{Client(), sharding_};
  common::v1::Urgency urgency_ = common::v1::URGENCY_NORMAL;
  int counter_ = 0;
};

TEST_F(RoutingStoreTest, DecisionEmitsRoutingDecidedAndQueuesKnownSourceDocuments) {
  const std::string rid = NewRequestId(3);
  ASSERT_TRUE(AddDocument(rid, "doc-1", "es").ok());
  ASSERT_TRUE(AddDocument(rid, "doc-2", "fr").ok());  // not the source language: no job
  Decide(rid, Translate(rid, "nl"));

  auto events = OutboxOf(rid);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), common::v1::EVENT_TYPE_ROUTING_DECIDED);
  EXPECT_EQ(events[0].status(), common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  EXPECT_EQ(events[0].sequence(), 1);
  EXPECT_EQ(events[0].request_id(), rid);
  EXPECT_EQ(events[0].source(), "routing");
  EXPECT_EQ(events[0].trace_id(), "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(events[0].actor().service(), "rogatory-routing");
  EXPECT_EQ(events[0].routing_decided().target_language(), "nl");
  EXPECT_EQ(events[0].routing_decided().competent_authority().authority_id(), "BE-PROSECUTOR");
  EXPECT_EQ(google::protobuf::util::TimeUtil::TimestampToMilliseconds(events[0].occur_time()),
            absl::ToUnixMillis(kStart));
  EXPECT_EQ(events[1].type(), common::v1::EVENT_TYPE_TRANSLATION_JOB_QUEUED);
  EXPECT_EQ(events[1].sequence(), 2);
  EXPECT_EQ(events[1].translation_job().document_id(), "doc-1");
  EXPECT_NE(events[0].event_id(), events[1].event_id());
  EXPECT_EQ(events[1].event_id().size(), 26u);

  auto jobs = Await<std::vector<v1::TranslationJob>>(
      [&](auto cb) { store_.ListJobsOfRequest(rid, std::move(cb)); });
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].status(), v1::TRANSLATION_JOB_STATUS_QUEUED);
  EXPECT_EQ((*jobs)[0].source_language(), "es");
  EXPECT_EQ((*jobs)[0].target_language(), "nl");
  EXPECT_EQ(*sharding_.ShardOf("tj", (*jobs)[0].id()), 3);

  auto stored = Await<v1::RoutingDecision>([&](auto cb) { store_.GetDecision(rid, cb); });
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->target_language(), "nl");
}

TEST_F(RoutingStoreTest, DocumentAfterDecisionQueuesOneJobAndRepeatsChangeNothing) {
  const std::string rid = NewRequestId(1);
  Decide(rid, Translate(rid, "nl"));
  Event first;
  auto r = AddDocument(rid, "doc-1", "es", &first);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, Outcome::kHandled);
  // The same event again: a duplicate.
  auto again = Await<Outcome>(
      [&](auto cb) { store_.AddDocument(first, DedupeFor(first), kStart, std::move(cb)); });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, Outcome::kDuplicate);
  // Another event for the same document: still one job.
  ASSERT_TRUE(AddDocument(rid, "doc-1", "es").ok());
  auto jobs = Await<std::vector<v1::TranslationJob>>(
      [&](auto cb) { store_.ListJobsOfRequest(rid, std::move(cb)); });
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 1u);
  EXPECT_EQ(OutboxOf(rid).size(), 2u);  // ROUTING_DECIDED, one JOB_QUEUED
}

TEST_F(RoutingStoreTest, ClaimsTakeUrgentFirstThenTheEarliestDeadline) {
  const std::string late = NewRequestId(2), soon = NewRequestId(7), urgent = NewRequestId(9);
  for (const auto& rid : {late, soon}) {
    Decide(rid, Translate(rid, "nl"));
    ASSERT_TRUE(AddDocument(rid, "d", "es").ok());
  }
  urgency_ = common::v1::URGENCY_URGENT;
  Decide(urgent, Translate(urgent, "nl"));
  ASSERT_TRUE(AddDocument(urgent, "d", "es").ok());
  // Deadlines: `late` in 30 days, `soon` in 5 days (arrived after the jobs were queued).
  for (auto [rid, days] : {std::pair{late, 30}, std::pair{soon, 5}}) {
    Event e = Trigger(rid, common::v1::EVENT_TYPE_DEADLINE_STARTED);
    e.mutable_deadline()->set_deadline_id("dl-1");
    const absl::Time due = kStart + absl::Hours(24 * days);  // lambdas cannot capture bindings
    *e.mutable_deadline()->mutable_due_time() =
        google::protobuf::util::TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(due));
    ASSERT_TRUE(Await<Outcome>([&](auto cb) {
                  store_.UpdateDeadline(e, due, DedupeFor(e), std::move(cb));
                }).ok());
  }
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    auto j = Claim("XL-1", kStart);
    ASSERT_TRUE(j.ok()) << j.status();
    order.push_back(j->request_id());
  }
  EXPECT_EQ(order, (std::vector<std::string>{urgent, soon, late}));
  EXPECT_EQ(Claim("XL-1", kStart).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RoutingStoreTest, SixteenConcurrentClaimersCompleteAThousandJobsExactlyOnce) {
  constexpr int kRequests = 50, kDocsPerRequest = 20, kJobs = kRequests * kDocsPerRequest;
  std::vector<std::string> rids;
  for (int i = 0; i < kRequests; ++i) {
    rids.push_back(NewRequestId(i % kShards));
    Decide(rids.back(), Translate(rids.back(), "nl"));
  }
  {
    // Queue the documents concurrently, as deliveries would.
    std::atomic<int> pending{kJobs};
    absl::Notification all;
    for (int i = 0; i < kJobs; ++i) {
      Event e = Trigger(rids[i % kRequests], common::v1::EVENT_TYPE_DOCUMENT_ADDED);
      e.mutable_document()->set_document_id(absl::StrCat("doc-", i));
      e.mutable_document()->set_language("es");
      store_.AddDocument(e, DedupeFor(e), kStart, [&](absl::StatusOr<Outcome> r) {
        EXPECT_TRUE(r.ok()) << r.status();
        if (--pending == 0) all.Notify();
      });
    }
    all.WaitForNotification();
  }

  absl::Mutex mu;
  std::map<std::string, int> completions;  // job id -> successful completions
  std::atomic<int> claims{0};
  std::vector<std::thread> claimers;
  for (int t = 0; t < 16; ++t) {
    claimers.emplace_back([&, t] {
      const std::string who = absl::StrCat("XL-", t);
      while (true) {
        auto j = Claim(who, kStart);
        if (!j.ok()) {
          EXPECT_EQ(j.status().code(), absl::StatusCode::kNotFound) << j.status();
          return;
        }
        ++claims;
        auto c = Complete(*j, who, kStart);
        EXPECT_TRUE(c.ok()) << c.status();
        if (c.ok()) {
          absl::MutexLock lock(&mu);
          ++completions[j->id()];
        }
      }
    });
  }
  for (auto& t : claimers) t.join();

  EXPECT_EQ(claims.load(), kJobs);
  EXPECT_EQ(static_cast<int>(completions.size()), kJobs);
  for (const auto& [id, n] : completions) EXPECT_EQ(n, 1) << id;
  int forwarded = 0, completed_events = 0;
  for (int s = 0; s < kShards; ++s) {
    for (const auto& e : Outbox(s)) {
      if (e.type() != common::v1::EVENT_TYPE_TRANSLATION_JOB_COMPLETED) continue;
      ++completed_events;
      if (e.status() == common::v1::REQUEST_STATUS_FORWARDED) ++forwarded;
    }
  }
  EXPECT_EQ(completed_events, kJobs);
  EXPECT_EQ(forwarded, kRequests);  // the last job of each request moves it on
  for (const auto& rid : rids) {
    auto jobs = Await<std::vector<v1::TranslationJob>>(
        [&](auto cb) { store_.ListJobsOfRequest(rid, std::move(cb)); });
    ASSERT_TRUE(jobs.ok());
    ASSERT_EQ(static_cast<int>(jobs->size()), kDocsPerRequest);
    for (const auto& j : *jobs) EXPECT_EQ(j.status(), v1::TRANSLATION_JOB_STATUS_COMPLETED);
  }
}

TEST_F(RoutingStoreTest, ExpiredLeaseReturnsTheJobAndTheFirstTranslatorsLateCompletionIsRefused) {
  const std::string rid = NewRequestId(4);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "d", "es").ok());
  auto first = Claim("XL-SLOW", kStart, absl::Minutes(1));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->lease_token(), 1);
  EXPECT_EQ(Claim("XL-FAST", kStart).status().code(), absl::StatusCode::kNotFound);

  const absl::Time later = kStart + absl::Minutes(2);
  auto swept = Await<SweepResult>(
      [&](auto cb) { store_.SweepExpiredLeases(4, 3, 100, later, std::move(cb)); });
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->expired, 1);

  auto second = Claim("XL-FAST", later);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->id(), first->id());
  EXPECT_EQ(second->lease_token(), 2);
  EXPECT_EQ(second->attempts(), 2);
  ASSERT_TRUE(Complete(*second, "XL-FAST", later).ok());

  // The job is XL-FAST's now: to XL-SLOW it answers as a missing job does (issue 16,
  // item 15), whatever token XL-SLOW presents.
  auto late = Complete(*first, "XL-SLOW", later, "doc-slow");
  EXPECT_EQ(late.status().code(), absl::StatusCode::kNotFound);
  auto beat = Await<v1::TranslationJob>([&](auto cb) {
    store_.Heartbeat(first->id(), first->lease_token(), "XL-SLOW", absl::ZeroDuration(), later,
                     std::move(cb));
  });
  EXPECT_EQ(beat.status().code(), absl::StatusCode::kNotFound);
  auto job = Await<v1::TranslationJob>([&](auto cb) { store_.GetJob(first->id(), cb); });
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->translated_document_id(), "doc-nl");
  EXPECT_EQ(job->translated_document_sha256(), std::string(64, 'b'));
}

TEST_F(RoutingStoreTest, LeaseRunOutIsRefusedEvenBeforeTheSweeperRuns) {
  const std::string rid = NewRequestId(4);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "d", "es").ok());
  auto j = Claim("XL-1", kStart, absl::Minutes(1));
  ASSERT_TRUE(j.ok());
  // Heartbeat within the lease extends it.
  auto beat = Await<v1::TranslationJob>([&](auto cb) {
    store_.Heartbeat(j->id(), j->lease_token(), "XL-1", absl::ZeroDuration(),
                     kStart + absl::Seconds(50), std::move(cb));
  });
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_TRUE(Complete(*j, "XL-1", kStart + absl::Seconds(100)).ok());
  auto k = Claim("XL-1", kStart);  // nothing left
  EXPECT_EQ(k.status().code(), absl::StatusCode::kNotFound);

  const std::string rid2 = NewRequestId(5);
  Decide(rid2, Translate(rid2, "nl"));
  ASSERT_TRUE(AddDocument(rid2, "d", "es").ok());
  auto j2 = Claim("XL-1", kStart, absl::Minutes(1));
  ASSERT_TRUE(j2.ok());
  EXPECT_EQ(Complete(*j2, "XL-1", kStart + absl::Minutes(2)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RoutingStoreTest, OnlyTheHolderActsAndACompletionReplaysForTheSameDocument) {
  const std::string rid = NewRequestId(6);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "d", "es").ok());
  auto j = Claim("XL-1", kStart, absl::Hours(3));
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(Complete(*j, "XL-OTHER", kStart).status().code(), absl::StatusCode::kNotFound);
  auto c = Complete(*j, "XL-1", kStart + absl::Hours(1));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->replayed);
  EXPECT_TRUE(c->request_done);
  EXPECT_EQ(c->turnaround, absl::Hours(1));
  auto again = Complete(*j, "XL-1", kStart + absl::Hours(2));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(Complete(*j, "XL-1", kStart, "another-doc").status().code(),
            absl::StatusCode::kAlreadyExists);
  int forwarded = 0;
  for (const auto& e : OutboxOf(rid)) {
    if (e.status() == common::v1::REQUEST_STATUS_FORWARDED) ++forwarded;
  }
  EXPECT_EQ(forwarded, 1);
}

TEST_F(RoutingStoreTest, RetryableFailuresRequeueUntilTheAttemptsRunOutThenDeadLetter) {
  const std::string rid = NewRequestId(8);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "d", "es").ok());
  auto fail = [&](const v1::TranslationJob& j) {
    return Await<FailResult>([&](auto cb) {
      store_.Fail(j.id(), j.lease_token(), "XL-1", "VENDOR_DOWN", true, 2, kStart, std::move(cb));
    });
  };
  auto j1 = Claim("XL-1", kStart);
  ASSERT_TRUE(j1.ok());
  auto f1 = fail(*j1);
  ASSERT_TRUE(f1.ok());
  EXPECT_FALSE(f1->dead_lettered);
  EXPECT_EQ(f1->job.status(), v1::TRANSLATION_JOB_STATUS_QUEUED);
  auto replay = fail(*j1);
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->replayed);
  auto j2 = Claim("XL-1", kStart);
  ASSERT_TRUE(j2.ok());
  auto f2 = fail(*j2);
  ASSERT_TRUE(f2.ok());
  EXPECT_TRUE(f2->dead_lettered);
  EXPECT_EQ(f2->job.status(), v1::TRANSLATION_JOB_STATUS_FAILED);
  EXPECT_EQ(Claim("XL-1", kStart).status().code(), absl::StatusCode::kNotFound);

  auto stats = Await<ShardStats>([&](auto cb) { store_.Stats(8, cb); });
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead_letters, 1);
  ASSERT_EQ(stats->pairs.size(), 1u);
  EXPECT_EQ(stats->pairs[0].depth, 0);
  auto events = OutboxOf(rid);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), common::v1::EVENT_TYPE_TRANSLATION_JOB_FAILED);
  EXPECT_EQ(events.back().reason_code(), "DEAD_LETTER");
  EXPECT_EQ(events.back().actor().authority().authority_id(), "XL-1");
}

TEST_F(RoutingStoreTest, ExpiredLeaseOutOfAttemptsIsDeadLettered) {
  const std::string rid = NewRequestId(8);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "d", "es").ok());
  ASSERT_TRUE(Claim("XL-1", kStart, absl::Minutes(1)).ok());
  auto swept = Await<SweepResult>([&](auto cb) {
    store_.SweepExpiredLeases(8, 1, 100, kStart + absl::Minutes(5), std::move(cb));
  });
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(swept->expired, 1);
  EXPECT_EQ(swept->dead_lettered, 1);
}

// Issue 16, item 15: a translator asking about a job it does not hold gets the answer of a
// job that does not exist (same code, same message), whatever lease token it presents, in
// every state of the job: queued, claimed by another, completed or failed by another.
TEST_F(RoutingStoreTest, AnotherTranslatorsJobAnswersLikeAMissingOneWhateverTheToken) {
  const std::string rid = NewRequestId(7);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "d1", "es").ok());
  ASSERT_TRUE(AddDocument(rid, "d2", "es").ok());
  auto held = Claim("XL-1", kStart);
  ASSERT_TRUE(held.ok()) << held.status();
  std::string missing = held->id();
  missing.back() = missing.back() == '0' ? '1' : '0';

  // Heartbeat, Complete and Fail of `job_id` as `who` with `token`: code and message.
  auto ask = [&](const std::string& job_id, int64_t token, const std::string& who) {
    std::vector<std::string> answers;
    auto text = [](const absl::Status& s) {
      return absl::StrCat(absl::StatusCodeToString(s.code()), ": ", s.message());
    };
    answers.push_back(text(Await<v1::TranslationJob>([&](auto cb) {
                             store_.Heartbeat(job_id, token, who, absl::ZeroDuration(), kStart,
                                              std::move(cb));
                           }).status()));
    answers.push_back(text(Await<CompleteResult>([&](auto cb) {
                             store_.Complete(job_id, token, who, "doc-x", std::string(64, 'c'),
                                             kStart, std::move(cb));
                           }).status()));
    answers.push_back(text(Await<FailResult>([&](auto cb) {
                             store_.Fail(job_id, token, who, "NOPE", true, 3, kStart,
                                         std::move(cb));
                           }).status()));
    return answers;
  };
  const std::vector<std::string> absent = ask(missing, 1, "XL-2");
  ASSERT_EQ(absent.size(), 3u);
  for (const auto& a : absent) EXPECT_THAT(a, ::testing::StartsWith("NOT_FOUND"));
  const int64_t real = held->lease_token();
  auto expect_absent = [&](const std::string& state, const std::string& job_id) {
    for (int64_t token : {real, real + 1, real + 7, int64_t{1}}) {
      EXPECT_EQ(ask(job_id, token, "XL-2"), absent) << state << ", token " << token;
    }
  };
  expect_absent("claimed by XL-1", held->id());

  // The other job, queued and never claimed: nobody's job.
  auto jobs = Await<std::vector<v1::TranslationJob>>(
      [&](auto cb) { store_.ListJobsOfRequest(rid, std::move(cb)); });
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  const std::string queued = (*jobs)[0].id() == held->id() ? (*jobs)[1].id() : (*jobs)[0].id();
  expect_absent("queued", queued);

  // Completed by XL-1: its completion replays for XL-1 and for nobody else.
  ASSERT_TRUE(Complete(*held, "XL-1", kStart).ok());
  expect_absent("completed by XL-1", held->id());
  auto replay = Complete(*held, "XL-1", kStart);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_TRUE(replay->replayed);

  // Failed by XL-1 (queued again): its failure replays for XL-1 and for nobody else, and
  // XL-1 still learns that its token is stale.
  auto second = Claim("XL-1", kStart);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->id(), queued);
  auto failed = Await<FailResult>([&](auto cb) {
    store_.Fail(queued, second->lease_token(), "XL-1", "NOPE", true, 3, kStart, std::move(cb));
  });
  ASSERT_TRUE(failed.ok()) << failed.status();
  expect_absent("failed by XL-1", queued);
  auto fail_replay = Await<FailResult>([&](auto cb) {
    store_.Fail(queued, second->lease_token(), "XL-1", "NOPE", true, 3, kStart, std::move(cb));
  });
  ASSERT_TRUE(fail_replay.ok()) << fail_replay.status();
  EXPECT_TRUE(fail_replay->replayed);
  EXPECT_EQ(Await<v1::TranslationJob>([&](auto cb) {
              store_.Heartbeat(queued, second->lease_token(), "XL-1", absl::ZeroDuration(), kStart,
                               std::move(cb));
            })
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RoutingStoreTest, EndedRequestCancelsQueuedAndClaimedJobs) {
  const std::string rid = NewRequestId(10);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "a", "es").ok());
  ASSERT_TRUE(AddDocument(rid, "b", "es").ok());
  auto held = Claim("XL-1", kStart);
  ASSERT_TRUE(held.ok());
  Event end = Trigger(rid, common::v1::EVENT_TYPE_REQUEST_WITHDRAWN);
  ASSERT_TRUE(Await<Outcome>([&](auto cb) {
                store_.EndRequest(end, DedupeFor(end), kStart, std::move(cb));
              }).ok());
  EXPECT_EQ(Claim("XL-1", kStart).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Complete(*held, "XL-1", kStart).status().code(), absl::StatusCode::kFailedPrecondition);
  auto jobs = Await<std::vector<v1::TranslationJob>>(
      [&](auto cb) { store_.ListJobsOfRequest(rid, std::move(cb)); });
  ASSERT_TRUE(jobs.ok());
  for (const auto& j : *jobs) EXPECT_EQ(j.status(), v1::TRANSLATION_JOB_STATUS_CANCELLED);
  int cancelled = 0;
  for (const auto& e : OutboxOf(rid)) {
    if (e.type() == common::v1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED) {
      ++cancelled;
      EXPECT_EQ(e.reason_code(), "REQUEST_WITHDRAWN");
    }
  }
  EXPECT_EQ(cancelled, 2);
  // A document arriving after the end queues nothing.
  ASSERT_TRUE(AddDocument(rid, "c", "es").ok());
  EXPECT_EQ(Claim("XL-1", kStart).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RoutingStoreTest, UnroutableDecisionIsFlaggedForAPersonWithoutAStatus) {
  const std::string rid = NewRequestId(11);
  v1::RoutingDecision d;
  d.set_unroutable(true);
  auto* r = d.add_reasons();
  r->set_code("UNKNOWN_STATE");
  Decide(rid, d, common::v1::REQUEST_STATUS_UNSPECIFIED);
  auto events = OutboxOf(rid);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), common::v1::EVENT_TYPE_ROUTING_DECIDED);
  EXPECT_EQ(events[0].status(), common::v1::REQUEST_STATUS_UNSPECIFIED);
  EXPECT_EQ(events[0].reason_code(), "UNROUTABLE_UNKNOWN_STATE");
  auto stats = Await<ShardStats>([&](auto cb) { store_.Stats(11, cb); });
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->unroutable, 1);
}

TEST_F(RoutingStoreTest, NewDecisionIntoAnotherLanguageCancelsQueuedJobsAndQueuesNewOnes) {
  const std::string rid = NewRequestId(12);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "a", "es").ok());
  Decide(rid, Translate(rid, "fr"));
  auto jobs = Await<std::vector<v1::TranslationJob>>(
      [&](auto cb) { store_.ListJobsOfRequest(rid, std::move(cb)); });
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  std::map<std::string, v1::TranslationJobStatus> by_target;
  for (const auto& j : *jobs) by_target[j.target_language()] = j.status();
  EXPECT_EQ(by_target["nl"], v1::TRANSLATION_JOB_STATUS_CANCELLED);
  EXPECT_EQ(by_target["fr"], v1::TRANSLATION_JOB_STATUS_QUEUED);
}

TEST_F(RoutingStoreTest, RepeatedClaimWithTheSameRequestIdReturnsTheFirstJob) {
  for (const char* doc : {"a", "b"}) {
    const std::string rid = NewRequestId(13);
    Decide(rid, Translate(rid, "nl"));
    ASSERT_TRUE(AddDocument(rid, doc, "es").ok());
  }
  ClaimSpec spec{"XL-1", {{"es", "nl"}}, absl::Minutes(30), "claim-key-1"};
  auto first = Await<v1::TranslationJob>([&](auto cb) { store_.Claim(spec, kStart, cb); });
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = Await<v1::TranslationJob>([&](auto cb) { store_.Claim(spec, kStart, cb); });
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id(), first->id());
  EXPECT_EQ(again->lease_token(), first->lease_token());
  spec.request_id = "claim-key-2";
  auto other = Await<v1::TranslationJob>([&](auto cb) { store_.Claim(spec, kStart, cb); });
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->id(), first->id());
}

// Two replicas' background upkeep on one Redis: the sweeper returns an expired lease once,
// and only the replica holding the metrics lease exports the queue gauges.
TEST_F(RoutingStoreTest, SweeperReturnsExpiredJobsAndOnlyOneReplicaExportsQueueGauges) {
  const std::string rid = NewRequestId(14);
  Decide(rid, Translate(rid, "nl"));
  ASSERT_TRUE(AddDocument(rid, "a", "es").ok());
  ASSERT_TRUE(AddDocument(rid, "b", "es").ok());
  auto held = Claim("XL-1", kStart, absl::Minutes(1));
  ASSERT_TRUE(held.ok());

  common::SimulatedClock clock(kStart + absl::Minutes(5));
  common::Metrics metrics_a, metrics_b;
  RoutingMetrics routing_a(metrics_a.registry()), routing_b(metrics_b.registry());
  RoutingBackground a(store_, Client(), sharding_, clock, routing_a, 3, absl::Hours(1),
                      absl::Hours(1));
  RoutingBackground b(store_, Client(), sharding_, clock, routing_b, 3, absl::Hours(1),
                      absl::Hours(1));
  a.SweepOnce();
  b.SweepOnce();
  auto job = Await<v1::TranslationJob>([&](auto cb) { store_.GetJob(held->id(), cb); });
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->status(), v1::TRANSLATION_JOB_STATUS_QUEUED);
  const std::string both = metrics_a.Render() + metrics_b.Render();
  EXPECT_THAT(both, HasSubstr("rogatory_translation_lease_expiries_total 1\n"));
  EXPECT_THAT(both, ::testing::Not(HasSubstr("rogatory_translation_lease_expiries_total 2")));

  const bool a_leads = a.RefreshGaugesOnce();
  const bool b_leads = b.RefreshGaugesOnce();
  EXPECT_NE(a_leads, b_leads);
  const std::string leader = a_leads ? metrics_a.Render() : metrics_b.Render();
  const std::string follower = a_leads ? metrics_b.Render() : metrics_a.Render();
  EXPECT_THAT(
      leader,
      HasSubstr(
          "rogatory_translation_queue_depth{source_language=\"es\",target_language=\"nl\"} 2"));
  EXPECT_THAT(leader, HasSubstr("rogatory_translation_queue_oldest_job_age_seconds{"
                                "source_language=\"es\",target_language=\"nl\"} 300"));
  EXPECT_THAT(follower, ::testing::Not(HasSubstr("rogatory_translation_queue_depth{")));
}

// Issue 19: only the holder of the background lease touches Redis for the sweep; another
// replica's sweep round sends only the lease script (every replica used to sweep every
// shard each second).
TEST_F(RoutingStoreTest, OnlyTheBackgroundLeaseHolderSweeps) {
  common::SimulatedClock clock(kStart);
  common::Metrics metrics_a, metrics_b;
  RoutingMetrics routing_a(metrics_a.registry()), routing_b(metrics_b.registry());
  RoutingBackground a(store_, Client(), sharding_, clock, routing_a, 3, absl::Hours(1),
                      absl::Hours(1));
  ASSERT_TRUE(a.SweepRound());
  RoutingBackground b(store_, Client(), sharding_, clock, routing_b, 3, absl::Hours(1),
                      absl::Hours(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // b's first rounds are over
  ASSERT_TRUE(common::RunRedisCommand(Client(), {"CONFIG", "RESETSTAT"}).ok());
  EXPECT_FALSE(b.SweepRound());
  auto info = common::RunRedisCommand(Client(), {"INFO", "commandstats"});
  ASSERT_TRUE(info.ok());
  int64_t total = 0;
  for (absl::string_view line : absl::StrSplit(info->str, absl::ByAnyChar("\r\n"))) {
    if (!absl::ConsumePrefix(&line, "cmdstat_")) continue;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    const absl::string_view name = line.substr(0, colon);
    if (name == "info" || absl::StartsWith(name, "config")) continue;
    absl::string_view rest = line.substr(colon + 1);
    if (!absl::ConsumePrefix(&rest, "calls=")) continue;
    int64_t calls = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find(',')), &calls)) total += calls;
  }
  // The lease script: its EVALSHA and the command it runs (commandstats counts both); a sweep
  // of 16 shards would be at least 16.
  EXPECT_LE(total, 3) << "the non-holder's round";
  EXPECT_TRUE(a.SweepRound()) << "the holder renews";
}

// A production order goes to the provider's addressee, named as competent authority (with
// its region), the enforcing authority named to be told; once translated it is
// SENT_TO_PROVIDER, the status intake's lifecycle has for it (not FORWARDED).
TEST_F(RoutingStoreTest, ProductionOrderDecisionNamesAddresseeAndNotifiedAuthority) {
  const std::string rid = NewRequestId(4);
  v1::RoutingDecision d = Translate(rid, "nl");
  d.set_channel(common::v1::CHANNEL_SERVICE_PROVIDER);
  d.mutable_competent_authority()->set_authority_id("BE-EXAMPLE-PROVIDER");
  d.mutable_competent_authority()->set_region("BE-BRU");
  d.set_competent_authority_time_zone("Europe/Brussels");
  d.mutable_notified_authority()->set_authority_id("BE-EPOC-ENFORCING-AUTHORITY");
  d.mutable_notified_authority()->set_state("BE");
  Decide(rid, d);
  ASSERT_TRUE(AddDocument(rid, "doc-1", "es").ok());
  auto events = OutboxOf(rid);
  ASSERT_GE(events.size(), 1u);
  const auto& decided = events[0].routing_decided();
  EXPECT_EQ(decided.competent_authority().authority_id(), "BE-EXAMPLE-PROVIDER");
  EXPECT_EQ(decided.competent_authority().region(), "BE-BRU");
  EXPECT_EQ(decided.competent_authority_time_zone(), "Europe/Brussels");
  EXPECT_EQ(decided.notified_authority().authority_id(), "BE-EPOC-ENFORCING-AUTHORITY");
  auto job = Claim("XL-1", kStart);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(Complete(*job, "XL-1", kStart).ok());
  events = OutboxOf(rid);
  EXPECT_EQ(events.back().type(), common::v1::EVENT_TYPE_TRANSLATION_JOB_COMPLETED);
  EXPECT_EQ(events.back().status(), common::v1::REQUEST_STATUS_SENT_TO_PROVIDER);
}

// --- A translator's queue (issue 22, item 9). ---

// Queues one job es>`target` (or `source`>`target`) for a new request in `shard`, with a
// deadline in `days` days (none when 0).

TEST_F(RoutingStoreTest, ClaimableQueueWalksEveryPageInClaimOrderWithoutLossOrRepeat) {
  // 27 jobs over 9 shards: urgent and normal, with and without deadlines (ties of equal
  // score), listed 10 at a time: three pages.
  std::vector<std::string> requests;
  for (int i = 0; i < 27; ++i) {
    urgency_ = i % 3 == 0 ? common::v1::URGENCY_URGENT : common::v1::URGENCY_NORMAL;
    requests.push_back(QueueJob(i % 9, i % 4 == 0 ? 0 : 1 + i % 5));
  }
  // The order a claimer would take them in.
  std::vector<std::string> claim_order;
  {
    std::vector<v1::TranslationJob> all;
    for (const auto& rid : requests) {
      auto jobs = Await<std::vector<v1::TranslationJob>>(
          [&](auto cb) { store_.ListJobsOfRequest(rid, std::move(cb)); });
      ASSERT_TRUE(jobs.ok());
      ASSERT_EQ(jobs->size(), 1u);
      all.push_back((*jobs)[0]);
    }
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      auto key = [](const v1::TranslationJob& j) {
        const int64_t due =
            j.has_due_time()
                ? google::protobuf::util::TimeUtil::TimestampToMilliseconds(j.due_time())
                : INT64_MAX;
        return std::make_tuple(-static_cast<int>(j.urgency()), due, j.id());
      };
      return key(a) < key(b);
    });
    for (const auto& j : all) claim_order.push_back(j.id());
  }

  QueueListSpec spec;
  spec.page_size = 10;
  std::vector<std::string> listed;
  int pages = 0;
  do {
    auto page = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    ASSERT_LE(page->jobs.size(), 10u);
    for (const auto& j : page->jobs) {
      EXPECT_EQ(j.status(), v1::TRANSLATION_JOB_STATUS_QUEUED);
      listed.push_back(j.id());
    }
    spec.after = page->next;
    ASSERT_LE(pages, 5);
  } while (spec.after);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(listed, claim_order);

  // Claims between pages do not shift what follows: the walk resumes after the last id.
  spec.after.reset();
  auto first = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->next);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Claim("XL-1", kStart).ok());
  spec.after = first->next;
  auto second = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
  ASSERT_TRUE(second.ok());
  ASSERT_FALSE(second->jobs.empty());
  EXPECT_EQ(second->jobs[0].id(), claim_order[10]);
}

TEST_F(RoutingStoreTest, HeldQueueListsOnlyTheCallersLeasesUntilTheyEnd) {
  for (int i = 0; i < 4; ++i) QueueJob(i, 1 + i);
  auto a1 = Claim("XL-A", kStart);
  auto b1 = Claim("XL-B", kStart);
  auto a2 = Claim("XL-A", kStart);
  ASSERT_TRUE(a1.ok() && b1.ok() && a2.ok());
  QueueListSpec spec;
  spec.held = true;
  spec.holder = "XL-A";
  spec.page_size = 1;
  std::vector<std::string> held;
  do {
    auto page = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& j : page->jobs) {
      EXPECT_EQ(j.claimed_by(), "XL-A");
      EXPECT_EQ(j.status(), v1::TRANSLATION_JOB_STATUS_CLAIMED);
      held.push_back(j.id());
    }
    spec.after = page->next;
  } while (spec.after);
  EXPECT_EQ(held, (std::vector<std::string>{a1->id(), a2->id()}));  // most urgent first

  // Completed and failed jobs are no longer held.
  ASSERT_TRUE(Complete(*a1, "XL-A", kStart).ok());
  ASSERT_TRUE(Await<FailResult>([&](auto cb) {
                store_.Fail(a2->id(), a2->lease_token(), "XL-A", "TOO_HARD", true, 3, kStart,
                            std::move(cb));
              }).ok());
  spec.after.reset();
  auto after = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->jobs.empty());
  // A lease that runs out leaves the holder's list too.
  spec.holder = "XL-B";
  auto b_before = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
  ASSERT_TRUE(b_before.ok());
  ASSERT_EQ(b_before->jobs.size(), 1u);
  ASSERT_TRUE(Await<SweepResult>([&](auto cb) {
                store_.SweepExpiredLeases(*sharding_.ShardOf("tj", b1->id()), 3, 100,
                                          kStart + absl::Hours(2), std::move(cb));
              }).ok());
  auto b_after = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
  ASSERT_TRUE(b_after.ok());
  EXPECT_TRUE(b_after->jobs.empty());
}

TEST_F(RoutingStoreTest, QueueListingFiltersByLanguagePairUrgencyAndDueTime) {
  const std::string es_nl = QueueJob(1, 3, "es", "nl");
  const std::string fr_nl = QueueJob(2, 3, "fr", "nl");
  const std::string fr_de = QueueJob(3, 20, "fr", "de");
  urgency_ = common::v1::URGENCY_URGENT;
  const std::string fr_nl_urgent = QueueJob(4, 0, "fr", "nl");
  auto list = [&](QueueListSpec spec) {
    spec.page_size = 50;
    std::vector<std::string> rids;
    auto page = Await<QueueListPage>([&](auto cb) { store_.ListQueue(spec, std::move(cb)); });
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const auto& j : page->jobs) rids.push_back(j.request_id());
    }
    return rids;
  };
  QueueListSpec fr;
  fr.sources = {"fr"};
  EXPECT_EQ(list(fr), (std::vector<std::string>{fr_nl_urgent, fr_nl, fr_de}));
  QueueListSpec fr_to_nl;
  fr_to_nl.sources = {"FR"};
  fr_to_nl.targets = {"nl"};
  EXPECT_EQ(list(fr_to_nl), (std::vector<std::string>{fr_nl_urgent, fr_nl}));
  QueueListSpec to_de;
  to_de.targets = {"de"};
  EXPECT_EQ(list(to_de), (std::vector<std::string>{fr_de}));
  QueueListSpec urgent;
  urgent.urgency = common::v1::URGENCY_URGENT;
  EXPECT_EQ(list(urgent), (std::vector<std::string>{fr_nl_urgent}));
  QueueListSpec due_soon;
  due_soon.due_before = kStart + absl::Hours(24 * 10);
  EXPECT_EQ(list(due_soon), (std::vector<std::string>{es_nl, fr_nl}));
}

// Counts what it forwards: every Command and Eval (commands sent together share one round
// trip).
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

// Issue 17's budget: a completion costs the one round trip it cost before the scripts
// received every key (a claim on the same replica leaves what the completion would read
// first as a hint, which the script re-checks); without a hint, or with a stale one, it reads
// first and still completes exactly as before.
TEST_F(RoutingStoreTest, CompletionAfterAClaimOnTheSameReplicaTakesOneRoundTrip) {
  CountingRedisClient counting(Client());
  RedisRoutingStore replica(counting, sharding_);
  auto claim = [&](const std::string& who) {
    ClaimSpec spec{who, {{"es", "nl"}}, absl::Minutes(30), ""};
    return Await<v1::TranslationJob>([&](auto cb) { replica.Claim(spec, kStart, cb); });
  };
  auto complete = [&](RedisRoutingStore& store, const v1::TranslationJob& j,
                      const std::string& who) {
    return Await<CompleteResult>([&](auto cb) {
      store.Complete(j.id(), j.lease_token(), who, "doc-nl", std::string(64, 'b'),
                     kStart + absl::Minutes(10), cb);
    });
  };
  auto forwarded = [&](const std::string& rid) {
    int n = 0;
    for (const auto& e : OutboxOf(rid)) {
      if (e.type() == common::v1::EVENT_TYPE_TRANSLATION_JOB_COMPLETED &&
          e.status() == common::v1::REQUEST_STATUS_FORWARDED) {
        ++n;
      }
    }
    return n;
  };

  // Claimed here, completed here: one round trip, the request forwarded.
  const std::string first = QueueJob(3, 0);
  auto j1 = claim("XL-1");
  ASSERT_TRUE(j1.ok()) << j1.status();
  ASSERT_EQ(j1->request_id(), first);
  counting.Take();
  EXPECT_EQ(Complete(*j1, "XL-OTHER", kStart).status().code(), absl::StatusCode::kNotFound);
  counting.Take();  // another translator's attempt neither completes nor spends the hint
  auto c1 = complete(replica, *j1, "XL-1");
  ASSERT_TRUE(c1.ok()) << c1.status();
  EXPECT_EQ(counting.Take(), 1) << "CompleteTranslationJob after a claim on this replica";
  EXPECT_TRUE(c1->request_done);
  EXPECT_FALSE(c1->replayed);
  EXPECT_EQ(c1->job.status(), v1::TRANSLATION_JOB_STATUS_COMPLETED);
  EXPECT_EQ(forwarded(first), 1);

  // The replay has no hint: it reads first, and replays.
  auto again = complete(replica, *j1, "XL-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(forwarded(first), 1);

  // Claimed here, completed on another replica (no hint): the job, then its request's
  // jobs, then the script.
  const std::string second = QueueJob(5, 0);
  auto j2 = claim("XL-2");
  ASSERT_TRUE(j2.ok()) << j2.status();
  ASSERT_EQ(j2->request_id(), second);
  auto c2 = complete(store_, *j2, "XL-2");
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_TRUE(c2->request_done);
  EXPECT_EQ(forwarded(second), 1);

  // A stale hint (the request got another job after the claim): the script answers
  // 'retry', the completion reads and completes; the request is not done yet.
  const std::string third = QueueJob(7, 0);
  auto j3 = claim("XL-3");
  ASSERT_TRUE(j3.ok()) << j3.status();
  ASSERT_EQ(j3->request_id(), third);
  ASSERT_TRUE(AddDocument(third, "doc-2", "es").ok());
  counting.Take();
  auto c3 = complete(replica, *j3, "XL-3");
  ASSERT_TRUE(c3.ok()) << c3.status();
  // The counter counts commands: the request's jobs and forward status are two commands
  // sent at once (one round trip).
  EXPECT_EQ(counting.Take(), 5) << "the hinted script, then the job, its request's jobs and "
                                   "forward status, the script";
  EXPECT_FALSE(c3->request_done);
  EXPECT_EQ(forwarded(third), 0);
}

// A claimable listing that names both languages names its queues: per shard only the page
// script, and the listed jobs' read where the shard has some (the shard's language pairs are
// read only when a language is left open). Same jobs either way.
TEST_F(RoutingStoreTest, ClaimableListingNamingBothLanguagesReadsNoPairsFirst) {
  const std::string a = QueueJob(2, 0);
  const std::string b = QueueJob(9, 3);
  QueueJob(4, 0, "fr", "nl");  // another pair: not listed
  CountingRedisClient counting(Client());
  RedisRoutingStore replica(counting, sharding_);
  auto list = [&](QueueListSpec spec) {
    auto page = Await<QueueListPage>([&](auto cb) { replica.ListQueue(spec, cb); });
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<std::string> ids;
    if (page.ok()) {
      for (const auto& j : page->jobs) ids.push_back(j.request_id());
    }
    return ids;
  };
  QueueListSpec named;
  named.sources = {"ES", "es"};
  named.targets = {"nl"};
  counting.Take();
  EXPECT_EQ(list(named), (std::vector<std::string>{b, a}));
  EXPECT_EQ(counting.Take(), kShards + 2) << "a page script per shard, the listed jobs of two";

  QueueListSpec open;
  open.sources = {"es"};
  EXPECT_EQ(list(open), (std::vector<std::string>{b, a}));
  // The pairs of every shard, then a page script only where a listed pair is queued (two
  // shards), and their listed jobs.
  EXPECT_EQ(counting.Take(), kShards + 2 + 2) << "the pairs, then the two shards' scripts";
}

}  // namespace
}  // namespace rogatory::routing
