#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rogatory/common/v1/events.pb.h"

namespace rogatory::common {

// The one place a domain event's envelope is made (issue 17, item 5). Every emitter
// (intake, routing, deadlines, notification) starts its events here and adds only what its
// event says (actor, status, payload...).
//
// The envelope has two parts:
// - what every event about a request repeats (AboutRequest): the request id, the trace id,
//   the instrument, the request's facts and the emitting service (`source`);
// - what names this one event (Stamp): its id, its type and when it happened.
// Routing keeps the first part once per request and stamps each event apart (its Redis
// scripts append the stamped bytes to the stored part); the others make both at once (New).
// Thread-compatible; const methods are safe to call from many threads.
class EventBuilder {
 public:
  // `source`: the emitting service as events name it ("intake", "routing", "deadlines",
  // "notification"), which receivers count and log events by.
  explicit EventBuilder(std::string source) : source_(std::move(source)) {}
  // An emitter that declares the event types it emits (RelayOptions::emits: its outbox gets
  // lanes only to the receivers that want one of them, issue 19). New() with a type not in
  // `declared` is a bug: it is logged, counted (UndeclaredEmits, which the test suites of the
  // declaring services check stays 0) and, in debug builds, asserted.
  EventBuilder(std::string source, std::vector<v1::EventType> declared)
      : source_(std::move(source)), declared_(std::move(declared)) {}

  // The request an event is about.
  struct Request {
    absl::string_view request_id = {};
    absl::string_view trace_id = {};
    v1::Instrument instrument = v1::INSTRUMENT_UNSPECIFIED;
    const v1::RequestFacts* facts = nullptr;  // null: the event carries none
  };
  // What happened.
  struct Occurrence {
    v1::EventType type = v1::EVENT_TYPE_UNSPECIFIED;
    // When, read from the emitter's injected Clock, and kept at the precision given (an
    // emitter recording milliseconds passes a time in whole milliseconds).
    absl::Time at = {};
    // A given id (an emitter whose retries must produce the same event derives it), or
    // empty for a new ULID of `at`.
    std::string event_id = {};
  };

  // The request part alone: request id, trace id, instrument, facts, source.
  v1::Event AboutRequest(const Request& request) const;

  // Sets `event`'s id, type and occur time.
  static void Stamp(const Occurrence& occurrence, v1::Event& event);

  // A new event: AboutRequest, then Stamp.
  v1::Event New(const Request& request, const Occurrence& occurrence) const;

  const std::string& source() const { return source_; }
  // Whether this builder's emitter declared `type` (any type when it declared none).
  bool Declares(v1::EventType type) const;
  // How many events of undeclared types any builder of this process made.
  static int64_t UndeclaredEmits();

 private:
  std::string source_;
  std::vector<v1::EventType> declared_;
};

}  // namespace rogatory::common
