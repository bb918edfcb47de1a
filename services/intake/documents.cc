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
#include "absl/strings/str_cat.h"
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
  // The caller's authority pays for the document (issue 16 item 11).
  DocumentQuota Quota() const {
    return DocumentQuota{call_.caller.authority_id, s_.options_.max_document_bytes_per_request,
                         s_.options_.max_document_bytes_per_authority};
  }

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
    const absl::Time now = s_.clock_.Now();
    const int shard = *s_.sharding_.ShardOf("rq", meta_.id());
    document_.set_id(common::Sharding::MakeId("doc", shard, now));
    document_.set_request_id(meta_.id());
    document_.set_kind(meta_.kind());
    document_.set_language(meta_.language());
    document_.set_media_type(meta_.media_type());
    document_.set_sha256(absl::AsciiStrToLower(meta_.sha256()));
    document_.set_translation_of_document_id(meta_.translation_of_document_id());
    document_.set_title(meta_.title());
    if (!meta_.request_id().empty()) {
      idempotency_ = Idempotency{call_.caller.authority_id, meta_.request_id(),
                                 Fingerprint("UploadDocument", meta_)};
    }
    // The request must exist before bytes are taken in; a translator may only add the
    // translation of a document whose job it holds.
    s_.store_.Load(meta_.id(), std::nullopt, [this](absl::StatusOr<Snapshot> snap) {
      if (!snap.ok()) return Fail(snap.status());
      DocumentReach(s_.store_, call_, meta_.id(), common::AccessKind::kChange,
                    [this](absl::StatusOr<std::optional<std::set<std::string>>> reach) {
                      if (!reach.ok()) return Fail(reach.status());
                      if (reach->has_value()) {
                        if (meta_.kind() != v1::DOCUMENT_KIND_TRANSLATION ||
                            !(*reach)->contains(meta_.translation_of_document_id())) {
                          return Fail(NoSuchDocument());
                        }
                        call_.Touch(meta_.id(), common::AccessKind::kChange,
                                    meta_.translation_of_document_id());
                      }
                      Read();
                    });
    });
  }

  void Verify() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(hash_, digest, &length);
    const std::string hex =
        absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
    if (size_ == 0) return Fail(Invalid("chunk", "no bytes were sent"));
    if (hex != document_.sha256()) {
      return Fail(Invalid("metadata.sha256",
                          "the bytes received do not match it: a chunk was corrupted or lost"));
    }
    document_.set_size_bytes(size_);
    Commit(IntakeService::kChangeAttempts);
  }

  void Commit(int attempts_left) {
    s_.store_.Load(meta_.id(), idempotency_, [this, attempts_left](absl::StatusOr<Snapshot> snap) {
      if (!snap.ok()) return Fail(snap.status());
      if (snap->replay.has_value()) return Replayed(*snap->replay);
      const absl::Time now = s_.clock_.Now();
      *document_.mutable_create_time() =
          google::protobuf::util::TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(now));
      const int64_t version = snap->version + 1;
      v1::Request after = snap->request;
      after.set_etag(absl::StrCat(version));
      commonpb::Event e = NewIntakeEvent(after, commonpb::EVENT_TYPE_DOCUMENT_ADDED, version, now,
                                         ActorOf(call_.caller));
      e.mutable_document()->set_document_id(document_.id());
      e.mutable_document()->set_language(document_.language());
      e.mutable_document()->set_sha256(document_.sha256());
      Mutation m;
      m.id = meta_.id();
      m.expected_version = snap->version;
      m.new_version = version;
      m.updated_ms = absl::ToUnixMillis(now);
      m.history.push_back(e);
      m.outbox.push_back(std::move(e));
      m.idempotency = idempotency_;
      m.result = document_.SerializeAsString();
      s_.documents_->Commit(document_, std::move(m), Quota(),
                            [this, attempts_left](absl::StatusOr<MutationOutcome> outcome) {
                              if (!outcome.ok()) {
                                if (IsStaleVersion(outcome.status()) && attempts_left > 1) {
                                  return Commit(attempts_left - 1);
                                }
                                return Fail(outcome.status());
                              }
                              if (outcome->kind == MutationOutcome::Kind::kReplayed) {
                                return Replayed(outcome->result);
                              }
                              staged_ = false;
                              *response_->mutable_document() = document_;
                              common::Log::Info("document added",
                                                {{"request", document_.request_id()},
                                                 {"document", document_.id()},
                                                 {"size_bytes", document_.size_bytes()},
                                                 {"trace_id", call_.trace_id}});
                              Done(absl::OkStatus());
                            });
    });
  }

  // An earlier upload with the same key stored this document: answer it, drop our bytes.
  void Replayed(const std::string& result) {
    if (!response_->mutable_document()->ParseFromString(result)) {
      return Fail(absl::InternalError("stored result does not parse"));
    }
    Fail(absl::OkStatus());
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

grpc::ServerUnaryReactor* IntakeService::ListDocuments(grpc::CallbackServerContext* context,
                                                       const v1::ListDocumentsRequest* request,
                                                       v1::ListDocumentsResponse* response) {
  if (documents_ == nullptr)
    return v1::IntakeService::CallbackService::ListDocuments(context, request, response);
  return pipeline_.Unary<v1::ListDocumentsRequest, v1::ListDocumentsResponse>(
      context, "ListDocuments", request, response,
      [this](const v1::ListDocumentsRequest& r) {
        v1::GetRequestRequest as_get;
        as_get.set_id(r.id());
        return ValidateGet(as_get, sharding_.shard_count());
      },
      [this](const common::CallContext& call, const v1::ListDocumentsRequest& r,
             v1::ListDocumentsResponse* resp, common::Pipeline::Done done) {
        {
          const std::string id = r.id();
          DocumentReach(store_, call, id, common::AccessKind::kRead,
                        [this, call, id, resp,
                         done](absl::StatusOr<std::optional<std::set<std::string>>> reach) {
                          if (!reach.ok()) return done(reach.status());
                          if (reach->has_value())
                            call.Touch(id, common::AccessKind::kRead, "documents");
                          documents_->List(id, [reach = *reach, resp, done](
                                                   absl::StatusOr<std::vector<v1::Document>> docs) {
                            if (!docs.ok()) return done(docs.status());
                            for (auto& d : *docs) {
                              if (!reach.has_value() || reach->contains(d.id())) {
                                *resp->add_documents() = std::move(d);
                              }
                            }
                            done(absl::OkStatus());
                          });
                        });
        }
      });
}

}  // namespace rogatory::intake
