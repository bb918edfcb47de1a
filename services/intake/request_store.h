#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/v1/events.pb.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::intake {

// An AIP-155 idempotency record: the caller's key and a fingerprint of what it sent.
struct Idempotency {
  std::string scope;        // the caller's authority id
  std::string request_id;   // the caller's key
  std::string fingerprint;  // SHA-256 of the deterministic serialization of the payload
};

// A request to store, with its first history event.
struct NewRequest {
  v1::Request request;  // id, status, times and etag already set
  common::v1::Event submitted;
  std::optional<Idempotency> idempotency;
};

struct CreateOutcome {
  v1::Request request;
  bool replayed = false;  // true: an earlier call with the same key created it
};

// A position in the list order (newest first): creation time, then id, both descending.
struct ListCursor {
  int64_t create_ms = 0;
  std::string id;
};

struct ListQuery {
  common::v1::RequestStatus status = common::v1::REQUEST_STATUS_UNSPECIFIED;
  common::v1::Instrument instrument = common::v1::INSTRUMENT_UNSPECIFIED;
  std::string issuing_state;
  std::string requested_state;
  int page_size = 50;
  std::optional<ListCursor> after;  // start strictly after this position
};

struct ListPage {
  std::vector<v1::Request> requests;
  // Where the next page starts; empty at the end. A page may hold fewer than page_size
  // requests and still have a next page (the scan of a shard is bounded).
  std::optional<ListCursor> next;
};

// Where intake keeps requests. Implementations complete asynchronously and never block the
// caller; callbacks may run on another thread. Errors: NOT_FOUND, ALREADY_EXISTS (same
// idempotency key, different fingerprint), UNAVAILABLE (store unreachable: retryable).
class RequestStore {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  virtual ~RequestStore() = default;

  // Stores a new request and its first history event in one atomic step. With an
  // idempotency record already present for (scope, request_id): the request created then
  // (replayed = true) if the fingerprint matches, else ALREADY_EXISTS. Concurrent calls
  // with one key create exactly one request.
  virtual void Create(NewRequest request, Done<CreateOutcome> done) = 0;

  // The request with this id; NOT_FOUND if none.
  virtual void Get(const std::string& id, Done<v1::Request> done) = 0;

  // Requests matching the query, newest first.
  virtual void List(const ListQuery& query, Done<ListPage> done) = 0;

  // Records an event another service reported about a request (a routing decision, a
  // deadline started or missed) in the request's history and, when the event names the
  // request's new status, sets that status, all in one atomic step together with the
  // duplicate marker: a repeat changes nothing and answers kDuplicate. An event about an
  // unknown request changes nothing and answers NOT_FOUND.
  virtual void RecordEvent(const common::v1::Event& event, const common::Dedupe& dedupe,
                           Done<common::EventHandler::Outcome> done) = 0;

  // The history of a request, oldest first (GetRequestHistory pages over it).
  virtual void History(const std::string& id, Done<std::vector<common::v1::Event>> done) = 0;
};

// True if the request matches the query's filters.
bool MatchesFilters(const ListQuery& query, const v1::Request& request);

// The list position of a request.
ListCursor CursorOf(const v1::Request& request);

// Whether `a` comes before `b` in list order (newest first).
bool ComesBefore(const ListCursor& a, const ListCursor& b);

}  // namespace rogatory::intake
