// Need-to-know on every RPC of intake, role by role (issue 8, point 3), on the in-memory
// stores through a real in-process gRPC server. Each row gets a fresh request issued by
// FR-TJ-PARIS-JI to Germany, routed to DE-STA-MUENCHEN, with one document whose translation
// job XL-HOLDER holds.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "in_memory_document_store.h"
#include "in_memory_request_store.h"
#include "intake_event_handler.h"
#include "intake_fixtures.h"
#include "intake_service.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;

struct Who {
  std::string name, authority, state, roles;
};
const Who kIssuerA{"issuing authority A", "FR-TJ-PARIS-JI", "FR", "issuing"};
const Who kStrangerB{"issuing authority B (stranger)", "BE-PARQUET-BRUXELLES", "BE", "issuing"};
const Who kCentral{"central authority of the requested state", "DE-BFJ", "DE", "central"};
const Who kExecutor{"executing authority", "DE-STA-MUENCHEN", "DE", "executing"};
const Who kHolder{"translator holding the job", "XL-HOLDER", "DE", "translator"};
const Who kOther{"translator not holding the job", "XL-OTHER", "DE", "translator"};
const Who kAuditor{"auditor", "EU-AUDIT-1", "FR", "auditor"};
const Who kOperator{"operator", "OPS-1", "", "operator"};
const Who kService{"Rogatory service", "rogatory-routing", "", "service"};

// Keeps every audit record, to check that an access let through was noted on the trail.
class RecordingAuditor final : public common::Auditor {
 public:
  void Record(common::AuditRecord record, std::function<void(absl::Status)> done) override {
    {
      absl::MutexLock lock(&mu_);
      records_.push_back(std::move(record));
    }
    done(absl::OkStatus());
  }
  std::vector<common::AuditRecord> records() {
    absl::MutexLock lock(&mu_);
    return records_;
  }

 private:
  absl::Mutex mu_;
  std::vector<common::AuditRecord> records_;
};

enum class Want { kOk, kHidden, kNotFound, kDenied };
const char* Name(Want w) {
  switch (w) {
    case Want::kOk:
      return "OK";
    case Want::kHidden:
      return "OK without the request";
    case Want::kNotFound:
      return "NOT_FOUND";
    case Want::kDenied:
      return "PERMISSION_DENIED";
  }
  return "?";
}

struct Fixture;
// An RPC on the row's request: its status, and whether the request showed in the answer.
using Rpc = std::function<grpc::Status(Fixture&, grpc::ClientContext&, bool* shown)>;

struct Fixture {
  InMemoryRequestStore requests;
  InMemoryDocumentStore documents{requests};
  common::SimulatedClock clock{absl::FromUnixSeconds(1'790'000'000)};
  common::MetadataAuthenticator authenticator;
  common::NoRateLimiter limiter;
  RecordingAuditor auditor;
  common::Pipeline pipeline{authenticator, limiter, auditor, clock};
  IntakeService service{requests,   clock,
                        pipeline,   common::Sharding(4),
                        &documents, IntakeOptions{.max_document_bytes = 1 << 20}};
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::IntakeService::Stub> stub;
  std::string id;        // the row's request
  std::string document;  // its document

  Fixture() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    stub = v1::IntakeService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  ~Fixture() { server->Shutdown(); }

  static void As(grpc::ClientContext& ctx, const Who& who) {
    ctx.AddMetadata("x-rogatory-authority", who.authority);
    ctx.AddMetadata("x-rogatory-state", who.state);
    ctx.AddMetadata("x-rogatory-roles", who.roles);
  }

  grpc::Status Upload(const Who& who, const std::string& translation_of, v1::Document* out) {
    grpc::ClientContext ctx;
    As(ctx, who);
    v1::UploadDocumentResponse resp;
    auto writer = stub->UploadDocument(&ctx, &resp);
    const std::string bytes = "%PDF-1.4 invented bytes";
    v1::UploadDocumentRequest msg;
    v1::DocumentUpload* m = msg.mutable_metadata();
    m->set_id(id);
    m->set_kind(translation_of.empty() ? v1::DOCUMENT_KIND_REQUEST_FORM
                                       : v1::DOCUMENT_KIND_TRANSLATION);
    m->set_translation_of_document_id(translation_of);
    m->set_language(translation_of.empty() ? "fr" : "de");
    m->set_media_type("application/pdf");
    m->set_sha256(common::Sha256Hex(bytes));
    bool ok = writer->Write(msg);
    msg.set_chunk(bytes);
    if (ok) writer->Write(msg);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (out != nullptr) *out = resp.document();
    return s;
  }

  // The same upload through the chunked-unary RPCs browsers use: start, one chunk, commit.
  grpc::Status ChunkedUpload(const Who& who, const std::string& translation_of, v1::Document* out) {
    const std::string bytes = "%PDF-1.4 invented bytes";
    v1::StartDocumentUploadRequest start;
    v1::DocumentUpload* m = start.mutable_metadata();
    m->set_id(id);
    m->set_kind(translation_of.empty() ? v1::DOCUMENT_KIND_REQUEST_FORM
                                       : v1::DOCUMENT_KIND_TRANSLATION);
    m->set_translation_of_document_id(translation_of);
    m->set_language(translation_of.empty() ? "fr" : "de");
    m->set_media_type("application/pdf");
    m->set_sha256(common::Sha256Hex(bytes));
    v1::StartDocumentUploadResponse started;
    {
      grpc::ClientContext ctx;
      As(ctx, who);
      grpc::Status s = stub->StartDocumentUpload(&ctx, start, &started);
      if (!s.ok()) return s;
    }
    v1::UploadDocumentChunkRequest chunk;
    chunk.set_upload_id(started.upload_id());
    chunk.set_chunk(bytes);
    v1::UploadDocumentChunkResponse chunked;
    {
      grpc::ClientContext ctx;
      As(ctx, who);
      grpc::Status s = stub->UploadDocumentChunk(&ctx, chunk, &chunked);
      if (!s.ok()) return s;
    }
    v1::CommitDocumentUploadRequest commit;
    commit.set_upload_id(started.upload_id());
    v1::CommitDocumentUploadResponse resp;
    grpc::ClientContext ctx;
    As(ctx, who);
    grpc::Status s = stub->CommitDocumentUpload(&ctx, commit, &resp);
    if (out != nullptr) *out = resp.document();
    return s;
  }

  // Mutates the stored request as intake's event handler does for `event`.
  void Apply(const pb::Event& event) {
    absl::Notification done;
    requests.Load(id, std::nullopt, [&](absl::StatusOr<Snapshot> snap) {
      ASSERT_TRUE(snap.ok()) << snap.status();
      Mutation m = IntakeEventHandler::Plan(
          *snap, event, common::Dedupe{absl::StrCat("seen:", event.event_id()), "60000"});
      requests.Mutate(std::move(m), [&](absl::StatusOr<MutationOutcome> o) {
        EXPECT_TRUE(o.ok()) << o.status();
        done.Notify();
      });
    });
    done.WaitForNotification();
  }

  // A request issued by A, routed to the executing authority, with a document whose job
  // the holder claimed.
  void Prepare() {
    grpc::ClientContext ctx;
    As(ctx, kIssuerA);
    v1::SubmitRequestRequest req;
    *req.mutable_content() = testing::CompleteEio();
    v1::SubmitRequestResponse resp;
    ASSERT_TRUE(stub->SubmitRequest(&ctx, req, &resp).ok());
    id = resp.request().id();
    v1::Document doc;
    ASSERT_TRUE(Upload(kIssuerA, "", &doc).ok());
    document = doc.id();

    pb::Event routed;
    routed.set_event_id(common::NewUlid(clock.Now()));
    routed.set_request_id(id);
    routed.set_type(pb::EVENT_TYPE_ROUTING_DECIDED);
    routed.set_source("routing");
    routed.set_status(pb::REQUEST_STATUS_FORWARDED);
    routed.mutable_actor()->set_service("rogatory-routing");
    routed.mutable_occur_time()->set_seconds(1'790'000'100);
    auto* competent = routed.mutable_routing_decided()->mutable_competent_authority();
    competent->set_authority_id(kExecutor.authority);
    competent->set_state("DE");
    Apply(routed);

    pb::Event claimed;
    claimed.set_event_id(common::NewUlid(clock.Now()));
    claimed.set_request_id(id);
    claimed.set_type(pb::EVENT_TYPE_TRANSLATION_JOB_CLAIMED);
    claimed.set_source("routing");
    claimed.mutable_actor()->mutable_authority()->set_authority_id(kHolder.authority);
    claimed.mutable_actor()->set_role(pb::AUTHORITY_ROLE_TRANSLATOR);
    claimed.mutable_translation_job()->set_document_id(document);
    Apply(claimed);
  }

  // Whether the last audit record of `method` noted the row's request.
  bool Touched(const std::string& method) {
    auto records = auditor.records();
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
      if (it->method != method) continue;
      for (const auto& s : it->subjects) {
        if (s.request_id == id) return true;
      }
      return false;
    }
    return false;
  }
};

struct Column {
  std::string method;
  Rpc rpc;
};

std::vector<Column> Columns() {
  return {
      {"GetRequest",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::GetRequestRequest r;
         r.set_id(f.id);
         v1::GetRequestResponse resp;
         grpc::Status s = f.stub->GetRequest(&ctx, r, &resp);
         *shown = resp.request().id() == f.id;
         return s;
       }},
      {"ListRequests",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::ListRequestsRequest r;
         v1::ListRequestsResponse resp;
         grpc::Status s = f.stub->ListRequests(&ctx, r, &resp);
         *shown = false;
         for (const auto& q : resp.requests()) *shown = *shown || q.id() == f.id;
         return s;
       }},
      {"GetRequestHistory",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::GetRequestHistoryRequest r;
         r.set_id(f.id);
         v1::GetRequestHistoryResponse resp;
         grpc::Status s = f.stub->GetRequestHistory(&ctx, r, &resp);
         *shown = resp.events_size() > 0;
         return s;
       }},
      {"TransitionRequest",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::TransitionRequestRequest r;
         r.set_id(f.id);
         r.set_target_status(pb::REQUEST_STATUS_RECOGNISED);
         v1::TransitionRequestResponse resp;
         grpc::Status s = f.stub->TransitionRequest(&ctx, r, &resp);
         *shown = resp.request().id() == f.id;
         return s;
       }},
      {"AcknowledgeRequest",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::AcknowledgeRequestRequest r;
         r.set_id(f.id);
         v1::AcknowledgeRequestResponse resp;
         grpc::Status s = f.stub->AcknowledgeRequest(&ctx, r, &resp);
         *shown = resp.request().id() == f.id;
         return s;
       }},
      {"SupplementRequest",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::SupplementRequestRequest r;
         r.set_id(f.id);
         r.mutable_content()->set_urgency(pb::URGENCY_URGENT);
         r.mutable_update_mask()->add_paths("urgency");
         v1::SupplementRequestResponse resp;
         grpc::Status s = f.stub->SupplementRequest(&ctx, r, &resp);
         *shown = resp.request().id() == f.id;
         return s;
       }},
      {"WithdrawRequest",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::WithdrawRequestRequest r;
         r.set_id(f.id);
         r.set_reason_code("NO_LONGER_NEEDED");
         v1::WithdrawRequestResponse resp;
         grpc::Status s = f.stub->WithdrawRequest(&ctx, r, &resp);
         *shown = resp.request().id() == f.id;
         return s;
       }},
      {"ListDocuments",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::ListDocumentsRequest r;
         r.set_id(f.id);
         v1::ListDocumentsResponse resp;
         grpc::Status s = f.stub->ListDocuments(&ctx, r, &resp);
         *shown = resp.documents_size() > 0;
         return s;
       }},
      {"DownloadDocument",
       [](Fixture& f, grpc::ClientContext& ctx, bool* shown) {
         v1::DownloadDocumentRequest r;
         r.set_id(f.id);
         r.set_document_id(f.document);
         auto reader = f.stub->DownloadDocument(&ctx, r);
         v1::DownloadDocumentResponse resp;
         *shown = false;
         while (reader->Read(&resp)) *shown = true;
         return reader->Finish();
       }},
  };
}

// The expected outcome per column, in Columns() order.
struct Row {
  Who who;
  std::vector<Want> want;
};

TEST(IntakeAccessMatrixTest, EveryRoleAgainstEveryIntakeRpc) {
  using W = Want;
  const W O = W::kOk, H = W::kHidden, N = W::kNotFound, D = W::kDenied;
  // GetRequest ListRequests GetRequestHistory TransitionRequest AcknowledgeRequest
  // SupplementRequest WithdrawRequest ListDocuments DownloadDocument
  const std::vector<Row> rows = {
      {kIssuerA, {O, O, O, D, D, O, O, O, O}}, {kStrangerB, {N, H, N, N, N, N, N, N, N}},
      {kCentral, {O, O, O, O, O, D, D, O, O}}, {kExecutor, {O, O, O, O, O, D, D, O, O}},
      {kHolder, {N, D, N, N, N, N, N, O, O}},  {kOther, {N, D, N, N, N, N, N, N, N}},
      {kAuditor, {O, O, O, D, D, D, D, O, O}}, {kOperator, {N, D, N, N, N, N, N, N, N}},
      {kService, {O, O, O, O, O, O, O, O, O}},
  };
  const std::vector<Column> columns = Columns();
  int cells = 0;
  for (const Row& row : rows) {
    ASSERT_EQ(row.want.size(), columns.size());
    for (size_t c = 0; c < columns.size(); ++c) {
      Fixture f;
      f.Prepare();
      if (::testing::Test::HasFatalFailure()) return;
      grpc::ClientContext ctx;
      Fixture::As(ctx, row.who);
      bool shown = false;
      const grpc::Status s = columns[c].rpc(f, ctx, &shown);
      const Want want = row.want[c];
      const std::string where =
          absl::StrCat(row.who.name, " x ", columns[c].method, ": want ", Name(want), ", got ",
                       s.error_code(), " ", s.error_message());
      ++cells;
      switch (want) {
        case Want::kOk:
          EXPECT_TRUE(s.ok()) << where;
          EXPECT_TRUE(shown) << where;
          EXPECT_TRUE(f.Touched(columns[c].method)) << where << " (not on the audit trail)";
          break;
        case Want::kHidden:
          EXPECT_TRUE(s.ok()) << where;
          EXPECT_FALSE(shown) << where;
          EXPECT_FALSE(f.Touched(columns[c].method)) << where;
          break;
        case Want::kNotFound:
          EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << where;
          EXPECT_FALSE(f.Touched(columns[c].method)) << where;
          break;
        case Want::kDenied:
          EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << where;
          EXPECT_FALSE(f.Touched(columns[c].method)) << where;
          break;
      }
    }
  }
  EXPECT_EQ(cells, 81);
}

TEST(IntakeAccessMatrixTest, AuthorityAReadingBsRequestGetsTheNotFoundOfAMissingOne) {
  Fixture f;
  f.Prepare();
  // B's own request; A asks for it.
  grpc::ClientContext submit;
  Fixture::As(submit, kStrangerB);
  v1::SubmitRequestRequest sr;
  *sr.mutable_content() = testing::CompleteEio();
  sr.mutable_content()->mutable_issuing_authority()->set_authority_id(kStrangerB.authority);
  sr.mutable_content()->mutable_issuing_authority()->set_state("BE");
  v1::SubmitRequestResponse created;
  ASSERT_TRUE(f.stub->SubmitRequest(&submit, sr, &created).ok());

  auto get = [&](const std::string& id) {
    grpc::ClientContext ctx;
    Fixture::As(ctx, kIssuerA);
    v1::GetRequestRequest r;
    r.set_id(id);
    v1::GetRequestResponse resp;
    return f.stub->GetRequest(&ctx, r, &resp);
  };
  const grpc::Status hidden = get(created.request().id());
  EXPECT_EQ(hidden.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(hidden.error_message(), absl::StrCat("no request with id ", created.request().id()));
  // A request id that exists nowhere answers the same way.
  const std::string missing = common::Sharding::MakeId("rq", 1, f.clock.Now());
  const grpc::Status absent = get(missing);
  EXPECT_EQ(absent.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(absent.error_message(), absl::StrCat("no request with id ", missing));
}

TEST(IntakeAccessMatrixTest, SubmissionIsTheIssuersOwn) {
  const std::vector<std::pair<Who, grpc::StatusCode>> rows = {
      {kIssuerA, grpc::StatusCode::OK},
      {kStrangerB, grpc::StatusCode::PERMISSION_DENIED},  // filing in A's name
      {Who{"central authority of the issuing state", "FR-BEPI", "FR", "central"},
       grpc::StatusCode::OK},
      {kCentral, grpc::StatusCode::PERMISSION_DENIED},
      {kExecutor, grpc::StatusCode::PERMISSION_DENIED},
      {kHolder, grpc::StatusCode::PERMISSION_DENIED},
      {kAuditor, grpc::StatusCode::PERMISSION_DENIED},
      {kOperator, grpc::StatusCode::PERMISSION_DENIED},
      {kService, grpc::StatusCode::OK},
  };
  Fixture f;
  for (const auto& [who, want] : rows) {
    grpc::ClientContext ctx;
    Fixture::As(ctx, who);
    v1::SubmitRequestRequest r;
    *r.mutable_content() = testing::CompleteEio();
    v1::SubmitRequestResponse resp;
    EXPECT_EQ(f.stub->SubmitRequest(&ctx, r, &resp).error_code(), want) << who.name;
  }
}

TEST(IntakeAccessMatrixTest, TranslatorsUploadOnlyTranslationsOfDocumentsTheyHold) {
  const std::vector<std::pair<Who, grpc::StatusCode>> rows = {
      {kIssuerA, grpc::StatusCode::OK},
      {kStrangerB, grpc::StatusCode::NOT_FOUND},
      {kCentral, grpc::StatusCode::OK},
      {kExecutor, grpc::StatusCode::OK},
      {kHolder, grpc::StatusCode::OK},
      {kOther, grpc::StatusCode::NOT_FOUND},
      {kAuditor, grpc::StatusCode::PERMISSION_DENIED},
      {kOperator, grpc::StatusCode::NOT_FOUND},
      {kService, grpc::StatusCode::OK},
  };
  for (const auto& [who, want] : rows) {
    Fixture f;
    f.Prepare();
    EXPECT_EQ(f.Upload(who, f.document, nullptr).error_code(), want) << who.name;
    EXPECT_EQ(f.Touched("UploadDocument"), want == grpc::StatusCode::OK) << who.name;
  }
}

// The chunked upload browsers use follows the same access rules, and each of its calls is on
// the audit trail.
TEST(IntakeAccessMatrixTest, ChunkedUploadFollowsTheSameAccessRules) {
  const std::vector<std::pair<Who, grpc::StatusCode>> rows = {
      {kIssuerA, grpc::StatusCode::OK},
      {kStrangerB, grpc::StatusCode::NOT_FOUND},
      {kCentral, grpc::StatusCode::OK},
      {kExecutor, grpc::StatusCode::OK},
      {kHolder, grpc::StatusCode::OK},
      {kOther, grpc::StatusCode::NOT_FOUND},
      {kAuditor, grpc::StatusCode::PERMISSION_DENIED},
      {kOperator, grpc::StatusCode::NOT_FOUND},
      {kService, grpc::StatusCode::OK},
  };
  for (const auto& [who, want] : rows) {
    Fixture f;
    f.Prepare();
    v1::Document stored;
    EXPECT_EQ(f.ChunkedUpload(who, f.document, &stored).error_code(), want) << who.name;
    const bool ok = want == grpc::StatusCode::OK;
    if (ok) {
      EXPECT_EQ(stored.translation_of_document_id(), f.document) << who.name;
    }
    for (const char* method :
         {"StartDocumentUpload", "UploadDocumentChunk", "CommitDocumentUpload"}) {
      EXPECT_EQ(f.Touched(method), ok) << who.name << " " << method;
    }
  }
}

}  // namespace
}  // namespace rogatory::intake
