#include "rogatory/common/event_builder.h"

#include <algorithm>
#include <atomic>
#include <cassert>

#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {

v1::Event EventBuilder::AboutRequest(const Request& request) const {
  v1::Event e;
  e.set_request_id(std::string(request.request_id));
  e.set_trace_id(std::string(request.trace_id));
  e.set_instrument(request.instrument);
  e.set_source(source_);
  if (request.facts != nullptr) *e.mutable_request() = *request.facts;
  return e;
}

void EventBuilder::Stamp(const Occurrence& occurrence, v1::Event& event) {
  event.set_event_id(occurrence.event_id.empty() ? NewUlid(occurrence.at) : occurrence.event_id);
  event.set_type(occurrence.type);
  // Seconds and nanoseconds of `at`, floored (a Timestamp's nanos are never negative).
  const absl::Duration since_epoch = occurrence.at - absl::UnixEpoch();
  const int64_t seconds = absl::ToInt64Seconds(absl::Floor(since_epoch, absl::Seconds(1)));
  auto* time = event.mutable_occur_time();
  time->set_seconds(seconds);
  time->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(since_epoch - absl::Seconds(seconds))));
}

namespace {
std::atomic<int64_t> undeclared_emits{0};
}  // namespace

bool EventBuilder::Declares(v1::EventType type) const {
  return declared_.empty() ||
         std::find(declared_.begin(), declared_.end(), type) != declared_.end();
}

int64_t EventBuilder::UndeclaredEmits() { return undeclared_emits.load(); }

v1::Event EventBuilder::New(const Request& request, const Occurrence& occurrence) const {
  if (!Declares(occurrence.type)) {
    undeclared_emits.fetch_add(1);
    Log::Error(
        "event of a type its emitter did not declare: receivers that want it may get "
        "no lane",
        {{"source", source_}, {"type", v1::EventType_Name(occurrence.type)}});
    assert(false && "event type not declared by its emitter");
  }
  v1::Event e = AboutRequest(request);
  Stamp(occurrence, e);
  return e;
}

}  // namespace rogatory::common
