// A full Redis (maxmemory reached, maxmemory-policy noeviction; issue 16 item 11), on a real
// redis-server: writes that grow memory fail cleanly (UNAVAILABLE "the store is full", never
// INTERNAL with Redis's raw text, never a crash, nothing half-written), reads go on, the
// scripts that free memory (retention's erasure, lease taking, stream acknowledgements and
// trims) still run, and every request acknowledged before is intact once memory is freed.
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "intake_harness.h"
#include "redis_deadline_store.h"
#include "redis_document_store.h"
#include "redis_request_store.h"
#include "redis_routing_store.h"
#include "redis_server.h"
#include "retention.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/replica_lease.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using ::testing::HasSubstr;
using testing::IntakeHarness;

const absl::Duration kClosed = absl::Hours(24 * 730);

class AcceptingAuditor final : public common::Auditor {
 public:
  void Record(common::AuditRecord, std::function<void(absl::Status)> done) override {
    done(absl::OkStatus());
  }
};

v1::DocumentUpload Metadata(const std::string& request, const std::string& bytes) {
  v1::DocumentUpload m;
  m.set_id(request);
  m.set_kind(v1::DOCUMENT_KIND_REQUEST_FORM);
  m.set_language("fr");
  m.set_media_type("application/pdf");
  m.set_sha256(common::Sha256Hex(bytes));
  return m;
}

grpc::Status Upload(IntakeHarness& h, const std::string& request, const std::string& bytes,
                    v1::Document* out) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::UploadDocumentResponse resp;
  auto writer = h.stub().UploadDocument(&ctx, &resp);
  v1::UploadDocumentRequest msg;
  *msg.mutable_metadata() = Metadata(request, bytes);
  bool ok = writer->Write(msg);
  msg.set_chunk(bytes);
  if (ok) writer->Write(msg);
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (out != nullptr) *out = resp.document();
  return s;
}

// The chunked upload browsers use, one call each.
grpc::Status StartChunked(IntakeHarness& h, const std::string& request, const std::string& bytes,
                          std::string* upload_id) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::StartDocumentUploadRequest req;
  *req.mutable_metadata() = Metadata(request, bytes);
  v1::StartDocumentUploadResponse resp;
  grpc::Status s = h.stub().StartDocumentUpload(&ctx, req, &resp);
  if (upload_id != nullptr) *upload_id = resp.upload_id();
  return s;
}

grpc::Status SendChunk(IntakeHarness& h, const std::string& upload_id, int64_t offset,
                       const std::string& chunk) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::UploadDocumentChunkRequest req;
  req.set_upload_id(upload_id);
  req.set_offset(offset);
  req.set_chunk(chunk);
  v1::UploadDocumentChunkResponse resp;
  return h.stub().UploadDocumentChunk(&ctx, req, &resp);
}

grpc::Status CommitChunked(IntakeHarness& h, const std::string& upload_id) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::CommitDocumentUploadRequest req;
  req.set_upload_id(upload_id);
  v1::CommitDocumentUploadResponse resp;
  return h.stub().CommitDocumentUpload(&ctx, req, &resp);
}

std::string Download(IntakeHarness& h, const std::string& request, const std::string& document) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::DownloadDocumentRequest req;
  req.set_id(request);
  req.set_document_id(document);
  auto reader = h.stub().DownloadDocument(&ctx, req);
  v1::DownloadDocumentResponse msg;
  std::string bytes;
  while (reader->Read(&msg)) {
    if (msg.part_case() == v1::DownloadDocumentResponse::kChunk) bytes += msg.chunk();
  }
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  return bytes;
}

// The store is full: a clean, retryable refusal that says so.
void ExpectStoreFull(const grpc::Status& s) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("the store is full"));
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("OOM command")));
  // The reason a UI switches on (errors.proto).
  auto info = common::GetErrorInfo(s);
  ASSERT_TRUE(info.has_value()) << s.error_message();
  EXPECT_EQ(info->reason(), "STORE_FULL") << s.error_message();
}

class FullRedisTest : public ::testing::Test {
 protected:
  FullRedisTest() {
    client_ = rogatory::testing::ConnectedClient(server_);
    requests_ =
        std::make_unique<RedisRequestStore>(*client_, common::Sharding(16), absl::Hours(48));
    documents_ = std::make_unique<RedisDocumentStore>(*client_, common::Sharding(16), *requests_);
    h_ = std::make_unique<IntakeHarness>(*requests_, 16, documents_.get());
  }
  ~FullRedisTest() override { h_.reset(); }

  int64_t UsedMemory() {
    auto info = common::RunRedisCommand(*client_, {"INFO", "memory"});
    EXPECT_TRUE(info.ok());
    const std::string text = info.ok() ? info->str : "";
    const auto at = text.find("used_memory:");
    int64_t used = 0;
    if (at != std::string::npos) {
      const auto from = at + std::string("used_memory:").size();
      EXPECT_TRUE(absl::SimpleAtoi(text.substr(from, text.find('\r', from) - from), &used));
    }
    return used;
  }

  // Sets maxmemory a little above what Redis uses now and fills the rest with filler keys,
  // as the services' own writes would, until Redis refuses a write.
  void Fill() {
    ASSERT_TRUE(common::RunRedisCommand(*client_, {"CONFIG", "SET", "maxmemory",
                                                   absl::StrCat(UsedMemory() + (1 << 20))})
                    .ok());
    const std::string filler(16 << 10, 'x');
    for (fillers_ = 0; fillers_ < 1000; ++fillers_) {
      auto set =
          common::RunRedisCommand(*client_, {"SET", absl::StrCat("filler:", fillers_), filler});
      if (!set.ok()) {
        EXPECT_EQ(set.status().code(), absl::StatusCode::kUnavailable) << set.status();
        EXPECT_THAT(set.status().message(), HasSubstr("the store is full"));
        // Redis compares before each command, and a refused command's arguments leave its
        // count again, so a Redis at the edge takes one more write: the bound goes just
        // below what Redis uses, so that every write sees the store full.
        ASSERT_TRUE(common::RunRedisCommand(*client_, {"CONFIG", "SET", "maxmemory",
                                                       absl::StrCat(UsedMemory() - (64 << 10))})
                        .ok());
        return;
      }
    }
    FAIL() << "Redis never filled up";
  }

  void Free() {
    for (int i = 0; i <= fillers_; ++i) {
      ASSERT_TRUE(common::RunRedisCommand(*client_, {"DEL", absl::StrCat("filler:", i)}).ok());
    }
    ASSERT_TRUE(common::RunRedisCommand(*client_, {"CONFIG", "SET", "maxmemory", "0"}).ok());
  }

  v1::Request Withdrawn() {
    v1::Request r = h_->SubmitComplete(pb::INSTRUMENT_EIO);
    v1::WithdrawRequestRequest w;
    w.set_id(r.id());
    w.set_reason_code("NO_LONGER_NEEDED");
    v1::Request out;
    EXPECT_TRUE(h_->Withdraw(w, &out).ok());
    return out;
  }

  testing::RedisServer server_;
  std::unique_ptr<common::RedisClient> client_;
  std::unique_ptr<RedisRequestStore> requests_;
  std::unique_ptr<RedisDocumentStore> documents_;
  std::unique_ptr<IntakeHarness> h_;
  int fillers_ = 0;
};

TEST_F(FullRedisTest, WritesFailCleanlyFreeingStillRunsAndNothingAcknowledgedIsLost) {
  // Acknowledged before Redis fills: an open request with a document, one to move later,
  // and a closed one with a document for retention to erase.
  const v1::Request open = h_->SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes(100000, 'd');
  v1::Document doc;
  ASSERT_TRUE(Upload(*h_, open.id(), bytes, &doc).ok());
  const v1::Request other = h_->SubmitComplete(pb::INSTRUMENT_EIO);
  const v1::Request closed = Withdrawn();
  v1::Document closed_doc;
  ASSERT_TRUE(Upload(*h_, closed.id(), bytes, &closed_doc).ok());
  v1::Request before_open, before_other;
  ASSERT_TRUE(h_->Get(open.id(), &before_open).ok());
  ASSERT_TRUE(h_->Get(other.id(), &before_other).ok());
  const size_t other_history = h_->History(other.id()).size();
  // A chunked upload under way: its first half staged.
  const std::string halves = bytes + bytes;
  std::string upload_id;
  ASSERT_TRUE(StartChunked(*h_, open.id(), halves, &upload_id).ok());
  ASSERT_TRUE(SendChunk(*h_, upload_id, 0, bytes).ok());

  Fill();

  // What grows memory is refused whole.
  v1::Request none;
  ExpectStoreFull(h_->Submit(IntakeHarness::CompleteContent(pb::INSTRUMENT_EIO), "", &none));
  ExpectStoreFull(Upload(*h_, open.id(), bytes, nullptr));
  ExpectStoreFull(StartChunked(*h_, open.id(), bytes, nullptr));
  ExpectStoreFull(SendChunk(*h_, upload_id, static_cast<int64_t>(bytes.size()), bytes));
  ExpectStoreFull(h_->Move(other.id(), pb::REQUEST_STATUS_FORWARDED));
  // Reads go on.
  v1::Request got;
  ASSERT_TRUE(h_->Get(other.id(), &got).ok());
  EXPECT_EQ(got.etag(), before_other.etag());
  EXPECT_EQ(got.status(), before_other.status());
  EXPECT_EQ(h_->History(other.id()).size(), other_history);
  EXPECT_TRUE(Download(*h_, open.id(), doc.id()) == bytes);

  // What frees memory still runs: retention takes its lease (a new one) and erases the
  // closed request's personal data and documents; stream acknowledgements and trims.
  AcceptingAuditor auditor;
  RetentionSweeper sweeper(*requests_, documents_.get(), auditor, h_->clock(),
                           RetentionSettings{kClosed, kClosed * 10, 100}, nullptr, [this] {
                             return HoldRetentionLease(*client_, "replica-a", absl::Seconds(30));
                           });
  h_->clock().Advance(kClosed + absl::Minutes(1));
  const auto stats = sweeper.SweepOnce();
  EXPECT_EQ(stats.personal_erased, 1);
  EXPECT_EQ(stats.audits_recorded, 1);
  EXPECT_EQ(stats.failures, 0);
  ASSERT_TRUE(h_->Get(closed.id(), &got).ok());
  EXPECT_EQ(got.content().subjects_size(), 0);
  const int shard = *common::Sharding(16).ShardOf("rq", closed.id());
  auto exists = common::RunRedisCommand(
      *client_, {"EXISTS", RedisDocumentStore::DataKey(shard, closed_doc.id())});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists->integer, 0);
  const std::string outbox = common::EventKeys::Outbox(shard, "intake");
  auto trimmed = common::RunRedisCommand(*client_, {"XTRIM", outbox, "MAXLEN", "0"});
  ASSERT_TRUE(trimmed.ok()) << trimmed.status();
  EXPECT_GT(trimmed->integer, 0);

  // Memory freed: everything acknowledged before is there, and writes work again.
  Free();
  ASSERT_TRUE(h_->Get(open.id(), &got).ok());
  EXPECT_EQ(got.etag(), before_open.etag());
  EXPECT_EQ(got.content().subjects_size(), before_open.content().subjects_size());
  EXPECT_TRUE(Download(*h_, open.id(), doc.id()) == bytes);
  ASSERT_TRUE(h_->Get(other.id(), &got).ok());
  EXPECT_EQ(got.etag(), before_other.etag());
  EXPECT_TRUE(h_->Move(other.id(), pb::REQUEST_STATUS_FORWARDED).ok());
  EXPECT_TRUE(h_->Submit(IntakeHarness::CompleteContent(pb::INSTRUMENT_EIO), "", &none).ok());
  // The refused chunk left the upload as it was: it goes on where it stood.
  EXPECT_TRUE(SendChunk(*h_, upload_id, static_cast<int64_t>(bytes.size()), bytes).ok());
  EXPECT_TRUE(CommitChunked(*h_, upload_id).ok());
}

// The receivers of REQUEST_ERASED (routing and deadline-tracking here; notification's is
// flagged the same way) erase in a full Redis: their scripts begin with the dedupe marker's
// SET NX, which a full Redis refuses unless the script is flagged allow-oom.
TEST_F(FullRedisTest, ReceiversOfRequestErasedStillEraseWhenRedisIsFull) {
  const v1::Request r = h_->SubmitComplete(pb::INSTRUMENT_EIO);
  const int shard = *common::Sharding(16).ShardOf("rq", r.id());
  pb::Event erased;
  erased.set_event_id("01erasedevent");
  erased.set_request_id(r.id());
  erased.set_source("intake");
  erased.set_type(pb::EVENT_TYPE_REQUEST_ERASED);
  Fill();

  routing::RedisRoutingStore routing(*client_, common::Sharding(16));
  const common::Dedupe routing_seen{common::EventKeys::Seen(shard, "routing", "01erasedevent"),
                                    "600000"};
  auto routed = testing::Await<common::EventHandler::Outcome>([&](auto done) {
    routing.EraseRequest(erased, routing_seen, h_->clock().Now(), std::move(done));
  });
  ASSERT_TRUE(routed.ok()) << routed.status();
  EXPECT_EQ(*routed, common::EventHandler::Outcome::kHandled);

  deadlines::RedisDeadlineStore deadlines(*client_, common::Sharding(16));
  const common::Dedupe deadlines_seen{common::EventKeys::Seen(shard, "deadlines", "01erasedevent"),
                                      "600000"};
  auto timed = testing::Await<deadlines::CommitOutcome>(
      [&](auto done) { deadlines.EraseRequest(shard, r.id(), deadlines_seen, std::move(done)); });
  ASSERT_TRUE(timed.ok()) << timed.status();
}

}  // namespace
}  // namespace rogatory::intake
