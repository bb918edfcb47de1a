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
// another thread. Errors: NOT_FOUND, UNAVAILABLE (retryable).
class DocumentStore {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;
  virtual ~DocumentStore() = default;

  // Appends a chunk to a staged document of a request.
  virtual void Stage(const std::string& request_id, const std::string& document_id,
                     std::string chunk, Done<bool> done) = 0;
  // Forgets a staged document's chunks.
  virtual void Discard(const std::string& request_id, const std::string& document_id,
                       Done<bool> done) = 0;
  // Makes a staged document visible with `document` as its metadata, applying `change` to
  // the request in the same step (see RequestStore::Mutate for its outcomes).
  virtual void Commit(const v1::Document& document, Mutation change,
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
