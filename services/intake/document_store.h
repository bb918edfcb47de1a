#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "request_store.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::intake {

// Where a request's documents are kept: their bytes in chunks and their metadata. An upload
// stages its chunks first (invisible, and expiring unless committed), then commits the
// metadata together with the request's change (version, history event DOCUMENT_ADDED,
// outbox, idempotency record) in one atomic step; a refused upload discards what it
// staged, so nothing of it remains. The interface leaves room for a filesystem or object
// store holding the bytes. Implementations complete asynchronously, callbacks may run on
// another thread. Errors: NOT_FOUND, UNAVAILABLE (retryable; a full Redis among them),
// RESOURCE_EXHAUSTED (a quota, see DocumentQuota).
// Who a document is charged to and the bounds its bytes must stay within (settings
// max-document-bytes-per-request and max-document-bytes-per-authority). A request's use is
// the size of its committed documents; an authority's, the size of every committed document
// it uploaded that retention has not erased. Staging refuses a chunk when the committed use
// plus what this upload staged would pass a bound; the commit checks and charges in the
// same atomic step that makes the document visible, so concurrent uploads cannot pass it
// together. Retention's erasure of a request's documents gives their bytes back.
struct DocumentQuota {
  std::string authority;
  int64_t max_request_bytes = 0;    // 0: no bound
  int64_t max_authority_bytes = 0;  // 0: no bound
};

// The RESOURCE_EXHAUSTED of a document that would pass a quota: names the setting, the
// current use, the bound and what the document would add. `request` says which quota.
absl::Status DocumentQuotaExceeded(bool request, int64_t used, int64_t limit, int64_t adding);

// A chunked upload in progress (StartDocumentUpload), known by its request's and its
// document's id (the id the document will have). Owned by the authority that started it.
struct UploadSession {
  std::string owner;                       // the authority that started it
  v1::Document document;                   // id, request_id and metadata; no size yet
  std::optional<Idempotency> idempotency;  // from metadata.request_id
  int64_t received_bytes = 0;              // staged so far
};

// What a chunked upload's chunk may not pass (see StageAt).
struct UploadBounds {
  DocumentQuota quota;
  int64_t max_document_bytes = 0;  // 0: no bound
};

class DocumentStore {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;
  virtual ~DocumentStore() = default;

  // Appends a chunk to a staged document of a request; `staged_bytes` counts this upload's
  // bytes with the chunk. RESOURCE_EXHAUSTED (nothing appended) past a quota.
  virtual void Stage(const std::string& request_id, const std::string& document_id,
                     std::string chunk, int64_t staged_bytes, const DocumentQuota& quota,
                     Done<bool> done) = 0;
  // Forgets a staged document's chunks, and its chunked upload if any.
  virtual void Discard(const std::string& request_id, const std::string& document_id,
                       Done<bool> done) = 0;
  // Makes a staged document visible with `document` as its metadata, applying `change` to
  // the request and charging document.size_bytes() to `quota` in the same step (see
  // RequestStore::Mutate for its outcomes; RESOURCE_EXHAUSTED, nothing changed, past a
  // quota).
  virtual void Commit(const v1::Document& document, Mutation change, const DocumentQuota& quota,
                      Done<MutationOutcome> done) = 0;
  // The documents of a request, oldest first (at most kMaxDocuments).
  virtual void List(const std::string& request_id, Done<std::vector<v1::Document>> done) = 0;
  // Chunk `index` (from 0) of a committed document; nullopt past the last one.
  virtual void ReadChunk(const std::string& request_id, const std::string& document_id,
                         int64_t index, Done<std::optional<std::string>> done) = 0;

  // Chunked uploads (StartDocumentUpload). Their state and chunks live with the request's,
  // and expire `idle` after the last call that touched them (start or chunk), which discards
  // the chunks; nothing is charged before the commit, so an expired upload leaves nothing.
  // Every call but StartUpload answers NOT_FOUND when the upload does not exist, expired,
  // was claimed, or belongs to another authority than `owner`.
  virtual void StartUpload(const UploadSession& upload, absl::Duration idle, Done<bool> done) = 0;
  // Appends a chunk at `offset` (the bytes received so far) and answers the bytes received
  // with it. Resending the last chunk (same offset and bytes) changes nothing and answers the
  // same. INVALID_ARGUMENT naming `offset` for another offset, naming `chunk` past
  // bounds.max_document_bytes; RESOURCE_EXHAUSTED past a quota (committed use plus this
  // upload's bytes); nothing is appended then.
  virtual void StageAt(const std::string& request_id, const std::string& document_id,
                       const std::string& owner, int64_t offset, std::string chunk,
                       absl::Duration idle, const UploadBounds& bounds, Done<int64_t> done) = 0;
  // The upload's state.
  virtual void GetUpload(const std::string& request_id, const std::string& document_id,
                         const std::string& owner, Done<UploadSession> done) = 0;
  // Ends the upload so that exactly one commit makes its document visible (with Commit),
  // if its received bytes are still `received_bytes` (ABORTED otherwise, nothing changed).
  // The chunks stay, expiring, for Commit or Discard.
  virtual void ClaimUpload(const std::string& request_id, const std::string& document_id,
                           const std::string& owner, int64_t received_bytes, Done<bool> done) = 0;
  // Chunk `index` (from 0) of a staged document (an upload's bytes); nullopt past the last.
  virtual void ReadStagedChunk(const std::string& request_id, const std::string& document_id,
                               int64_t index, Done<std::optional<std::string>> done) = 0;

  // Most documents one request holds.
  static constexpr int kMaxDocuments = 500;
};

}  // namespace rogatory::intake
