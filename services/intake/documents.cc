// The document RPCs of IntakeService: UploadDocument (client streaming), DownloadDocument
// (server streaming) and ListDocuments, on a DocumentStore.
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "intake_service.h"
#include "request_validator.h"
#include "rogatory/common/access.h"
#include "rogatory/common/codes.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/status.h"
#include "translator_access.h"

namespace rogatory::intake {

namespace commonpb = rogatory::common::v1;

namespace {

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F');
         });
}

}  // namespace

absl::Status ValidateUploadMetadata(const v1::DocumentUpload& m, int shard_count) {
  common::FieldViolations v;
  const std::string p = "metadata.";
  if (!IsValidRequestId(m.request_id())) {
    v.Add(p + "request_id", "must be at most 64 characters of [A-Za-z0-9_-]");
  }
  if (m.id().empty()) {
    v.Add(p + "id", "is required");
  } else if (!common::Sharding(shard_count).ShardOf("rq", m.id()).ok()) {
    v.Add(p + "id", "is not a request id");
  }
  if (m.kind() == v1::DOCUMENT_KIND_UNSPECIFIED) {
    v.Add(p + "kind", "is required");
  } else if (!v1::DocumentKind_IsValid(m.kind())) {
    v.Add(p + "kind", "has an unknown value");
  }
  if (!common::IsLanguageTag(m.language())) {
    v.Add(p + "language", "is required: a BCP 47 language tag such as \"de\"");
  }
  if (m.media_type().empty() || m.media_type().size() > 128 ||
      m.media_type().find('/') == std::string::npos) {
    v.Add(p + "media_type", "is required: a media type such as \"application/pdf\"");
  }
  if (!IsSha256Hex(m.sha256())) v.Add(p + "sha256", "must be 64 hex digits (SHA-256)");
  if (m.title().size() > 256) v.Add(p + "title", "must be at most 256 characters");
  if (m.kind() == v1::DOCUMENT_KIND_TRANSLATION && m.translation_of_document_id().empty()) {
    v.Add(p + "translation_of_document_id", "is required for a translation");
  } else if (!m.translation_of_document_id().empty() &&
             !common::Sharding(shard_count).ShardOf("doc", m.translation_of_document_id()).ok()) {
    v.Add(p + "translation_of_document_id", "is not a document id");
  }
  return v.ToStatus();
}

namespace {

absl::Status Invalid(const std::string& field, const std::string& why) {
  common::FieldViolations v;
  v.Add(field, why);
  return v.ToStatus();
}

}  // namespace

// One upload: reads the metadata, checks the request, stages each chunk while hashing it,
// then verifies the SHA-256 and commits. Exactly one read or store operation is in flight
// at a time, so its state needs no lock. Deletes itself when the RPC is done.
// Need-to-know for documents (common/access.h). Calls `next` with nullopt when the caller
// reaches the request on its own account (its parties, an auditor for reads, a service):
// it reaches every document, and the request is noted on the call's trail with `kind`.
// A translator otherwise reaches only the documents whose job it holds: `next` gets them
// (the caller notes the document it lets through). Anyone else, or a translator holding
// no job on the request, gets the NOT_FOUND of a missing request. Store errors pass on.
void DocumentReach(RequestStore& store, const common::CallContext& call, const std::string& id,
                   common::AccessKind kind,
                   std::function<void(absl::StatusOr<std::optional<std::set<std::string>>>)> next) {
  using Reach = absl::StatusOr<std::optional<std::set<std::string>>>;
  store.Get(id, [&store, call, id, kind, next](absl::StatusOr<v1::Request> found) {
    if (!found.ok()) return next(found.status());
    const absl::Status own =
        common::CheckRequestAccess(call, PartiesOfRequest(*found), id, kind, "documents");
    if (own.ok()) return next(std::optional<std::set<std::string>>());
    if (own.code() != absl::StatusCode::kNotFound ||
        !call.caller.HasRole(common::kRoleTranslator)) {
      return next(Reach(own));
    }
    store.History(id, [next, own, translator = call.caller.authority_id](
                          absl::StatusOr<std::vector<common::v1::Event>> history) {
      if (!history.ok()) return next(history.status());
      std::set<std::string> held = DocumentsHeldBy(*history, translator);
      if (held.empty()) return next(Reach(own));
      next(std::optional<std::set<std::string>>(std::move(held)));
    });
  });
}

// What a translator is told about a document it does not hold: as if it did not exist.
absl::Status NoSuchDocument() { return absl::NotFoundError("no such document on this request"); }

class UploadReactor final : public grpc::ServerReadReactor<v1::UploadDocumentRequest> {
 public:
  UploadReactor(IntakeService& service, grpc::CallbackServerContext* context,
                v1::UploadDocumentResponse* response)
      : s_(service),
        response_(response),
        start_(s_.pipeline_.clock().MonotonicNow()),
        hash_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(hash_, EVP_sha256(), nullptr);
    auto call = s_.pipeline_.Admit(*context, "UploadDocument", nullptr,
                                   common::Pipeline::CallKind::kStream);
    if (!call.ok()) {
      Finish(common::ToGrpcStatus(call.status()));
      return;
    }
    call_ = *std::move(call);
    admitted_ = true;
    if (s_.options_.upload_idle_watch != nullptr) {
      // Runs on the watch's thread while a read is pending and nothing else runs for this
      // upload: it ends the call, and the pending read then completes unheeded.
      idle_ = s_.options_.upload_idle_watch->Watch([this] {
        Fail(absl::DeadlineExceededError(absl::StrCat(
            "no message for ", absl::FormatDuration(s_.options_.upload_idle_watch->timeout()),
            " (upload-idle-timeout): the upload was abandoned; upload the document again")));
      });
    }
    Read();
  }
  ~UploadReactor() override { EVP_MD_CTX_free(hash_); }

  void OnReadDone(bool ok) override {
    // Expired while waiting: the watch ends the call (see Read).
    if (idle_ != nullptr && !idle_->Disarm()) return;
    if (!ok) {
      if (!have_metadata_) return Fail(Invalid("metadata", "the first message must carry it"));
      return Verify();
    }
    if (!have_metadata_) return OnMetadata();
    if (message_.part_case() != v1::UploadDocumentRequest::kChunk) {
      return Fail(Invalid("chunk", "only the first message carries metadata"));
    }
    std::string chunk = std::move(*message_.mutable_chunk());
    if (chunk.size() > IntakeService::kMaxChunkBytes) {
      return Fail(Invalid("chunk", "a chunk holds at most 1 MiB"));
    }
    size_ += static_cast<int64_t>(chunk.size());
    if (size_ > s_.options_.max_document_bytes) {
      return Fail(Invalid("chunk", absl::StrCat("the document exceeds the limit of ",
                                                s_.options_.max_document_bytes, " bytes")));
    }
    if (chunk.empty()) return Read();
    EVP_DigestUpdate(hash_, chunk.data(), chunk.size());
    staged_ = true;
    s_.documents_->Stage(meta_.id(), document_.id(), std::move(chunk), size_, Quota(),
                         [this](absl::StatusOr<bool> staged) {
                           if (!staged.ok()) return Fail(staged.status());
                           Read();
                         });
  }

  void OnDone() override { delete this; }

 private:
  DocumentQuota Quota() const { return s_.UploadQuota(call_); }

  // Waits for the client's next message, for at most upload-idle-timeout.
  void Read() {
    if (idle_ != nullptr) idle_->Arm();
    StartRead(&message_);
  }

  void OnMetadata() {
    if (message_.part_case() != v1::UploadDocumentRequest::kMetadata) {
      return Fail(Invalid("metadata", "the first message must carry it"));
    }
    meta_ = message_.metadata();
    have_metadata_ = true;
    if (absl::Status s = ValidateUploadMetadata(meta_, s_.sharding_.shard_count()); !s.ok()) {
      return Fail(s);
    }
    // A replay is answered at the commit, once the bytes are in.
    s_.BeginUpload(call_, meta_, /*look_up_replay=*/false,
                   [this](absl::StatusOr<IntakeService::UploadPlan> plan) {
                     if (!plan.ok()) return Fail(plan.status());
                     document_ = std::move(plan->document);
                     idempotency_ = std::move(plan->idempotency);
                     Read();
                   });
  }

  void Verify() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(hash_, digest, &length);
    const std::string hex =
        absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
    if (absl::Status s = CheckUploadedBytes(size_, hex, document_); !s.ok()) return Fail(s);
    document_.set_size_bytes(size_);
    s_.CommitUpload(call_, document_, idempotency_, IntakeService::kChangeAttempts,
                    [this](absl::StatusOr<v1::Document> stored, bool replayed) {
                      if (!stored.ok()) return Fail(stored.status());
                      *response_->mutable_document() = *std::move(stored);
                      // A replay drops our bytes; a commit made them the document's.
                      if (!replayed) staged_ = false;
                      Fail(absl::OkStatus());
                    });
  }

  // Ends the call, discarding what was staged first.
  void Fail(absl::Status status) {
    if (!staged_) return Done(std::move(status));
    staged_ = false;
    s_.documents_->Discard(
        meta_.id(), document_.id(),
        [this, status = std::move(status)](absl::StatusOr<bool>) { Done(status); });
  }

  void Done(const absl::Status& status) {
    if (!admitted_) return Finish(common::ToGrpcStatus(status));
    s_.pipeline_.Audit(call_, status, start_,
                       [this](absl::Status answer) { Finish(common::ToGrpcStatus(answer)); });
  }

  IntakeService& s_;
  v1::UploadDocumentResponse* response_;
  const common::MonotonicTime start_;
  EVP_MD_CTX* hash_;
  common::CallContext call_;
  bool admitted_ = false;
  v1::UploadDocumentRequest message_;
  v1::DocumentUpload meta_;
  bool have_metadata_ = false;
  bool staged_ = false;
  int64_t size_ = 0;
  v1::Document document_;
  std::optional<Idempotency> idempotency_;
  std::shared_ptr<common::IdleWatch::Entry> idle_;  // null: no idle timeout
};

absl::Status CheckUploadedBytes(int64_t size, const std::string& sha256_hex,
                                const v1::Document& document) {
  if (size == 0) return Invalid("chunk", "no bytes were sent");
  if (sha256_hex != document.sha256()) {
    return Invalid("metadata.sha256",
                   "the bytes received do not match it: a chunk was corrupted or lost");
  }
  return absl::OkStatus();
}

DocumentQuota IntakeService::UploadQuota(const common::CallContext& call) const {
  return DocumentQuota{call.caller.authority_id, options_.max_document_bytes_per_request,
                       options_.max_document_bytes_per_authority};
}

absl::Duration IntakeService::UploadIdle() const {
  if (options_.upload_idle_watch == nullptr ||
      options_.upload_idle_watch->timeout() <= absl::ZeroDuration()) {
    return absl::Hours(1);
  }
  return options_.upload_idle_watch->timeout();
}

void IntakeService::BeginUpload(const common::CallContext& call, const v1::DocumentUpload& meta,
                                bool look_up_replay,
                                std::function<void(absl::StatusOr<UploadPlan>)> next) {
  const absl::Time now = clock_.Now();
  const int shard = *sharding_.ShardOf("rq", meta.id());
  auto plan = std::make_shared<UploadPlan>();
  v1::Document& d = plan->document;
  d.set_id(common::Sharding::MakeId("doc", shard, now));
  d.set_request_id(meta.id());
  d.set_kind(meta.kind());
  d.set_language(meta.language());
  d.set_media_type(meta.media_type());
  d.set_sha256(absl::AsciiStrToLower(meta.sha256()));
  d.set_translation_of_document_id(meta.translation_of_document_id());
  d.set_title(meta.title());
  if (!meta.request_id().empty()) {
    // Both upload methods fingerprint the metadata alike, so they share their keys.
    plan->idempotency = Idempotency{call.caller.authority_id, meta.request_id(),
                                    Fingerprint("UploadDocument", meta)};
  }
  // The request must exist before bytes are taken in; a translator may only add the
  // translation of a document whose job it holds.
  store_.Load(meta.id(), look_up_replay ? plan->idempotency : std::nullopt,
              [this, call, meta, plan, next = std::move(next)](absl::StatusOr<Snapshot> snap) {
                if (!snap.ok()) return next(snap.status());
                plan->replay = snap->replay;
                DocumentReach(store_, call, meta.id(), common::AccessKind::kChange,
                              [call, meta, plan,
                               next](absl::StatusOr<std::optional<std::set<std::string>>> reach) {
                                if (!reach.ok()) return next(reach.status());
                                if (reach->has_value()) {
                                  if (meta.kind() != v1::DOCUMENT_KIND_TRANSLATION ||
                                      !(*reach)->contains(meta.translation_of_document_id())) {
                                    return next(NoSuchDocument());
                                  }
                                  call.Touch(meta.id(), common::AccessKind::kChange,
                                             meta.translation_of_document_id());
                                }
                                next(std::move(*plan));
                              });
              });
}

void IntakeService::CommitUpload(
    const common::CallContext& call, v1::Document document, std::optional<Idempotency> idempotency,
    int attempts_left, std::function<void(absl::StatusOr<v1::Document>, bool replayed)> done) {
  auto replayed = [done](const std::string& result) {
    v1::Document earlier;
    if (!earlier.ParseFromString(result)) {
      return done(absl::InternalError("stored result does not parse"), false);
    }
    done(std::move(earlier), true);
  };
  const std::string id = document.request_id();
  store_.Load(
      id, idempotency,
      [this, call, document = std::move(document), idempotency, attempts_left, done,
       replayed](absl::StatusOr<Snapshot> snap) mutable {
        if (!snap.ok()) return done(snap.status(), false);
        if (snap->replay.has_value()) return replayed(*snap->replay);
        const absl::Time now = clock_.Now();
        *document.mutable_create_time() =
            google::protobuf::util::TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(now));
        const int64_t version = snap->version + 1;
        v1::Request after = snap->request;
        after.set_etag(absl::StrCat(version));
        commonpb::Event e = NewIntakeEvent(after, commonpb::EVENT_TYPE_DOCUMENT_ADDED, version, now,
                                           ActorOf(call.caller));
        e.mutable_document()->set_document_id(document.id());
        e.mutable_document()->set_language(document.language());
        e.mutable_document()->set_sha256(document.sha256());
        Mutation m;
        m.id = document.request_id();
        m.expected_version = snap->version;
        m.new_version = version;
        m.updated_ms = absl::ToUnixMillis(now);
        m.history.push_back(e);
        m.outbox.push_back(std::move(e));
        m.idempotency = idempotency;
        m.result = document.SerializeAsString();
        documents_->Commit(
            document, std::move(m), UploadQuota(call),
            [this, call, document, idempotency, attempts_left, done,
             replayed](absl::StatusOr<MutationOutcome> outcome) {
              if (!outcome.ok()) {
                if (IsStaleVersion(outcome.status()) && attempts_left > 1) {
                  return CommitUpload(call, document, idempotency, attempts_left - 1, done);
                }
                return done(outcome.status(), false);
              }
              if (outcome->kind == MutationOutcome::Kind::kReplayed)
                return replayed(outcome->result);
              common::Log::Info("document added", {{"request", document.request_id()},
                                                   {"document", document.id()},
                                                   {"size_bytes", document.size_bytes()},
                                                   {"trace_id", call.trace_id}});
              done(document, false);
            });
      });
}

grpc::ServerReadReactor<v1::UploadDocumentRequest>* IntakeService::UploadDocument(
    grpc::CallbackServerContext* context, v1::UploadDocumentResponse* response) {
  if (documents_ == nullptr) {
    return v1::IntakeService::CallbackService::UploadDocument(context, response);
  }
  return new UploadReactor(*this, context, response);
}

namespace {

// Streams a document: its metadata, then its chunks one by one (one write in flight).
class DownloadReactor final : public grpc::ServerWriteReactor<v1::DownloadDocumentResponse> {
 public:
  DownloadReactor(RequestStore& requests, DocumentStore& documents, common::Pipeline& pipeline,
                  common::Sharding sharding, grpc::CallbackServerContext* context,
                  const v1::DownloadDocumentRequest& request)
      : requests_(requests),
        documents_(documents),
        pipeline_(pipeline),
        request_(request),
        start_(pipeline_.clock().MonotonicNow()) {
    auto call = pipeline_.Admit(*context, "DownloadDocument", &request_,
                                common::Pipeline::CallKind::kStream);
    if (!call.ok()) {
      Finish(common::ToGrpcStatus(call.status()));
      return;
    }
    call_ = *std::move(call);
    admitted_ = true;
    common::FieldViolations v;
    if (!sharding.ShardOf("rq", request_.id()).ok()) v.Add("id", "is not a request id");
    if (!sharding.ShardOf("doc", request_.document_id()).ok()) {
      v.Add("document_id", "is not a document id");
    }
    if (!v.empty()) {
      Done(v.ToStatus());
      return;
    }
    DocumentReach(requests_, call_, request_.id(), common::AccessKind::kDisclose,
                  [this](absl::StatusOr<std::optional<std::set<std::string>>> reach) {
                    if (!reach.ok()) return Done(reach.status());
                    if (reach->has_value()) {
                      if (!(*reach)->contains(request_.document_id())) {
                        return Done(NoSuchDocument());
                      }
                      call_.Touch(request_.id(), common::AccessKind::kDisclose,
                                  request_.document_id());
                    }
                    Send();
                  });
  }

  void Send() {
    documents_.List(request_.id(), [this](absl::StatusOr<std::vector<v1::Document>> docs) {
      if (!docs.ok()) return Done(docs.status());
      for (auto& d : *docs) {
        if (d.id() == request_.document_id()) {
          *message_.mutable_metadata() = std::move(d);
          return StartWrite(&message_);
        }
      }
      Done(NoSuchDocument());
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return Done(absl::CancelledError("the client went away"));
    documents_.ReadChunk(request_.id(), request_.document_id(), next_chunk_++,
                         [this](absl::StatusOr<std::optional<std::string>> chunk) {
                           if (!chunk.ok()) return Done(chunk.status());
                           if (!chunk->has_value()) return Done(absl::OkStatus());
                           message_.set_chunk(std::move(**chunk));
                           StartWrite(&message_);
                         });
  }

  void OnDone() override { delete this; }

 private:
  void Done(const absl::Status& status) {
    if (!admitted_) return Finish(common::ToGrpcStatus(status));
    pipeline_.Audit(call_, status, start_,
                    [this](absl::Status answer) { Finish(common::ToGrpcStatus(answer)); });
  }

  RequestStore& requests_;
  DocumentStore& documents_;
  common::Pipeline& pipeline_;
  const v1::DownloadDocumentRequest request_;
  const common::MonotonicTime start_;
  common::CallContext call_;
  bool admitted_ = false;
  v1::DownloadDocumentResponse message_;
  int64_t next_chunk_ = 0;
};

}  // namespace

grpc::ServerWriteReactor<v1::DownloadDocumentResponse>* IntakeService::DownloadDocument(
    grpc::CallbackServerContext* context, const v1::DownloadDocumentRequest* request) {
  if (documents_ == nullptr)
    return v1::IntakeService::CallbackService::DownloadDocument(context, request);
  return new DownloadReactor(store_, *documents_, pipeline_, sharding_, context, *request);
}

std::string EncodeDocumentsToken(int64_t offset, const std::string& id) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("d1|", offset, "|", common::Sha256Hex(id).substr(0, 12)));
}

absl::StatusOr<int64_t> DecodeDocumentsToken(const std::string& token, const std::string& id) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, '|');
  int64_t offset = 0;
  if (parts.size() != 3 || parts[0] != "d1" || !absl::SimpleAtoi(parts[1], &offset) || offset < 0 ||
      offset > DocumentStore::kMaxDocuments || parts[2] != common::Sha256Hex(id).substr(0, 12)) {
    return Invalid("page_token", "is not a token this service issued for this request");
  }
  return offset;
}

grpc::ServerUnaryReactor* IntakeService::ListDocuments(grpc::CallbackServerContext* context,
                                                       const v1::ListDocumentsRequest* request,
                                                       v1::ListDocumentsResponse* response) {
  if (documents_ == nullptr)
    return v1::IntakeService::CallbackService::ListDocuments(context, request, response);
  return pipeline_.Unary<v1::ListDocumentsRequest, v1::ListDocumentsResponse>(
      context, "ListDocuments", request, response,
      [this](const v1::ListDocumentsRequest& r) -> absl::Status {
        v1::GetRequestRequest as_get;
        as_get.set_id(r.id());
        RETURN_IF_ERROR(ValidateGet(as_get, sharding_.shard_count()));
        if (r.page_size() < 0 || r.page_size() > kMaxListDocumentsPage) {
          return Invalid("page_size", "must be from 0 to 500");
        }
        if (!r.page_token().empty()) return DecodeDocumentsToken(r.page_token(), r.id()).status();
        return absl::OkStatus();
      },
      [this](const common::CallContext& call, const v1::ListDocumentsRequest& r,
             v1::ListDocumentsResponse* resp, common::Pipeline::Done done) {
        const std::string id = r.id();
        const int64_t offset =
            r.page_token().empty() ? 0 : *DecodeDocumentsToken(r.page_token(), id);
        const int64_t size = r.page_size() == 0 ? kDefaultListDocumentsPage : r.page_size();
        // A page is an offset in the documents the caller reaches, oldest first: a request
        // holds at most kMaxDocuments, and documents are only appended (retention erases
        // them all at once), so an offset stays valid between pages.
        DocumentReach(store_, call, id, common::AccessKind::kRead,
                      [this, call, id, resp, done, offset,
                       size](absl::StatusOr<std::optional<std::set<std::string>>> reach) {
                        if (!reach.ok()) return done(reach.status());
                        if (reach->has_value())
                          call.Touch(id, common::AccessKind::kRead, "documents");
                        documents_->List(id, [reach = *reach, resp, done, offset, size,
                                              id](absl::StatusOr<std::vector<v1::Document>> docs) {
                          if (!docs.ok()) return done(docs.status());
                          int64_t seen = 0;
                          for (auto& d : *docs) {
                            if (reach.has_value() && !reach->contains(d.id())) continue;
                            if (seen >= offset && seen < offset + size) {
                              *resp->add_documents() = std::move(d);
                            }
                            ++seen;
                          }
                          if (offset + size < seen) {
                            resp->set_next_page_token(EncodeDocumentsToken(offset + size, id));
                          }
                          done(absl::OkStatus());
                        });
                      });
      });
}

}  // namespace rogatory::intake
