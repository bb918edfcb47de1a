#pragma once

#include <functional>
#include <optional>
#include <string>

#include "document_store.h"
#include "intake_metrics.h"
#include "lifecycle.h"
#include "request_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/idle_watch.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/intake/v1/intake.grpc.pb.h"

namespace rogatory::intake {

// rogatory.intake.v1.IntakeService. Every change of a request (transition, supplement,
// withdrawal) is computed on the stored request against the lifecycle table (lifecycle.h)
// and written in one atomic step guarded by the version it was computed on, with its
// history event and its outbox event (RequestStore::Mutate). A caller that names an etag
// gets ABORTED when it is stale; without one, a concurrent change makes the service
// recompute (a few times) on the new version. Every mutating RPC is idempotent on
// `request_id`, scoped to the caller.
struct IntakeOptions {
  // Largest document UploadDocument accepts (setting max-document-size).
  int64_t max_document_bytes = int64_t{64} << 20;
  // Document quotas (settings max-document-bytes-per-request, -per-authority; 0: none).
  int64_t max_document_bytes_per_request = int64_t{256} << 20;
  int64_t max_document_bytes_per_authority = int64_t{2} << 30;
  // Business metrics; none when null.
  IntakeMetrics* metrics = nullptr;
  // Ends uploads whose client sends no message for its timeout (setting
  // upload-idle-timeout) with DEADLINE_EXCEEDED, discarding what was staged; none when
  // null. Outlives the service.
  common::IdleWatch* upload_idle_watch = nullptr;
};

class IntakeService final : public v1::IntakeService::CallbackService {
 public:
  // Without a DocumentStore the document RPCs answer UNIMPLEMENTED.
  IntakeService(RequestStore& store, const common::Clock& clock, common::Pipeline& pipeline,
                common::Sharding sharding, DocumentStore* documents = nullptr,
                IntakeOptions options = {})
      : store_(store),
        clock_(clock),
        pipeline_(pipeline),
        sharding_(sharding),
        documents_(documents),
        options_(options) {}

  grpc::ServerUnaryReactor* SubmitRequest(grpc::CallbackServerContext* context,
                                          const v1::SubmitRequestRequest* request,
                                          v1::SubmitRequestResponse* response) override;
  grpc::ServerUnaryReactor* GetRequest(grpc::CallbackServerContext* context,
                                       const v1::GetRequestRequest* request,
                                       v1::GetRequestResponse* response) override;
  grpc::ServerUnaryReactor* ListRequests(grpc::CallbackServerContext* context,
                                         const v1::ListRequestsRequest* request,
                                         v1::ListRequestsResponse* response) override;
  grpc::ServerUnaryReactor* TransitionRequest(grpc::CallbackServerContext* context,
                                              const v1::TransitionRequestRequest* request,
                                              v1::TransitionRequestResponse* response) override;
  // The EIO acknowledgment of receipt (Directive 2014/41/EU Art 16(1)): FORWARDED ->
  // ACKNOWLEDGED on the executing side's behalf; see intake.proto.
  grpc::ServerUnaryReactor* AcknowledgeRequest(grpc::CallbackServerContext* context,
                                               const v1::AcknowledgeRequestRequest* request,
                                               v1::AcknowledgeRequestResponse* response) override;
  grpc::ServerUnaryReactor* SupplementRequest(grpc::CallbackServerContext* context,
                                              const v1::SupplementRequestRequest* request,
                                              v1::SupplementRequestResponse* response) override;
  grpc::ServerUnaryReactor* WithdrawRequest(grpc::CallbackServerContext* context,
                                            const v1::WithdrawRequestRequest* request,
                                            v1::WithdrawRequestResponse* response) override;
  grpc::ServerUnaryReactor* GetRequestHistory(grpc::CallbackServerContext* context,
                                              const v1::GetRequestHistoryRequest* request,
                                              v1::GetRequestHistoryResponse* response) override;

  // Documents (documents.cc): client-streaming upload (metadata, then chunks of at most
  // 1 MiB; SHA-256 verified; nothing is kept of a refused upload), server-streaming
  // download (metadata, then the chunks), and the list.
  grpc::ServerReadReactor<v1::UploadDocumentRequest>* UploadDocument(
      grpc::CallbackServerContext* context, v1::UploadDocumentResponse* response) override;
  grpc::ServerWriteReactor<v1::DownloadDocumentResponse>* DownloadDocument(
      grpc::CallbackServerContext* context, const v1::DownloadDocumentRequest* request) override;
  grpc::ServerUnaryReactor* ListDocuments(grpc::CallbackServerContext* context,
                                          const v1::ListDocumentsRequest* request,
                                          v1::ListDocumentsResponse* response) override;
  // Chunked upload (chunked_upload.cc): UploadDocument in three unary calls, for browsers;
  // its state and bytes in the DocumentStore, so any replica serves any step.
  grpc::ServerUnaryReactor* StartDocumentUpload(grpc::CallbackServerContext* context,
                                                const v1::StartDocumentUploadRequest* request,
                                                v1::StartDocumentUploadResponse* response) override;
  grpc::ServerUnaryReactor* UploadDocumentChunk(grpc::CallbackServerContext* context,
                                                const v1::UploadDocumentChunkRequest* request,
                                                v1::UploadDocumentChunkResponse* response) override;
  grpc::ServerUnaryReactor* CommitDocumentUpload(
      grpc::CallbackServerContext* context, const v1::CommitDocumentUploadRequest* request,
      v1::CommitDocumentUploadResponse* response) override;

  // ListDocuments's page sizes: when page_size is 0, and the largest.
  static constexpr int kDefaultListDocumentsPage = 50;
  static constexpr int kMaxListDocumentsPage = 500;

  // Largest chunk of an upload.
  static constexpr size_t kMaxChunkBytes = 1 << 20;

  // How many times a change without an etag is recomputed after concurrent changes.
  static constexpr int kChangeAttempts = 8;

 private:
  // Computes a change on a snapshot: the mutation to apply, with `result` set to the
  // serialized response Request; or the error to answer.
  using Plan = std::function<absl::StatusOr<Mutation>(const Snapshot&)>;

  void Submit(const common::CallContext& call, const v1::SubmitRequestRequest& request,
              v1::SubmitRequestResponse* response, common::Pipeline::Done done);
  // Load -> plan -> Mutate, replaying an earlier result of the same idempotency key and
  // recomputing on a stale version when `retry_stale`. `done` gets the serialized
  // response Request.
  void Change(std::string id, std::optional<Idempotency> idempotency, Plan plan, bool retry_stale,
              int attempts_left,
              std::function<void(absl::StatusOr<std::string>, bool applied)> done);

  // The steps both upload methods share (documents.cc), so that they check, store and
  // announce a document the same way.
  struct UploadPlan {
    v1::Document document;  // a new id, the request and the metadata; no size or time yet
    std::optional<Idempotency> idempotency;
    std::optional<std::string> replay;  // the Document an earlier upload with the key stored
  };
  // Admits an upload of valid metadata (ValidateUploadMetadata): the request must exist and
  // the caller may add documents to it (a translator only the translation of a document
  // whose job it holds; NOT_FOUND otherwise). Looks the idempotency key up when
  // `look_up_replay`.
  void BeginUpload(const common::CallContext& call, const v1::DocumentUpload& meta,
                   bool look_up_replay, std::function<void(absl::StatusOr<UploadPlan>)> next);
  // Makes a staged document visible (its size set; its bytes verified with
  // CheckUploadedBytes) with DOCUMENT_ADDED in the request's history and outbox, the
  // idempotency record and the quota charge, in one step (DocumentStore::Commit), recomputed
  // on concurrent changes. `done` gets the stored document, and whether it is the one an
  // earlier upload with the same key stored (this upload's bytes are then to be discarded).
  void CommitUpload(const common::CallContext& call, v1::Document document,
                    std::optional<Idempotency> idempotency, int attempts_left,
                    std::function<void(absl::StatusOr<v1::Document>, bool replayed)> done);
  // The caller's authority pays for the document (issue 16 item 11).
  DocumentQuota UploadQuota(const common::CallContext& call) const;
  // How long a chunked upload waits for its next call: upload-idle-timeout (an hour when
  // that is 0, "never", which Redis state cannot be).
  absl::Duration UploadIdle() const;

  friend class UploadReactor;

  RequestStore& store_;
  const common::Clock& clock_;
  common::Pipeline& pipeline_;
  common::Sharding sharding_;
  DocumentStore* documents_;
  IntakeOptions options_;
};

// Opaque page tokens: a list position bound to the filters it was issued for.
std::string EncodePageToken(const ListCursor& cursor, const v1::ListRequestsRequest& filters);
// INVALID_ARGUMENT if the token is malformed or was issued for other filters.
absl::StatusOr<ListCursor> DecodePageToken(const std::string& token,
                                           const v1::ListRequestsRequest& filters);

// The facts about a request that intake's events carry (codes and references only).
common::v1::RequestFacts FactsOf(const v1::Request& request);

// Who acted, as events record it: the calling authority and its role, or the service.
common::v1::Actor ActorOf(const common::Caller& caller);

// A new event of intake about a request: id, request, sequence, type, time, actor, trace
// (the request's), instrument, source and the request's facts.
// Every event type intake emits (RelayOptions::emits): submission, documents, supplements,
// erasure and every move of the lifecycle. NewIntakeEvent counts any other as undeclared
// (common::EventBuilder::UndeclaredEmits).
std::vector<common::v1::EventType> IntakeEmittedEvents();

common::v1::Event NewIntakeEvent(const v1::Request& request, common::v1::EventType type,
                                 int64_t sequence, absl::Time now, const common::v1::Actor& actor);

// Fingerprint of a call's payload for AIP-155: its method and deterministic bytes.
std::string Fingerprint(absl::string_view method, const google::protobuf::Message& payload);

// The INVALID_ARGUMENT of an upload's metadata, naming each bad field under "metadata.".
absl::Status ValidateUploadMetadata(const v1::DocumentUpload& m, int shard_count);
// Whether `size` bytes hashing to `sha256_hex` are the document the metadata announced:
// INVALID_ARGUMENT naming `chunk` (no bytes) or `metadata.sha256` (another digest).
absl::Status CheckUploadedBytes(int64_t size, const std::string& sha256_hex,
                                const v1::Document& document);

// ListDocuments page tokens: an offset in the documents the caller reaches, bound to the
// request (INVALID_ARGUMENT naming `page_token` for another request's or a forged one).
std::string EncodeDocumentsToken(int64_t offset, const std::string& id);
absl::StatusOr<int64_t> DecodeDocumentsToken(const std::string& token, const std::string& id);

// History page tokens: an offset in the request's history, bound to the request.
std::string EncodeHistoryToken(int64_t offset, const std::string& id);
absl::StatusOr<int64_t> DecodeHistoryToken(const std::string& token, const std::string& id);

// Removes what the BASIC view leaves out: personal data and the statement of facts.
void ApplyView(v1::RequestView view, v1::Request* request);

}  // namespace rogatory::intake
