// The Redis round trips of intake's hot calls, counted exactly at the client: issue 11's
// budget is at most 2 per submission and 1 per read, their audit entries included. Real
// redis-server, the real IntakeService on the Redis store, the chained audit log and its
// sealer; one call at a time, so no group commit shares an append between calls.
#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "intake_service.h"
#include "redis_request_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/ids.h"

namespace rogatory::intake {
namespace {

// Counts what it forwards: every Command and Eval is one round trip.
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

// Counts sequential waves: a command sent from the callback of a command of wave n is in
// wave n + 1; commands sent before any of their replies arrive (pipelined) share a wave. The
// deepest wave of a call is how many round trips it waits for in sequence.
class WaveCountingRedisClient final : public common::RedisClient {
 public:
  explicit WaveCountingRedisClient(common::RedisClient& inner) : inner_(inner) {}
  void Command(std::vector<std::string> args, common::RedisCallback done) override {
    inner_.Command(std::move(args), Wrap(std::move(done)));
  }
  void Eval(const common::LuaScript& script, std::vector<std::string> keys,
            std::vector<std::string> args, common::RedisCallback done) override {
    inner_.Eval(script, std::move(keys), std::move(args), Wrap(std::move(done)));
  }
  // Waves and commands since the last call.
  std::pair<int, int> Take() { return {max_wave_.exchange(0), commands_.exchange(0)}; }

 private:
  static thread_local int current_wave_;
  common::RedisCallback Wrap(common::RedisCallback done) {
    const int wave = current_wave_ + 1;
    ++commands_;
    int seen = max_wave_.load();
    while (wave > seen && !max_wave_.compare_exchange_weak(seen, wave)) {
    }
    return [wave, done = std::move(done)](absl::StatusOr<common::RedisReply> reply) {
      const int outer = current_wave_;
      current_wave_ = wave;
      done(std::move(reply));
      current_wave_ = outer;
    };
  }
  common::RedisClient& inner_;
  std::atomic<int> max_wave_{0};
  std::atomic<int> commands_{0};
};
thread_local int WaveCountingRedisClient::current_wave_ = 0;

class RoundTripsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = rogatory::testing::ConnectedClient(server_);
    waves_ = std::make_unique<WaveCountingRedisClient>(*redis_);
    counting_ = std::make_unique<CountingRedisClient>(*waves_);
    store_ = std::make_unique<RedisRequestStore>(*counting_, sharding_, absl::Hours(1));
    auditor_ =
        std::make_unique<common::ChainedAuditor>(*counting_, clock_, sharding_, key_, nullptr);
    pipeline_ = std::make_unique<common::Pipeline>(authenticator_, limiter_, *auditor_, clock_);
    service_ = std::make_unique<IntakeService>(*store_, clock_, *pipeline_, sharding_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_grpc_ = builder.BuildAndStart();
    stub_ = v1::IntakeService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                           grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_grpc_->Shutdown(); }

  static void As(grpc::ClientContext& ctx, const std::string& authority, const std::string& state,
                 const std::string& roles) {
    ctx.AddMetadata("x-rogatory-authority", authority);
    ctx.AddMetadata("x-rogatory-state", state);
    ctx.AddMetadata("x-rogatory-roles", roles);
  }
  grpc::Status Submit(const std::string& key, v1::Request* out) {
    grpc::ClientContext ctx;
    As(ctx, "FR-TJ-PARIS-JI", "FR", "issuing");
    v1::SubmitRequestRequest req;
    req.set_request_id(key);
    *req.mutable_content() = testing::CompleteEio();
    v1::SubmitRequestResponse resp;
    grpc::Status s = stub_->SubmitRequest(&ctx, req, &resp);
    *out = resp.request();
    return s;
  }
  grpc::Status Get(const std::string& id, const std::string& authority, const std::string& state,
                   const std::string& roles) {
    grpc::ClientContext ctx;
    As(ctx, authority, state, roles);
    v1::GetRequestRequest req;
    req.set_id(id);
    v1::GetRequestResponse resp;
    return stub_->GetRequest(&ctx, req, &resp);
  }
  grpc::Status List(int page_size, const std::string& token, v1::ListRequestsResponse* out) {
    grpc::ClientContext ctx;
    As(ctx, "FR-TJ-PARIS-JI", "FR", "issuing");
    v1::ListRequestsRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    return stub_->ListRequests(&ctx, req, out);
  }
  // The sealed audit entries of a request, after sealing what is pending.
  std::vector<common::AuditEntry> Sealed(const std::string& id) {
    common::AuditSealerOptions o;
    o.replica_id = "round-trips-test";
    o.shard_count = sharding_.shard_count();
    o.run_in_background = false;
    common::AuditSealer sealer(*redis_, clock_, key_, nullptr, o);
    EXPECT_TRUE(sealer.SealOnce().ok());
    auto page = common::ListAuditEntries(*redis_, sharding_, id, 0, 100);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->decoded : std::vector<common::AuditEntry>{};
  }

  testing::RedisServer server_;
  common::Sharding sharding_{16};
  common::SimulatedClock clock_;
  std::shared_ptr<const common::AuditKey> key_ = std::make_shared<const common::AuditKey>(
      *common::AuditKey::FromSecret("round-trips-test-audit-key-0123456789"));
  std::unique_ptr<common::RedisClient> redis_;
  std::unique_ptr<WaveCountingRedisClient> waves_;
  std::unique_ptr<CountingRedisClient> counting_;
  std::unique_ptr<RedisRequestStore> store_;
  std::unique_ptr<common::ChainedAuditor> auditor_;
  common::MetadataAuthenticator authenticator_;
  common::NoRateLimiter limiter_;
  std::unique_ptr<common::Pipeline> pipeline_;
  std::unique_ptr<IntakeService> service_;
  std::unique_ptr<grpc::Server> server_grpc_;
  std::unique_ptr<v1::IntakeService::Stub> stub_;
};

TEST_F(RoundTripsTest, SubmissionTakesTwoRoundTripsAndAReadOneWithItsAuditEntry) {
  v1::Request first, second;
  ASSERT_TRUE(Submit("k-1", &first).ok());
  counting_->Take();  // the first calls may load scripts

  ASSERT_TRUE(Submit("k-2", &second).ok());
  EXPECT_EQ(counting_->Take(), 2) << "SubmitRequest: the create script and its audit append";

  ASSERT_TRUE(Get(second.id(), "FR-TJ-PARIS-JI", "FR", "issuing").ok());
  EXPECT_EQ(counting_->Take(), 1) << "GetRequest: the read, with its audit entry";

  // Out of reach: NOT_FOUND, still one round trip, and no read entry written.
  grpc::Status other = Get(second.id(), "ES-AN-MADRID", "ES", "issuing");
  EXPECT_EQ(other.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(counting_->Take(), 1);

  // A caller whose reach is no list scope (a translator) reads as before: the read, then
  // its own audit append when it is allowed (here it is not).
  EXPECT_EQ(Get(second.id(), "DE-TRANSLATOR-1", "DE", "translator").error_code(),
            grpc::StatusCode::NOT_FOUND);

  std::vector<common::AuditEntry> entries = Sealed(second.id());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].kind, "change");
  EXPECT_EQ(entries[1].kind, "read");
  EXPECT_EQ(entries[1].method, "GetRequest");
  EXPECT_EQ(entries[1].caller, "FR-TJ-PARIS-JI");
  EXPECT_EQ(entries[1].outcome, "OK");
}

TEST_F(RoundTripsTest, AnAuditorReadsEveryRequestInOneRoundTripAndIsRecorded) {
  v1::Request r;
  ASSERT_TRUE(Submit("k-3", &r).ok());
  counting_->Take();
  ASSERT_TRUE(Get(r.id(), "EU-AUDITOR-1", "", "auditor").ok());
  EXPECT_EQ(counting_->Take(), 1);
  std::vector<common::AuditEntry> entries = Sealed(r.id());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].caller, "EU-AUDITOR-1");
  EXPECT_EQ(entries[1].kind, "read");
}

// A list page's commands (issue 17): every shard's index read (sent at once), then
// list_page.lua on only the shards holding candidates that can make the page (the page's
// first ones over all shards), then the listed requests' audit entries. Before the scripts
// stopped naming keys from data this page was one script a shard plus the audit (21 here);
// reading the index first made it two commands a shard (31 on main). An authority's page
// now reads its worklist rows instead of an index (issue 20): the same bound holds.
TEST_F(RoundTripsTest, AListPageReadsEveryShardsIndexThenOnlyTheRowsOfThePage) {
  std::vector<std::string> ids;  // newest first
  for (int i = 0; i < 17; ++i) {
    v1::Request r;
    ASSERT_TRUE(Submit("list-" + std::to_string(i), &r).ok());
    ids.insert(ids.begin(), r.id());
    clock_.Advance(absl::Milliseconds(1));
  }
  v1::ListRequestsResponse warm;
  ASSERT_TRUE(List(5, "", &warm).ok());  // loads the script
  counting_->Take();

  std::vector<std::string> listed;
  std::string token;
  for (int page = 0; page < 4; ++page) {
    v1::ListRequestsResponse resp;
    ASSERT_TRUE(List(5, token, &resp).ok());
    std::set<int> shards;
    for (const v1::Request& r : resp.requests()) {
      listed.push_back(r.id());
      shards.insert(*sharding_.ShardOf("rq", r.id()));
    }
    EXPECT_LE(counting_->Take(),
              sharding_.shard_count() + static_cast<int>(shards.size()) + resp.requests_size())
        << "page " << page << ": the index reads, the rows' scripts, the audit entries";
    token = resp.next_page_token();
    if (page < 3) {
      EXPECT_EQ(resp.requests_size(), 5) << "page " << page;
    }
    if (token.empty()) break;
  }
  EXPECT_TRUE(token.empty());
  EXPECT_EQ(listed, ids);
}

// Issue 19's target: a full page of 50 under a filter matching 1 in 20 of the caller's
// requests costs at most 3 sequential waves of round trips: every shard's worklist rows (one
// pipelined wave), the page's records (one script per shard holding part of it, one wave),
// then the listed requests' audit entries.
TEST_F(RoundTripsTest, AFilteredWorklistPageOfFiftyTakesAtMostThreeWaves) {
  constexpr int kRequests = 1000;
  std::set<std::string> matching;
  for (int i = 0; i < kRequests; ++i) {
    NewRequest n;
    const absl::Time t = absl::FromUnixMillis(1767225600000 + i);
    n.request.set_id(common::Sharding::MakeId("rq", i % sharding_.shard_count(), t));
    *n.request.mutable_content() = testing::CompleteEio();
    // One in 20 goes to Belgium (the counterpart filtered on), the others to Germany.
    if (i % 20 == 7) {
      n.request.mutable_content()->set_requested_state("BE");
      matching.insert(n.request.id());
    }
    n.request.set_status(common::v1::REQUEST_STATUS_RECEIVED);
    *n.request.mutable_create_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(1767225600000 + i);
    n.request.set_etag("1");
    n.submitted.set_event_id(common::NewUlid(t));
    n.submitted.set_request_id(n.request.id());
    n.submitted.set_sequence(1);
    auto created = testing::Await<CreateOutcome>(
        [&](auto done) { store_->Create(std::move(n), std::move(done)); });
    ASSERT_TRUE(created.ok()) << created.status();
  }
  ASSERT_EQ(matching.size(), 50u);
  auto list = [&](const std::string& token, v1::ListRequestsResponse* out) {
    grpc::ClientContext ctx;
    As(ctx, "FR-TJ-PARIS-JI", "FR", "issuing");
    v1::ListRequestsRequest req;
    req.set_page_size(50);
    req.set_page_token(token);
    req.set_counterpart_state("BE");
    req.set_open_only(true);
    req.set_order_by(v1::REQUEST_ORDER_NEXT_DUE_TIME);
    return stub_->ListRequests(&ctx, req, out);
  };
  v1::ListRequestsResponse warm;
  ASSERT_TRUE(list("", &warm).ok());  // loads the scripts
  counting_->Take();
  waves_->Take();

  v1::ListRequestsResponse page;
  grpc::Status s = list("", &page);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const auto [waves, commands] = waves_->Take();
  counting_->Take();
  ASSERT_EQ(page.requests_size(), 50);
  std::set<std::string> got;
  for (const auto& r : page.requests()) got.insert(r.id());
  EXPECT_EQ(got, matching);
  EXPECT_TRUE(page.next_page_token().empty());
  EXPECT_LE(waves, 3) << "sequential round-trip waves for a filtered page of 50";
  std::printf("filtered worklist page of 50 (1 in 20 of %d match): %d waves, %d commands\n",
              kRequests, waves, commands);

  // The store alone: two waves (the rows, then the records).
  ListQuery q;
  q.scope = common::ListScope{false, "FR-TJ-PARIS-JI", ""};
  q.counterpart_state = "BE";
  q.open_only = true;
  q.by_next_due = true;
  q.page_size = 50;
  auto listed = testing::Await<ListPage>([&](auto done) { store_->List(q, std::move(done)); });
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->requests.size(), 50u);
  EXPECT_EQ(waves_->Take().first, 2);
  counting_->Take();
}

}  // namespace
}  // namespace rogatory::intake
