// UploadDocument / DownloadDocument / ListDocuments through the service, on the in-memory
// stores and (RedisDocumentsTest) on a real redis-server.
#include <chrono>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "in_memory_document_store.h"
#include "in_memory_request_store.h"
#include "intake_event_handler.h"
#include "intake_harness.h"
#include "redis_cluster.h"
#include "redis_document_store.h"
#include "redis_request_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/idle_watch.h"
#include "rogatory/common/ids.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
using testing::IntakeHarness;

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

v1::DocumentUpload Metadata(const std::string& request, const std::string& bytes) {
  v1::DocumentUpload m;
  m.set_id(request);
  m.set_kind(v1::DOCUMENT_KIND_REQUEST_FORM);
  m.set_language("fr");
  m.set_media_type("application/pdf");
  m.set_title("Annex A");
  m.set_sha256(common::Sha256Hex(bytes));
  return m;
}

// Uploads `metadata` then `bytes` in chunks of `chunk` bytes; `corrupt` flips a byte of the
// second chunk on the wire.
grpc::Status Upload(IntakeHarness& h, const v1::DocumentUpload& metadata, const std::string& bytes,
                    v1::Document* out, size_t chunk = 1 << 20, bool corrupt = false,
                    const testing::CallerId& caller = testing::kIssuer) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, caller);
  v1::UploadDocumentResponse resp;
  auto writer = h.stub().UploadDocument(&ctx, &resp);
  v1::UploadDocumentRequest msg;
  *msg.mutable_metadata() = metadata;
  bool ok = writer->Write(msg);
  for (size_t at = 0, i = 0; ok && at < bytes.size(); at += chunk, ++i) {
    std::string piece = bytes.substr(at, chunk);
    if (corrupt && i == 1) piece[7] ^= 0x20;
    msg.set_chunk(piece);
    ok = writer->Write(msg);
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (out != nullptr) *out = resp.document();
  return s;
}

// The chunked upload browsers use (StartDocumentUpload, UploadDocumentChunk,
// CommitDocumentUpload), with Upload's signature: the same contract, another transport.
grpc::Status ChunkedUpload(IntakeHarness& h, const v1::DocumentUpload& metadata,
                           const std::string& bytes, v1::Document* out, size_t chunk = 1 << 20,
                           bool corrupt = false,
                           const testing::CallerId& caller = testing::kIssuer) {
  v1::StartDocumentUploadRequest start;
  *start.mutable_metadata() = metadata;
  v1::StartDocumentUploadResponse started;
  {
    grpc::ClientContext ctx;
    IntakeHarness::As(&ctx, caller);
    grpc::Status s = h.stub().StartDocumentUpload(&ctx, start, &started);
    if (!s.ok()) return s;
  }
  if (started.has_document()) {
    if (out != nullptr) *out = started.document();
    return grpc::Status::OK;
  }
  for (size_t at = 0, i = 0; at < bytes.size(); at += chunk, ++i) {
    v1::UploadDocumentChunkRequest req;
    req.set_upload_id(started.upload_id());
    req.set_offset(static_cast<int64_t>(at));
    std::string piece = bytes.substr(at, chunk);
    if (corrupt && i == 1) piece[7] ^= 0x20;
    req.set_chunk(piece);
    grpc::ClientContext ctx;
    IntakeHarness::As(&ctx, caller);
    v1::UploadDocumentChunkResponse resp;
    grpc::Status s = h.stub().UploadDocumentChunk(&ctx, req, &resp);
    if (!s.ok()) return s;
    EXPECT_EQ(resp.received_bytes(), static_cast<int64_t>(at + piece.size()));
  }
  v1::CommitDocumentUploadRequest commit;
  commit.set_upload_id(started.upload_id());
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, caller);
  v1::CommitDocumentUploadResponse resp;
  grpc::Status s = h.stub().CommitDocumentUpload(&ctx, commit, &resp);
  if (out != nullptr) *out = resp.document();
  return s;
}

using UploadFn =
    std::function<grpc::Status(IntakeHarness&, const v1::DocumentUpload&, const std::string&,
                               v1::Document*, size_t, bool, const testing::CallerId&)>;

grpc::Status Download(IntakeHarness& h, const std::string& request, const std::string& document,
                      v1::Document* meta, std::string* bytes, int* chunks = nullptr,
                      const testing::CallerId& caller = testing::kIssuer) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, caller);
  v1::DownloadDocumentRequest req;
  req.set_id(request);
  req.set_document_id(document);
  auto reader = h.stub().DownloadDocument(&ctx, req);
  v1::DownloadDocumentResponse msg;
  int n = 0;
  while (reader->Read(&msg)) {
    if (msg.has_metadata()) *meta = msg.metadata();
    if (msg.part_case() == v1::DownloadDocumentResponse::kChunk) {
      bytes->append(msg.chunk());
      ++n;
    }
  }
  if (chunks != nullptr) *chunks = n;
  return reader->Finish();
}

class DocumentsTest : public ::testing::Test {
 protected:
  InMemoryRequestStore requests_;
  InMemoryDocumentStore documents_{requests_};
  IntakeOptions options_{.max_document_bytes = 8 << 20};
  IntakeHarness h_{requests_, 16, &documents_, options_};
};

TEST_F(DocumentsTest, FiveMebibyteDocumentRoundTripsIntactAndIsAHistoryEvent) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(5 << 20);
  v1::Document stored;
  grpc::Status s = Upload(h_, Metadata(r.id(), bytes), bytes, &stored, 700 * 1024);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(stored.size_bytes(), 5 << 20);
  EXPECT_EQ(stored.sha256(), common::Sha256Hex(bytes));
  EXPECT_EQ(stored.title(), "Annex A");

  v1::Document meta;
  std::string back;
  int chunks = 0;
  ASSERT_TRUE(Download(h_, r.id(), stored.id(), &meta, &back, &chunks).ok());
  EXPECT_EQ(meta.id(), stored.id());
  EXPECT_EQ(back.size(), bytes.size());
  EXPECT_TRUE(back == bytes);
  EXPECT_EQ(chunks, 8);  // as uploaded: 7 full chunks of 700 KiB and a remainder

  const auto history = h_.History(r.id());
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].type(), pb::EVENT_TYPE_DOCUMENT_ADDED);
  EXPECT_EQ(history[1].document().document_id(), stored.id());
  EXPECT_EQ(history[1].document().sha256(), stored.sha256());
  EXPECT_EQ(history[1].sequence(), 2);

  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::ListDocumentsRequest list;
  list.set_id(r.id());
  v1::ListDocumentsResponse listed;
  ASSERT_TRUE(h_.stub().ListDocuments(&ctx, list, &listed).ok());
  ASSERT_EQ(listed.documents_size(), 1);
  EXPECT_EQ(listed.documents(0).id(), stored.id());
}

// Reports a translation job event about `document` as translation-routing would.
void ReportJobEvent(IntakeEventHandler& handler, const v1::Request& r, const std::string& document,
                    pb::EventType type, const std::string& translator, int n) {
  pb::Event e;
  e.set_event_id(absl::StrCat("01jobevent", n));
  e.set_request_id(r.id());
  e.set_source("routing");
  e.set_sequence(n);
  e.set_type(type);
  e.set_instrument(r.content().instrument());
  e.mutable_actor()->mutable_authority()->set_authority_id(translator);
  e.mutable_actor()->set_role(pb::AUTHORITY_ROLE_TRANSLATOR);
  e.mutable_translation_job()->set_job_id(absl::StrCat("tj-", n));
  e.mutable_translation_job()->set_document_id(document);
  const int shard = *common::Sharding(16).ShardOf("rq", r.id());
  const common::Dedupe dedupe{common::EventKeys::Seen(shard, "intake", e.event_id()), "600000"};
  auto outcome = testing::Await<common::EventHandler::Outcome>(
      [&](auto done) { handler.Handle(e, dedupe, std::move(done)); });
  ASSERT_TRUE(outcome.ok()) << outcome.status();
}

std::set<std::string> ListedIds(IntakeHarness& h, const std::string& request,
                                const testing::CallerId& caller) {
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, caller);
  v1::ListDocumentsRequest list;
  list.set_id(request);
  v1::ListDocumentsResponse listed;
  EXPECT_TRUE(h.stub().ListDocuments(&ctx, list, &listed).ok());
  std::set<std::string> ids;
  for (const auto& d : listed.documents()) ids.insert(d.id());
  return ids;
}

TEST_F(DocumentsTest, TranslatorReachesOnlyTheDocumentsOfTheJobsItHolds) {
  const testing::CallerId translator{"TR-VENDOR-1", "DE", "translator"};
  const testing::CallerId other{"TR-VENDOR-2", "DE", "translator"};
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string a_bytes = RandomBytes(1000), b_bytes = RandomBytes(2000);
  v1::Document a, b;
  ASSERT_TRUE(Upload(h_, Metadata(r.id(), a_bytes), a_bytes, &a).ok());
  ASSERT_TRUE(Upload(h_, Metadata(r.id(), b_bytes), b_bytes, &b).ok());
  IntakeEventHandler handler(requests_);
  ReportJobEvent(handler, r, a.id(), pb::EVENT_TYPE_TRANSLATION_JOB_CLAIMED, translator.authority,
                 1);

  v1::Document meta;
  std::string back;
  EXPECT_EQ(ListedIds(h_, r.id(), translator), std::set<std::string>{a.id()});
  EXPECT_TRUE(Download(h_, r.id(), a.id(), &meta, &back, nullptr, translator).ok());
  EXPECT_EQ(back, a_bytes);
  EXPECT_EQ(Download(h_, r.id(), b.id(), &meta, &back, nullptr, translator).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Download(h_, r.id(), a.id(), &meta, &back, nullptr, other).error_code(),
            grpc::StatusCode::NOT_FOUND);
  {
    // A translator holding no job of the request does not reach it at all.
    grpc::ClientContext ctx;
    IntakeHarness::As(&ctx, other);
    v1::ListDocumentsRequest list;
    list.set_id(r.id());
    v1::ListDocumentsResponse listed;
    EXPECT_EQ(h_.stub().ListDocuments(&ctx, list, &listed).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  // It may add the translation of what it holds, and nothing else.
  const std::string t_bytes = RandomBytes(500);
  v1::DocumentUpload translation = Metadata(r.id(), t_bytes);
  translation.set_kind(v1::DOCUMENT_KIND_TRANSLATION);
  translation.set_language("de");
  translation.set_translation_of_document_id(a.id());
  EXPECT_TRUE(Upload(h_, translation, t_bytes, nullptr, 1 << 20, false, translator).ok());
  translation.set_translation_of_document_id(b.id());
  EXPECT_EQ(Upload(h_, translation, t_bytes, nullptr, 1 << 20, false, translator).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Upload(h_, Metadata(r.id(), t_bytes), t_bytes, nullptr, 1 << 20, false, translator)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);

  // The hold ends with the job.
  ReportJobEvent(handler, r, a.id(), pb::EVENT_TYPE_TRANSLATION_JOB_COMPLETED, translator.authority,
                 2);
  EXPECT_EQ(Download(h_, r.id(), a.id(), &meta, &back, nullptr, translator).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ListedIds(h_, r.id(), testing::kIssuer).size(), 3u);  // the issuer sees all
}

TEST_F(DocumentsTest, CorruptedChunkIsRefusedAndNothingIsStored) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(3 << 20);
  grpc::Status s = Upload(h_, Metadata(r.id(), bytes), bytes, nullptr, 1 << 20, true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(IntakeHarness::BadFields(s), std::set<std::string>{"metadata.sha256"});
  EXPECT_EQ(documents_.StagedCount(), 0u);
  EXPECT_EQ(h_.History(r.id()).size(), 1u);
  v1::Request got;
  ASSERT_TRUE(h_.Get(r.id(), &got).ok());
  EXPECT_EQ(got.etag(), "1");
}

// Issue 16, item 10: an upload whose client goes silent ends after upload-idle-timeout
// with DEADLINE_EXCEEDED, its staged bytes discarded, instead of holding its place among the
// caller's streams for ever; an upload that keeps sending is never ended.
class IdleUploadTest : public ::testing::Test {
 protected:
  // Polls until `pred` holds or 10 s pass.
  static bool Eventually(const std::function<bool()>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
  }

  common::SimulatedClock idle_clock_;
  // Checked only when the test says (CheckNow): the hour-long interval never comes.
  common::IdleWatch watch_{idle_clock_, absl::Seconds(30), absl::Hours(1)};
  InMemoryRequestStore requests_;
  InMemoryDocumentStore documents_{requests_};
  IntakeOptions options_{.max_document_bytes = 8 << 20, .upload_idle_watch = &watch_};
  IntakeHarness h_{requests_, 16, &documents_, options_};
};

TEST_F(IdleUploadTest, SilentUploadEndsWithDeadlineExceededAndLeavesNothingStaged) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(3000);
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::UploadDocumentResponse resp;
  auto writer = h_.stub().UploadDocument(&ctx, &resp);
  v1::UploadDocumentRequest msg;
  *msg.mutable_metadata() = Metadata(r.id(), bytes);
  ASSERT_TRUE(writer->Write(msg));
  msg.set_chunk(bytes.substr(0, 1000));
  ASSERT_TRUE(writer->Write(msg));
  // The chunk is staged and the upload waits for the next message.
  ASSERT_TRUE(Eventually([&] { return documents_.StagedChunks() == 1 && watch_.armed() == 1; }));
  idle_clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(watch_.CheckNow(), 0);  // not yet
  idle_clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(watch_.CheckNow(), 1);
  grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("upload-idle-timeout"));
  EXPECT_TRUE(Eventually([&] { return documents_.StagedCount() == 0; }));
  EXPECT_EQ(h_.History(r.id()).size(), 1u);  // no document was added
}

TEST_F(IdleUploadTest, UploadThatKeepsSendingIsNeverEnded) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(3000);
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::UploadDocumentResponse resp;
  auto writer = h_.stub().UploadDocument(&ctx, &resp);
  v1::UploadDocumentRequest msg;
  *msg.mutable_metadata() = Metadata(r.id(), bytes);
  ASSERT_TRUE(writer->Write(msg));
  // Waiting for the chunk after the metadata.
  ASSERT_TRUE(Eventually([&] { return watch_.armed() == 1; }));
  for (int i = 0; i < 3; ++i) {
    // 20 s between messages each time: never 30 s in a row.
    idle_clock_.Advance(absl::Seconds(20));
    EXPECT_EQ(watch_.CheckNow(), 0) << "message " << i;
    msg.set_chunk(bytes.substr(i * 1000, 1000));
    ASSERT_TRUE(writer->Write(msg));
    // The chunk is staged and the upload waits for the next message.
    ASSERT_TRUE(Eventually([&] {
      return documents_.StagedChunks() == static_cast<size_t>(i + 1) && watch_.armed() == 1;
    }));
  }
  writer->WritesDone();
  EXPECT_TRUE(writer->Finish().ok());
  EXPECT_EQ(resp.document().size_bytes(), 3000);
}

TEST_F(DocumentsTest, SizeCapBadMetadataAndUnknownRequestAreRefused) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string big = RandomBytes((8 << 20) + 1);
  grpc::Status s = Upload(h_, Metadata(r.id(), big), big, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(IntakeHarness::BadFields(s), std::set<std::string>{"chunk"});
  EXPECT_EQ(documents_.StagedCount(), 0u);

  v1::DocumentUpload bad = Metadata(r.id(), "x");
  bad.set_sha256("abc");
  bad.set_language("");
  bad.set_kind(v1::DOCUMENT_KIND_TRANSLATION);
  EXPECT_EQ(IntakeHarness::BadFields(Upload(h_, bad, "x", nullptr)),
            (std::set<std::string>{"metadata.sha256", "metadata.language",
                                   "metadata.translation_of_document_id"}));
  EXPECT_EQ(
      Upload(h_, Metadata(common::Sharding::MakeId("rq", 2, h_.clock().Now()), "x"), "x", nullptr)
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
  v1::Document meta;
  std::string back;
  EXPECT_EQ(Download(h_, r.id(), common::Sharding::MakeId("doc", 2, h_.clock().Now()), &meta, &back)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(DocumentsTest, RetriedUploadWithSameRequestIdStoresOneDocument) {
  const v1::Request r = h_.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(100000);
  v1::DocumentUpload m = Metadata(r.id(), bytes);
  m.set_request_id("upload-1");
  v1::Document a, b;
  ASSERT_TRUE(Upload(h_, m, bytes, &a).ok());
  ASSERT_TRUE(Upload(h_, m, bytes, &b).ok());
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(documents_.StagedCount(), 0u);
  EXPECT_EQ(h_.History(r.id()).size(), 2u);
}

class RedisDocumentsTest : public ::testing::Test {
 protected:
  explicit RedisDocumentsTest(
      testing::RedisServer::Mode mode = testing::RedisServer::Mode::kStandalone)
      : server_(mode) {
    client_ = rogatory::testing::ConnectedClient(server_);
    requests_ =
        std::make_unique<RedisRequestStore>(*client_, common::Sharding(16), absl::Hours(48));
    documents_ = std::make_unique<RedisDocumentStore>(*client_, common::Sharding(16), *requests_);
    h_ = std::make_unique<IntakeHarness>(*requests_, 16, documents_.get());
  }
  ~RedisDocumentsTest() override { h_.reset(); }

  testing::RedisServer server_;
  std::unique_ptr<common::RedisClient> client_;
  std::unique_ptr<RedisRequestStore> requests_;
  std::unique_ptr<RedisDocumentStore> documents_;
  std::unique_ptr<IntakeHarness> h_;
};

TEST_F(RedisDocumentsTest, FiveMebibytesRoundTripAndCorruptedUploadLeavesNoKeys) {
  const v1::Request r = h_->SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(5 << 20);
  v1::Document stored;
  grpc::Status s = Upload(*h_, Metadata(r.id(), bytes), bytes, &stored);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::Document meta;
  std::string back;
  ASSERT_TRUE(Download(*h_, r.id(), stored.id(), &meta, &back).ok());
  EXPECT_TRUE(back == bytes);
  EXPECT_EQ(meta.sha256(), common::Sha256Hex(bytes));
  const int shard = *common::Sharding(16).ShardOf("rq", r.id());
  auto ttl =
      common::RunRedisCommand(*client_, {"PTTL", RedisDocumentStore::DataKey(shard, stored.id())});
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(ttl->integer, -1);  // committed: kept

  EXPECT_EQ(Upload(*h_, Metadata(r.id(), bytes), bytes, nullptr, 1 << 20, true).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  const std::string keys = server_.Cli("--scan --pattern *doc:*");
  EXPECT_EQ(std::count(keys.begin(), keys.end(), '\n'), 1) << keys;  // only the first
  EXPECT_EQ(h_->History(r.id()).size(), 2u);
}

// Document quotas (issue 16 item 11): 3 MiB per request, 5 MiB per uploading authority.
// The same checks on the in-memory store and on Redis, where the bytes past a quota must
// never be kept.
IntakeOptions QuotaOptions() {
  IntakeOptions o;
  o.max_document_bytes = 8 << 20;
  o.max_document_bytes_per_request = 3 << 20;
  o.max_document_bytes_per_authority = 5 << 20;
  return o;
}

void ExpectRequestQuotaHolds(IntakeHarness& h, const UploadFn& upload = Upload) {
  const v1::Request r = h.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string two = RandomBytes(2 << 20), one = RandomBytes(1 << 20);
  grpc::Status s = upload(h, Metadata(r.id(), two), two, nullptr, 1 << 20, false, testing::kIssuer);
  ASSERT_TRUE(s.ok()) << s.error_message();
  s = upload(h, Metadata(r.id(), two), two, nullptr, 1 << 20, false, testing::kIssuer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("max-document-bytes-per-request"));
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("use 2097152 of the 3145728 bytes"));
  // Exactly up to the bound is allowed.
  s = upload(h, Metadata(r.id(), one), one, nullptr, 1 << 20, false, testing::kIssuer);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ListedIds(h, r.id(), testing::kIssuer).size(), 2u);
}

void ExpectAuthorityQuotaHolds(IntakeHarness& h, const UploadFn& upload = Upload) {
  const std::string two = RandomBytes(2 << 20);
  // Three requests in three different shards (of the harness's 16), so the quota is over
  // the authority's bytes in several shards.
  std::vector<v1::Request> picked;
  std::set<int> shards;
  for (int tries = 0; picked.size() < 3 && tries < 100; ++tries) {
    v1::Request r = h.SubmitComplete(pb::INSTRUMENT_EIO);
    if (shards.insert(*common::Sharding(16).ShardOf("rq", r.id())).second) picked.push_back(r);
  }
  ASSERT_EQ(picked.size(), 3u);
  const v1::Request &a = picked[0], &b = picked[1], &c = picked[2];
  const testing::CallerId& issuer = testing::kIssuer;
  ASSERT_TRUE(upload(h, Metadata(a.id(), two), two, nullptr, 1 << 20, false, issuer).ok());
  ASSERT_TRUE(upload(h, Metadata(b.id(), two), two, nullptr, 1 << 20, false, issuer).ok());
  grpc::Status s = upload(h, Metadata(c.id(), two), two, nullptr, 1 << 20, false, issuer);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("max-document-bytes-per-authority"));
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("use 4194304 of the 5242880 bytes"));
  EXPECT_TRUE(ListedIds(h, c.id(), testing::kIssuer).empty());
  // Another authority's uploads count against its own quota, not the issuer's.
  s = upload(h, Metadata(c.id(), two), two, nullptr, 1 << 20, false, testing::kExecutor);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

class DocumentQuotaTest : public ::testing::Test {
 protected:
  InMemoryRequestStore requests_;
  InMemoryDocumentStore documents_{requests_};
  IntakeHarness h_{requests_, 16, &documents_, QuotaOptions()};
};

TEST_F(DocumentQuotaTest, UploadPastTheRequestQuotaIsResourceExhaustedNamingQuotaAndUse) {
  ExpectRequestQuotaHolds(h_);
  EXPECT_EQ(documents_.StagedCount(), 0u);
}

TEST_F(DocumentQuotaTest, AuthorityQuotaCountsTheUploadersDocumentsOnEveryRequest) {
  ExpectAuthorityQuotaHolds(h_);
  EXPECT_EQ(documents_.StagedCount(), 0u);
}

class RedisDocumentQuotaTest : public RedisDocumentsTest {
 protected:
  RedisDocumentQuotaTest() {
    h_ = std::make_unique<IntakeHarness>(*requests_, 16, documents_.get(), QuotaOptions());
  }
  // Document data keys in Redis: committed ones only, never the bytes of a refused upload.
  long DataKeys() {
    const std::string keys = server_.Cli("--scan --pattern *:data");
    return std::count(keys.begin(), keys.end(), '\n');
  }
};

TEST_F(RedisDocumentQuotaTest, UploadPastTheRequestQuotaIsRefusedAndKeepsNoBytes) {
  ExpectRequestQuotaHolds(*h_);
  EXPECT_EQ(DataKeys(), 2);
}

TEST_F(RedisDocumentQuotaTest, AuthorityQuotaCountsTheUploadersDocumentsOnEveryShard) {
  ExpectAuthorityQuotaHolds(*h_);
  EXPECT_EQ(DataKeys(), 3);
}

// The chunked upload (browsers) holds the same quotas, on both stores; a refused chunk
// leaves the upload's bytes staged (expiring), never charged.
TEST_F(DocumentQuotaTest, ChunkedUploadHoldsTheRequestQuota) {
  ExpectRequestQuotaHolds(h_, ChunkedUpload);
}

TEST_F(DocumentQuotaTest, ChunkedUploadHoldsTheAuthorityQuota) {
  ExpectAuthorityQuotaHolds(h_, ChunkedUpload);
}

TEST_F(RedisDocumentQuotaTest, ChunkedUploadHoldsTheRequestQuota) {
  ExpectRequestQuotaHolds(*h_, ChunkedUpload);
}

TEST_F(RedisDocumentQuotaTest, ChunkedUploadHoldsTheAuthorityQuota) {
  ExpectAuthorityQuotaHolds(*h_, ChunkedUpload);
}

// Issue 18: the authority quota on Redis Cluster, where every script stays in one slot (the
// one-node cluster refuses a script whose keys span slots). Each shard counts the authority's
// bytes committed in it; the quota holds over the sum, for requests in several shards.
class ClusterDocumentQuotaTest : public RedisDocumentsTest {
 protected:
  ClusterDocumentQuotaTest() : RedisDocumentsTest(testing::RedisServer::Mode::kOneNodeCluster) {
    h_ = std::make_unique<IntakeHarness>(*requests_, 16, documents_.get(), QuotaOptions());
  }
};

TEST_F(ClusterDocumentQuotaTest, AuthorityQuotaHoldsOverTheUploadersBytesInEveryShard) {
  ExpectAuthorityQuotaHolds(*h_);
}

TEST_F(ClusterDocumentQuotaTest, ChunkedUploadHoldsTheAuthorityQuotaOverEveryShard) {
  ExpectAuthorityQuotaHolds(*h_, ChunkedUpload);
}

TEST_F(ClusterDocumentQuotaTest, RequestQuotaHolds) { ExpectRequestQuotaHolds(*h_); }

// The same on a real three-primary Redis Cluster (redis_cluster.h), where the shards' slots
// live on different nodes: run under the label cluster (Cluster/..., GTEST_FILTER). One test
// only: the cluster is shared by the binary, and the issuer's bytes stay charged.
class ThreePrimaryDocumentQuotaTest : public ::testing::TestWithParam<int> {
 protected:
  common::RedisClient& client_ = testing::SharedClusterClient();
  RedisRequestStore requests_{client_, common::Sharding(16), absl::Hours(48)};
  RedisDocumentStore documents_{client_, common::Sharding(16), requests_};
  IntakeHarness h_{requests_, 16, &documents_, QuotaOptions()};
};

TEST_P(ThreePrimaryDocumentQuotaTest, AuthorityQuotaHoldsOverTheUploadersBytesInEveryShard) {
  ExpectAuthorityQuotaHolds(h_);
}

INSTANTIATE_TEST_SUITE_P(Cluster, ThreePrimaryDocumentQuotaTest, ::testing::Values(0));

// One UploadDocumentChunk call.
grpc::Status SendChunk(IntakeHarness& h, const std::string& upload_id, int64_t offset,
                       const std::string& chunk, int64_t* received = nullptr,
                       const testing::CallerId& caller = testing::kIssuer) {
  v1::UploadDocumentChunkRequest req;
  req.set_upload_id(upload_id);
  req.set_offset(offset);
  req.set_chunk(chunk);
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, caller);
  v1::UploadDocumentChunkResponse resp;
  grpc::Status s = h.stub().UploadDocumentChunk(&ctx, req, &resp);
  if (received != nullptr) *received = resp.received_bytes();
  return s;
}

std::string StartUpload(IntakeHarness& h, const v1::DocumentUpload& metadata) {
  v1::StartDocumentUploadRequest start;
  *start.mutable_metadata() = metadata;
  v1::StartDocumentUploadResponse started;
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  EXPECT_TRUE(h.stub().StartDocumentUpload(&ctx, start, &started).ok());
  return started.upload_id();
}

grpc::Status CommitUpload(IntakeHarness& h, const std::string& upload_id, v1::Document* out) {
  v1::CommitDocumentUploadRequest commit;
  commit.set_upload_id(upload_id);
  grpc::ClientContext ctx;
  IntakeHarness::As(&ctx, testing::kIssuer);
  v1::CommitDocumentUploadResponse resp;
  grpc::Status s = h.stub().CommitDocumentUpload(&ctx, commit, &resp);
  *out = resp.document();
  return s;
}

// Offsets: the next one appends, the last one with the same bytes is a harmless retry,
// anything else is INVALID_ARGUMENT naming `offset`; then the document round-trips.
void ExpectChunkOffsetsHold(IntakeHarness& h) {
  const v1::Request r = h.SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(3000);
  const std::string id = StartUpload(h, Metadata(r.id(), bytes));
  int64_t received = 0;
  ASSERT_TRUE(SendChunk(h, id, 0, bytes.substr(0, 1000), &received).ok());
  EXPECT_EQ(received, 1000);
  ASSERT_TRUE(SendChunk(h, id, 0, bytes.substr(0, 1000), &received).ok());
  EXPECT_EQ(received, 1000);
  for (const auto& [offset, piece] :
       std::vector<std::pair<int64_t, std::string>>{{500, bytes.substr(500, 1000)},
                                                    {1500, bytes.substr(1500, 500)},
                                                    {0, bytes.substr(1000, 1000)}}) {
    grpc::Status s = SendChunk(h, id, offset, piece);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << offset;
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("offset")) << offset;
  }
  ASSERT_TRUE(SendChunk(h, id, 1000, bytes.substr(1000), &received).ok());
  EXPECT_EQ(received, 3000);
  v1::Document stored;
  ASSERT_TRUE(CommitUpload(h, id, &stored).ok());
  EXPECT_EQ(stored.size_bytes(), 3000);
  v1::Document meta;
  std::string back;
  ASSERT_TRUE(Download(h, r.id(), stored.id(), &meta, &back).ok());
  EXPECT_TRUE(back == bytes);
  // Exactly one commit: the upload is gone after it.
  EXPECT_EQ(CommitUpload(h, id, &stored).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(h.History(r.id()).size(), 2u);
}

TEST_F(DocumentsTest, ChunkedUploadTakesChunksInOrderAndARetriedChunkIsHarmless) {
  ExpectChunkOffsetsHold(h_);
  EXPECT_EQ(documents_.StagedCount(), 0u);
}

TEST_F(RedisDocumentsTest, ChunkedUploadTakesChunksInOrderAndARetriedChunkIsHarmless) {
  ExpectChunkOffsetsHold(*h_);
}

TEST_F(RedisDocumentsTest, ChunkedUploadWithABadChecksumLeavesNoKeys) {
  const v1::Request r = h_->SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(3 << 20);
  grpc::Status s = ChunkedUpload(*h_, Metadata(r.id(), bytes), bytes, nullptr, 1 << 20, true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("metadata.sha256"));
  EXPECT_EQ(server_.Cli("--scan --pattern *upload:*"), "");
  EXPECT_EQ(server_.Cli("--scan --pattern *doc:*"), "");
  EXPECT_EQ(h_->History(r.id()).size(), 1u);
}

TEST_F(RedisDocumentsTest, AnIdleChunkedUploadExpiresWithItsBytes) {
  IntakeOptions options;
  common::SimulatedClock idle_clock;
  common::IdleWatch watch{idle_clock, absl::Milliseconds(300), absl::Hours(1)};
  options.upload_idle_watch = &watch;
  h_ = std::make_unique<IntakeHarness>(*requests_, 16, documents_.get(), options);
  const v1::Request r = h_->SubmitComplete(pb::INSTRUMENT_EIO);
  const std::string bytes = RandomBytes(2000);
  const std::string id = StartUpload(*h_, Metadata(r.id(), bytes));
  ASSERT_TRUE(SendChunk(*h_, id, 0, bytes.substr(0, 1000)).ok());
  EXPECT_NE(server_.Cli("--scan --pattern *upload:*"), "");
  // Redis expires the keys itself (real time): poll, at most 10 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (server_.Cli("--scan --pattern *doc:*") != "" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(server_.Cli("--scan --pattern *doc:*"), "");
  EXPECT_EQ(server_.Cli("--scan --pattern *upload:*"), "");
  EXPECT_EQ(SendChunk(*h_, id, 1000, bytes.substr(1000)).error_code(), grpc::StatusCode::NOT_FOUND);
  const int shard = *common::Sharding(16).ShardOf("rq", r.id());
  EXPECT_EQ(
      server_.Cli(absl::StrCat("HGET ", RedisDocumentStore::UsageKey(shard, r.id()), " total")),
      "\n");   // nothing was charged (a nil answer)
  h_.reset();  // before the watch it holds goes
}

}  // namespace
}  // namespace rogatory::intake
