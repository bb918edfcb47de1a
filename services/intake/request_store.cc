#include "request_store.h"

#include "google/protobuf/util/time_util.h"

namespace rogatory::intake {

bool MatchesFilters(const ListQuery& q, const v1::Request& r) {
  const auto& c = r.content();
  return (q.status == 0 || r.status() == q.status) &&
         (q.instrument == 0 || c.instrument() == q.instrument) &&
         (q.issuing_state.empty() || c.issuing_authority().state() == q.issuing_state) &&
         (q.requested_state.empty() || c.requested_state() == q.requested_state);
}

ListCursor CursorOf(const v1::Request& r) {
  return {google::protobuf::util::TimeUtil::TimestampToMilliseconds(r.create_time()), r.id()};
}

bool ComesBefore(const ListCursor& a, const ListCursor& b) {
  if (a.create_ms != b.create_ms) return a.create_ms > b.create_ms;
  return a.id > b.id;
}

}  // namespace rogatory::intake
