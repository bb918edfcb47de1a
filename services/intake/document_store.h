#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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
  // Forgets a staged document's chunks.
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

  // Most documents one request holds.
  static constexpr int kMaxDocuments = 500;
};

}  // namespace rogatory::intake
