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
common::v1::Event NewIntakeEvent(const v1::Request& request, common::v1::EventType type,
                                 int64_t sequence, absl::Time now, const common::v1::Actor& actor);

// Fingerprint of a call's payload for AIP-155: its method and deterministic bytes.
std::string Fingerprint(absl::string_view method, const google::protobuf::Message& payload);

// History page tokens: an offset in the request's history, bound to the request.
std::string EncodeHistoryToken(int64_t offset, const std::string& id);
absl::StatusOr<int64_t> DecodeHistoryToken(const std::string& token, const std::string& id);

// Removes what the BASIC view leaves out: personal data and the statement of facts.
void ApplyView(v1::RequestView view, v1::Request* request);

}  // namespace rogatory::intake
