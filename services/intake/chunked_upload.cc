// The chunked upload of IntakeService (StartDocumentUpload, UploadDocumentChunk,
// CommitDocumentUpload): UploadDocument in unary calls, for browsers, which cannot stream to
// a server. It shares UploadDocument's steps (BeginUpload, CheckUploadedBytes, CommitUpload in
// documents.cc); what differs is where the upload lives between calls: in the DocumentStore
// (Redis, the request's shard), so that any replica serves the next call, instead of in a
// reactor. The SHA-256 is computed at the commit, over the staged chunks read back (a hash's
// running state cannot move between replicas).
#include <openssl/evp.h>

#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "intake_service.h"
#include "rogatory/common/access.h"
#include "rogatory/common/status.h"

namespace rogatory::intake {

namespace {

absl::Status Invalid(const std::string& field, const std::string& why) {
  common::FieldViolations v;
  v.Add(field, why);
  return v.ToStatus();
}

// Upload ids: the request's and the document's ids (opaque to clients).
struct UploadRef {
  std::string request_id;
  std::string document_id;
};

std::string EncodeUploadId(const v1::Document& d) {
  return absl::WebSafeBase64Escape(absl::StrCat("u1|", d.request_id(), "|", d.id()));
}

absl::StatusOr<UploadRef> DecodeUploadId(const std::string& id, const common::Sharding& sharding) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(id, &raw)) parts = absl::StrSplit(raw, '|');
  if (parts.size() == 3 && parts[0] == "u1") {
    auto request_shard = sharding.ShardOf("rq", parts[1]);
    auto document_shard = sharding.ShardOf("doc", parts[2]);
    if (request_shard.ok() && document_shard.ok() && *request_shard == *document_shard) {
      return UploadRef{parts[1], parts[2]};
    }
  }
  return Invalid("upload_id", "is not an id StartDocumentUpload answered");
}

// A commit in progress: hashes the staged chunks one read at a time.
struct CommitState {
  CommitState() : hash(EVP_MD_CTX_new()) { EVP_DigestInit_ex(hash, EVP_sha256(), nullptr); }
  ~CommitState() { EVP_MD_CTX_free(hash); }
  CommitState(const CommitState&) = delete;
  CommitState& operator=(const CommitState&) = delete;

  EVP_MD_CTX* hash;
  int64_t size = 0;
  int64_t next_chunk = 0;
  UploadRef ref;
  UploadSession upload;
};

std::string HexDigest(EVP_MD_CTX* hash) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(hash, digest, &length);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

}  // namespace

grpc::ServerUnaryReactor* IntakeService::StartDocumentUpload(
    grpc::CallbackServerContext* context, const v1::StartDocumentUploadRequest* request,
    v1::StartDocumentUploadResponse* response) {
  if (documents_ == nullptr) {
    return v1::IntakeService::CallbackService::StartDocumentUpload(context, request, response);
  }
  return pipeline_.Unary<v1::StartDocumentUploadRequest, v1::StartDocumentUploadResponse>(
      context, "StartDocumentUpload", request, response,
      [this](const v1::StartDocumentUploadRequest& r) -> absl::Status {
        if (!r.has_metadata()) return Invalid("metadata", "is required");
        return ValidateUploadMetadata(r.metadata(), sharding_.shard_count());
      },
      [this](const common::CallContext& call, const v1::StartDocumentUploadRequest& r,
             v1::StartDocumentUploadResponse* resp, common::Pipeline::Done done) {
        BeginUpload(
            call, r.metadata(), /*look_up_replay=*/true,
            [this, call, resp, done](absl::StatusOr<UploadPlan> plan) {
              if (!plan.ok()) return done(plan.status());
              if (plan->replay.has_value()) {
                if (!resp->mutable_document()->ParseFromString(*plan->replay)) {
                  return done(absl::InternalError("stored result does not parse"));
                }
                return done(absl::OkStatus());
              }
              UploadSession upload{call.caller.authority_id, plan->document, plan->idempotency, 0};
              const absl::Duration idle = UploadIdle();
              resp->set_upload_id(EncodeUploadId(plan->document));
              *resp->mutable_idle_timeout() =
                  google::protobuf::util::TimeUtil::MillisecondsToDuration(
                      absl::ToInt64Milliseconds(idle));
              documents_->StartUpload(
                  upload, idle, [done](absl::StatusOr<bool> started) { done(started.status()); });
            });
      });
}

grpc::ServerUnaryReactor* IntakeService::UploadDocumentChunk(
    grpc::CallbackServerContext* context, const v1::UploadDocumentChunkRequest* request,
    v1::UploadDocumentChunkResponse* response) {
  if (documents_ == nullptr) {
    return v1::IntakeService::CallbackService::UploadDocumentChunk(context, request, response);
  }
  return pipeline_.Unary<v1::UploadDocumentChunkRequest, v1::UploadDocumentChunkResponse>(
      context, "UploadDocumentChunk", request, response,
      [this](const v1::UploadDocumentChunkRequest& r) -> absl::Status {
        common::FieldViolations v;
        if (auto ref = DecodeUploadId(r.upload_id(), sharding_); !ref.ok()) {
          v.Add("upload_id", "is not an id StartDocumentUpload answered");
        }
        if (r.offset() < 0) v.Add("offset", "must be 0 or more: the bytes sent before the chunk");
        if (r.chunk().empty()) {
          v.Add("chunk", "must hold 1 byte or more");
        } else if (r.chunk().size() > kMaxChunkBytes) {
          v.Add("chunk", "a chunk holds at most 1 MiB");
        }
        return v.ToStatus();
      },
      [this](const common::CallContext& call, const v1::UploadDocumentChunkRequest& r,
             v1::UploadDocumentChunkResponse* resp, common::Pipeline::Done done) {
        const UploadRef ref = *DecodeUploadId(r.upload_id(), sharding_);
        documents_->StageAt(
            ref.request_id, ref.document_id, call.caller.authority_id, r.offset(), r.chunk(),
            UploadIdle(), UploadBounds{UploadQuota(call), options_.max_document_bytes},
            [call, ref, resp, done](absl::StatusOr<int64_t> received) {
              if (!received.ok()) return done(received.status());
              // On the audit trail like every call that reaches a request.
              call.Touch(ref.request_id, common::AccessKind::kChange, ref.document_id);
              resp->set_received_bytes(*received);
              done(absl::OkStatus());
            });
      });
}

namespace {

// Reads the staged chunks in order into the hash, then calls `next`.
void HashStaged(DocumentStore& documents, std::shared_ptr<CommitState> state,
                std::function<void(absl::Status)> next) {
  documents.ReadStagedChunk(
      state->ref.request_id, state->ref.document_id, state->next_chunk,
      [&documents, state, next](absl::StatusOr<std::optional<std::string>> chunk) {
        if (!chunk.ok()) return next(chunk.status());
        if (!chunk->has_value()) return next(absl::OkStatus());
        EVP_DigestUpdate(state->hash, (*chunk)->data(), (*chunk)->size());
        state->size += static_cast<int64_t>((*chunk)->size());
        ++state->next_chunk;
        HashStaged(documents, state, next);
      });
}

}  // namespace

grpc::ServerUnaryReactor* IntakeService::CommitDocumentUpload(
    grpc::CallbackServerContext* context, const v1::CommitDocumentUploadRequest* request,
    v1::CommitDocumentUploadResponse* response) {
  if (documents_ == nullptr) {
    return v1::IntakeService::CallbackService::CommitDocumentUpload(context, request, response);
  }
  return pipeline_.Unary<v1::CommitDocumentUploadRequest, v1::CommitDocumentUploadResponse>(
      context, "CommitDocumentUpload", request, response,
      [this](const v1::CommitDocumentUploadRequest& r) -> absl::Status {
        return DecodeUploadId(r.upload_id(), sharding_).status();
      },
      [this](const common::CallContext& call, const v1::CommitDocumentUploadRequest& r,
             v1::CommitDocumentUploadResponse* resp, common::Pipeline::Done done) {
        auto state = std::make_shared<CommitState>();
        state->ref = *DecodeUploadId(r.upload_id(), sharding_);
        const std::string owner = call.caller.authority_id;
        // Discards the upload (its state, if still there, and its chunks), then answers.
        auto discard_and = [this, state, done](absl::Status status) {
          documents_->Discard(state->ref.request_id, state->ref.document_id,
                              [done, status](absl::StatusOr<bool>) { done(status); });
        };
        documents_->GetUpload(
            state->ref.request_id, state->ref.document_id, owner,
            [this, call, state, owner, resp, done,
             discard_and](absl::StatusOr<UploadSession> upload) {
              if (!upload.ok()) return done(upload.status());
              call.Touch(state->ref.request_id, common::AccessKind::kChange,
                         state->ref.document_id);
              state->upload = *std::move(upload);
              HashStaged(
                  *documents_, state,
                  [this, call, state, owner, resp, done, discard_and](absl::Status read) {
                    if (!read.ok()) return done(read);
                    // Chunks that came while reading: the commit is to verify them too.
                    if (state->size != state->upload.received_bytes) {
                      return done(absl::AbortedError(
                          "a chunk arrived while the upload was being committed; commit again"));
                    }
                    v1::Document document = state->upload.document;
                    if (absl::Status s =
                            CheckUploadedBytes(state->size, HexDigest(state->hash), document);
                        !s.ok()) {
                      return discard_and(s);
                    }
                    document.set_size_bytes(state->size);
                    // From here exactly one commit goes on; whatever it answers, the chunks are
                    // the document's or discarded.
                    documents_->ClaimUpload(
                        state->ref.request_id, state->ref.document_id, owner, state->size,
                        [this, call, state, document, resp, done,
                         discard_and](absl::StatusOr<bool> claimed) {
                          if (!claimed.ok()) return done(claimed.status());
                          CommitUpload(call, document, state->upload.idempotency, kChangeAttempts,
                                       [resp, done, discard_and](
                                           absl::StatusOr<v1::Document> stored, bool replayed) {
                                         if (!stored.ok()) return discard_and(stored.status());
                                         *resp->mutable_document() = *std::move(stored);
                                         if (replayed) return discard_and(absl::OkStatus());
                                         done(absl::OkStatus());
                                       });
                        });
                  });
            });
      });
}

}  // namespace rogatory::intake
