// Retention and erasure (issue 8 point 5) on a real redis-server, driven by a simulated
// clock: closed requests keep their personal data for retention-closed, then become
// tombstones, then disappear; open requests never go; a sweeper stopped between steps or
// before its audit resumes; every erasure is audited; idempotency records expire.
#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "intake_harness.h"
#include "prometheus/registry.h"
#include "redis_document_store.h"
#include "redis_request_store.h"
#include "redis_server.h"
#include "retention.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using testing::IntakeHarness;

// Records what it is given; fails while `failing` is set.
class RecordingAuditor final : public common::Auditor {
 public:
  void Record(common::AuditRecord record, std::function<void(absl::Status)> done) override {
    bool failing = false;
    {
      absl::MutexLock lock(&mu_);
      failing = failing_;
      if (!failing) records_.push_back(std::move(record));
    }
    done(failing ? absl::UnavailableError("audit log down") : absl::OkStatus());
  }
  void SetFailing(bool failing) {
    absl::MutexLock lock(&mu_);
    failing_ = failing;
  }
  std::vector<common::AuditRecord> records() const {
    absl::MutexLock lock(&mu_);
    return records_;
  }

 private:
  mutable absl::Mutex mu_;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<common::AuditRecord> records_ ABSL_GUARDED_BY(mu_);
};

const absl::Duration kClosed = absl::Hours(24 * 730);
const absl::Duration kTombstone = absl::Hours(24 * 365 * 5);

class RetentionRedisTest : public ::testing::Test {
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

  std::unique_ptr<RetentionSweeper> NewSweeper(common::Auditor& auditor) {
    return std::make_unique<RetentionSweeper>(store_, &documents_, auditor, h_.clock(),
                                              RetentionSettings{kClosed, kTombstone, 100},
                                              &metrics_);
  }

  // A complete EIO, submitted and withdrawn by its issuer: final.
  v1::Request SubmitAndWithdraw() {
    v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
    v1::WithdrawRequestRequest w;
    w.set_id(r.id());
    w.set_reason_code("NO_LONGER_NEEDED");
    v1::Request out;
    grpc::Status s = h_.Withdraw(w, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  // The issuer pays for the documents AddDocument stores.
  static DocumentQuota Quota() { return DocumentQuota{"FR-TJ-PARIS-JI", 1 << 20, 1 << 20}; }
  // Bytes of documents charged to the issuer (rg:{sN}:docbytes:authority, over every shard).
  int64_t IssuerBytes() {
    int64_t total = 0;
    for (int shard = 0; shard < 16; ++shard) {
      auto r = common::RunRedisCommand(
          *client_, {"HGET", RedisDocumentStore::AuthorityUsageKey(shard), "FR-TJ-PARIS-JI"});
      int64_t n = 0;
      if (r.ok() && !r->is_nil()) {
        EXPECT_TRUE(absl::SimpleAtoi(r->str, &n));
      }
      total += n;
    }
    return total;
  }

  // Stages and commits one document of the request, straight through the document store.
  std::string AddDocument(const std::string& request_id) {
    const std::string doc_id = absl::StrCat(request_id, "-d1");
    EXPECT_TRUE(testing::Await<bool>([&](auto done) {
                  documents_.Stage(request_id, doc_id, "secret bytes", 12, Quota(),
                                   std::move(done));
                }).ok());
    auto snap = testing::Await<Snapshot>(
        [&](auto done) { store_.Load(request_id, std::nullopt, std::move(done)); });
    EXPECT_TRUE(snap.ok());
    v1::Document d;
    d.set_id(doc_id);
    d.set_request_id(request_id);
    d.set_title("Witness statement of Anna Testperson");
    d.set_size_bytes(12);
    Mutation m;
    m.id = request_id;
    m.expected_version = snap->version;
    m.new_version = snap->version + 1;
    m.updated_ms = absl::ToUnixMillis(h_.clock().Now());
    EXPECT_TRUE(testing::Await<MutationOutcome>([&](auto done) {
                  documents_.Commit(d, std::move(m), Quota(), std::move(done));
                }).ok());
    return doc_id;
  }

  int Shard(const std::string& id) { return *common::Sharding(16).ShardOf("rq", id); }
  bool Exists(const std::string& key) {
    auto r = common::RunRedisCommand(*client_, {"EXISTS", key});
    return r.ok() && r->integer == 1;
  }
  // Every key naming the request, and every sorted set holding it (test only: KEYS on a
  // small test database).
  std::vector<std::string> Traces(const std::string& id) {
    std::vector<std::string> found;
    auto keys = common::RunRedisCommand(*client_, {"KEYS", "*"});
    EXPECT_TRUE(keys.ok());
    for (const auto& k : keys->elements) {
      if (absl::StrContains(k.str, id)) found.push_back(k.str);
      auto type = common::RunRedisCommand(*client_, {"TYPE", k.str});
      if (type.ok() && type->str == "zset") {
        auto score = common::RunRedisCommand(*client_, {"ZSCORE", k.str, id});
        if (score.ok() && !score->is_nil()) found.push_back(absl::StrCat(k.str, " member"));
      }
      if (type.ok() && type->str == "hash" && absl::StrContains(k.str, "retention:unaudited")) {
        auto fields = common::RunRedisCommand(*client_, {"HKEYS", k.str});
        for (const auto& f : fields->elements) {
          if (absl::StrContains(f.str, id)) found.push_back(absl::StrCat(k.str, " ", f.str));
        }
      }
    }
    return found;
  }
  std::vector<pb::Event> Outbox(const std::string& id) {
    auto reply = common::RunRedisCommand(
        *client_, {"XRANGE", common::EventKeys::Outbox(Shard(id), "intake"), "-", "+"});
    std::vector<pb::Event> out;
    if (!reply.ok()) return out;
    for (const auto& entry : reply->elements) {
      const auto& fields = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < fields.size(); i += 2) {
        pb::Event e;
        if (e.ParseFromString(fields[i + 1].str) && e.request_id() == id) out.push_back(e);
      }
    }
    return out;
  }
  double Counter(const std::string& name, const std::string& step) {
    for (const auto& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const auto& m : family.metric) {
        for (const auto& l : m.label) {
          if (l.name == "step" && l.value == step) return m.counter.value;
        }
      }
    }
    return -1;
  }

  static testing::RedisServer* server_;
  static common::RedisClient* client_;
  RedisRequestStore store_{*client_, common::Sharding(16), absl::Hours(48)};
  RedisDocumentStore documents_{*client_, common::Sharding(16), store_};
  IntakeHarness h_{store_, 16, &documents_};
  prometheus::Registry registry_;
  RetentionMetrics metrics_{registry_};
};
testing::RedisServer* RetentionRedisTest::server_ = nullptr;
common::RedisClient* RetentionRedisTest::client_ = nullptr;

TEST_F(RetentionRedisTest, ClosedRequestKeepsItsDataThenBecomesATombstoneThenDisappears) {
  RecordingAuditor auditor;
  auto sweeper = NewSweeper(auditor);
  const v1::Request r = SubmitAndWithdraw();
  ASSERT_EQ(r.status(), pb::REQUEST_STATUS_WITHDRAWN);
  const std::string doc = AddDocument(r.id());
  const int shard = Shard(r.id());
  const std::string data_key = RedisDocumentStore::DataKey(shard, doc);
  ASSERT_TRUE(Exists(data_key));

  // Just before the period ends: nothing happens.
  h_.clock().Advance(kClosed - absl::Minutes(1));
  auto stats = sweeper->SweepOnce();
  EXPECT_EQ(stats.personal_erased, 0);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  ASSERT_EQ(got.content().subjects_size(), 1);
  EXPECT_EQ(got.content().subjects(0).family_name(), "Testperson");

  // Past it: personal data goes, a tombstone stays.
  h_.clock().Advance(absl::Minutes(2));
  stats = sweeper->SweepOnce();
  EXPECT_EQ(stats.personal_erased, 1);
  EXPECT_EQ(stats.audits_recorded, 1);
  EXPECT_EQ(stats.failures, 0);
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.id(), r.id());
  EXPECT_EQ(got.status(), pb::REQUEST_STATUS_WITHDRAWN);
  EXPECT_EQ(got.content().instrument(), pb::INSTRUMENT_EIO);
  EXPECT_EQ(got.content().issuing_authority().authority_id(), "FR-TJ-PARIS-JI");
  EXPECT_EQ(got.content().requested_state(), "DE");
  EXPECT_EQ(got.create_time().seconds(), r.create_time().seconds());
  EXPECT_EQ(got.content().subjects_size(), 0);
  EXPECT_EQ(got.content().offences_size(), 0);
  EXPECT_EQ(got.content().measures_size(), 0);
  EXPECT_TRUE(got.content().statement_of_facts().empty());
  EXPECT_TRUE(got.content().issuer_reference().empty());
  EXPECT_FALSE(got.content().has_eio());
  const std::string raw =
      common::RunRedisCommand(
          *client_, {"HGET", absl::StrCat(common::Sharding::Prefix(shard), "req:", r.id()), "pb"})
          ->str;
  EXPECT_FALSE(absl::StrContains(raw, "Testperson"));
  EXPECT_FALSE(absl::StrContains(raw, "PARQUET-2026-0001"));
  EXPECT_FALSE(Exists(data_key));
  EXPECT_FALSE(Exists(RedisDocumentStore::ListKey(shard, r.id())));
  const auto history = h_.History(r.id());
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().type(), pb::EVENT_TYPE_REQUEST_ERASED);
  const auto outbox = Outbox(r.id());
  ASSERT_FALSE(outbox.empty());
  EXPECT_EQ(outbox.back().type(), pb::EVENT_TYPE_REQUEST_ERASED);
  EXPECT_EQ(outbox.back().actor().service(), "rogatory-intake");
  EXPECT_EQ(Counter("rogatory_intake_erasures_total", "personal_data"), 1);

  // The tombstone stays for its own period, then goes with every trace.
  h_.clock().Advance(kTombstone - absl::Minutes(1));
  EXPECT_EQ(sweeper->SweepOnce().requests_erased, 0);
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  h_.clock().Advance(absl::Minutes(2));
  stats = sweeper->SweepOnce();
  EXPECT_EQ(stats.requests_erased, 1);
  EXPECT_EQ(stats.audits_recorded, 1);
  EXPECT_EQ(h_.Get(r.id(), &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Traces(r.id()), std::vector<std::string>{});
  EXPECT_EQ(Counter("rogatory_intake_erasures_total", "request"), 1);

  // Each erasure was audited once, as the service itself.
  const auto records = auditor.records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].method, "ErasePersonalData");
  EXPECT_EQ(records[1].method, "EraseRequest");
  for (const auto& rec : records) {
    EXPECT_TRUE(rec.caller.is_service);
    EXPECT_EQ(rec.caller.authority_id, "rogatory-intake");
    EXPECT_EQ(rec.code, absl::StatusCode::kOk);
    ASSERT_EQ(rec.subjects.size(), 1u);
    EXPECT_EQ(rec.subjects[0].request_id, r.id());
    EXPECT_EQ(rec.subjects[0].kind, common::AccessKind::kChange);
  }
  EXPECT_EQ(records[0].subjects[0].detail, "erased personal data");
  EXPECT_EQ(records[1].subjects[0].detail, "erased");
}

// Documents count against the uploader's quota until retention erases them (issue 16
// item 11): the erasure gives their bytes back, and the request's own count goes with it.
TEST_F(RetentionRedisTest, ErasureGivesTheDocumentBytesBackToTheAuthorityThatUploadedThem) {
  RecordingAuditor auditor;
  auto sweeper = NewSweeper(auditor);
  const int64_t before = IssuerBytes();
  const v1::Request r = SubmitAndWithdraw();
  AddDocument(r.id());
  EXPECT_EQ(IssuerBytes(), before + 12);
  const std::string usage = RedisDocumentStore::UsageKey(Shard(r.id()), r.id());
  EXPECT_TRUE(Exists(usage));
  h_.clock().Advance(kClosed + absl::Minutes(1));
  const auto stats = sweeper->SweepOnce();
  EXPECT_EQ(stats.personal_erased, 1);
  EXPECT_EQ(IssuerBytes(), before);
  EXPECT_FALSE(Exists(usage));
}

TEST_F(RetentionRedisTest, OpenRequestIsNeverErased) {
  RecordingAuditor auditor;
  auto sweeper = NewSweeper(auditor);
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  v1::Request acked;
  grpc::Status moved = h_.Move(r.id(), pb::REQUEST_STATUS_FORWARDED, &acked);
  ASSERT_TRUE(moved.ok()) << moved.error_message();
  h_.clock().Advance(kClosed + kTombstone + absl::Hours(24 * 365 * 10));
  const auto stats = sweeper->SweepOnce();
  EXPECT_EQ(stats.personal_erased + stats.requests_erased, 0);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.content().subjects_size(), 1);
  EXPECT_TRUE(auditor.records().empty());
}

TEST_F(RetentionRedisTest, PeriodRunsFromTheLastFinalMove) {
  RecordingAuditor auditor;
  auto sweeper = NewSweeper(auditor);
  const v1::Request r = SubmitAndWithdraw();
  h_.clock().Advance(kClosed / 2);
  grpc::Status moved = h_.Move(r.id(), pb::REQUEST_STATUS_CLOSED);
  ASSERT_TRUE(moved.ok()) << moved.error_message();
  h_.clock().Advance(kClosed / 2 + absl::Minutes(1));
  EXPECT_EQ(sweeper->SweepOnce().personal_erased, 0);
  h_.clock().Advance(kClosed / 2);
  EXPECT_EQ(sweeper->SweepOnce().personal_erased, 1);
}

TEST_F(RetentionRedisTest, SweeperStoppedBeforeItsAuditRecordsItOnceOnResume) {
  RecordingAuditor down;
  down.SetFailing(true);
  const v1::Request r = SubmitAndWithdraw();
  h_.clock().Advance(kClosed + absl::Minutes(1));
  {
    auto sweeper = NewSweeper(down);
    const auto stats = sweeper->SweepOnce();
    EXPECT_EQ(stats.personal_erased, 1);
    EXPECT_EQ(stats.audits_recorded, 0);
    EXPECT_GE(stats.failures, 1);
  }  // the sweeper is gone (as if killed) with its erasure unaudited
  EXPECT_GE(Counter("rogatory_intake_erasure_failures_total", "audit"), 1);
  RecordingAuditor up;
  auto resumed = NewSweeper(up);
  auto stats = resumed->SweepOnce();
  EXPECT_EQ(stats.personal_erased, 0);
  EXPECT_EQ(stats.audits_recorded, 1);
  stats = resumed->SweepOnce();
  EXPECT_EQ(stats.audits_recorded, 0);
  ASSERT_EQ(up.records().size(), 1u);
  EXPECT_EQ(up.records()[0].method, "ErasePersonalData");
  EXPECT_EQ(up.records()[0].subjects[0].request_id, r.id());
}

TEST_F(RetentionRedisTest, SweeperStoppedBetweenStepsFinishesOnResume) {
  RecordingAuditor auditor;
  const v1::Request r = SubmitAndWithdraw();
  h_.clock().Advance(kClosed + absl::Minutes(1));
  NewSweeper(auditor)->SweepOnce();  // step 1, then the process "dies"
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.content().subjects_size(), 0);
  h_.clock().Advance(kTombstone + absl::Minutes(1));
  const auto stats = NewSweeper(auditor)->SweepOnce();
  EXPECT_EQ(stats.personal_erased, 0);
  EXPECT_EQ(stats.requests_erased, 1);
  EXPECT_EQ(h_.Get(r.id(), &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(auditor.records().size(), 2u);
}

TEST_F(RetentionRedisTest, ChangeComputedBeforeTheErasureCannotRestorePersonalData) {
  RecordingAuditor auditor;
  const v1::Request r = SubmitAndWithdraw();
  auto before = testing::Await<Snapshot>(
      [&](auto done) { store_.Load(r.id(), std::nullopt, std::move(done)); });
  ASSERT_TRUE(before.ok());
  h_.clock().Advance(kClosed + absl::Minutes(1));
  ASSERT_EQ(NewSweeper(auditor)->SweepOnce().personal_erased, 1);
  Mutation m;
  m.id = r.id();
  m.expected_version = before->version;
  m.new_version = before->version + 1;
  m.request = before->request;  // still holds the persons
  auto outcome = testing::Await<MutationOutcome>(
      [&](auto done) { store_.Mutate(std::move(m), std::move(done)); });
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kAborted);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.content().subjects_size(), 0);
}

TEST_F(RetentionRedisTest, IdempotencyRecordsExpireAfterTheirRetention) {
  RedisRequestStore short_lived{*client_, common::Sharding(16), absl::Milliseconds(300)};
  IntakeHarness h{short_lived};
  v1::Request first;
  ASSERT_TRUE(h.Submit(testing::CompleteEio(), "key-1", &first).ok());
  // Within the retention, another payload under the key is refused.
  auto other = testing::CompleteEio();
  other.set_statement_of_facts("Other invented facts.");
  EXPECT_EQ(h.Submit(other, "key-1", nullptr).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // Once the record expired, the key is free again (and holds no copy of the request).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  grpc::Status s;
  v1::Request second;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s = h.Submit(other, "key-1", &second);
  } while (!s.ok() && std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_NE(second.id(), first.id());
}

}  // namespace
}  // namespace rogatory::intake
