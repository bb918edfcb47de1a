// The Redis round trips of intake's hot calls, counted exactly at the client: issue 11's
// budget is at most 2 per submission and 1 per read, their audit entries included. Real
// redis-server, the real IntakeService on the Redis store, the chained audit log and its
// sealer; one call at a time, so no group commit shares an append between calls.
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "intake_service.h"
#include "redis_request_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/audit_log.h"

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

class RoundTripsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = rogatory::testing::ConnectedClient(server_);
    counting_ = std::make_unique<CountingRedisClient>(*redis_);
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
// reading the index first made it two commands a shard (31 on main).
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

}  // namespace
}  // namespace rogatory::intake
