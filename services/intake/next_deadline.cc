#include "next_deadline.h"

#include <algorithm>
#include <string>

#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"

namespace rogatory::intake {

namespace commonpb = rogatory::common::v1;
using google::protobuf::util::TimeUtil;

bool IsDeadlineEvent(commonpb::EventType type) {
  switch (type) {
    case commonpb::EVENT_TYPE_DEADLINE_STARTED:
    case commonpb::EVENT_TYPE_DEADLINE_REMINDER:
    case commonpb::EVENT_TYPE_DEADLINE_MISSED:
    case commonpb::EVENT_TYPE_DEADLINE_ESCALATED:
    case commonpb::EVENT_TYPE_DEADLINE_MET:
    case commonpb::EVENT_TYPE_DEADLINE_EXTENDED:
    case commonpb::EVENT_TYPE_DEADLINE_SUSPENDED:
    case commonpb::EVENT_TYPE_DEADLINE_RESUMED:
    case commonpb::EVENT_TYPE_DEADLINE_CANCELLED:
      return true;
    default:
      return false;
  }
}

namespace {

int64_t DueMs(const v1::TrackedDeadline& d) {
  return TimeUtil::TimestampToMilliseconds(d.due_time());
}

}  // namespace

bool ApplyDeadlineEvent(const commonpb::Event& event, v1::Request* request) {
  if (!IsDeadlineEvent(event.type()) || !event.has_deadline()) return false;
  const commonpb::DeadlineChange& change = event.deadline();
  if (change.deadline_id().empty()) return false;
  const v1::NextDeadline before = request->next_deadline();
  std::vector<v1::TrackedDeadline> tracked(before.tracked().begin(), before.tracked().end());
  auto it = std::find_if(tracked.begin(), tracked.end(), [&](const v1::TrackedDeadline& d) {
    return d.deadline_id() == change.deadline_id();
  });
  // The deadline as the event tells it, added when intake has not heard of it yet (a
  // reminder or an extension that overtook its start). Only a start, an extension or a
  // resumption moves a known deadline's due time.
  auto upsert = [&](bool moves_due) -> v1::TrackedDeadline& {
    const bool known = it != tracked.end();
    if (!known) {
      tracked.emplace_back();
      it = tracked.end() - 1;
      it->set_deadline_id(change.deadline_id());
    }
    if (!change.rule_id().empty()) it->set_rule_id(change.rule_id());
    if (change.has_due_time() && (moves_due || !known)) *it->mutable_due_time() = change.due_time();
    return *it;
  };
  // A reminder or a miss is about the due time it names: one about an earlier due time
  // (delivered after an extension) marks nothing.
  auto about_current_due = [&]() {
    return it == tracked.end() || !change.has_due_time() ||
           TimeUtil::TimestampToMilliseconds(change.due_time()) == DueMs(*it);
  };
  switch (event.type()) {
    case commonpb::EVENT_TYPE_DEADLINE_STARTED:
      upsert(true);
      break;
    case commonpb::EVENT_TYPE_DEADLINE_EXTENDED:
    case commonpb::EVENT_TYPE_DEADLINE_RESUMED: {
      const bool moved = it == tracked.end() || !about_current_due();
      v1::TrackedDeadline& d = upsert(true);
      d.set_suspended(false);
      if (moved) {
        d.set_at_risk(false);
        d.set_missed(false);
      }
      break;
    }
    case commonpb::EVENT_TYPE_DEADLINE_REMINDER:
      if (about_current_due()) upsert(false).set_at_risk(true);
      break;
    case commonpb::EVENT_TYPE_DEADLINE_MISSED:
    case commonpb::EVENT_TYPE_DEADLINE_ESCALATED:
      if (about_current_due()) {
        v1::TrackedDeadline& d = upsert(false);
        d.set_at_risk(true);
        d.set_missed(true);
      }
      break;
    case commonpb::EVENT_TYPE_DEADLINE_SUSPENDED:
      upsert(false).set_suspended(true);
      break;
    case commonpb::EVENT_TYPE_DEADLINE_MET:
    case commonpb::EVENT_TYPE_DEADLINE_CANCELLED:
      if (it != tracked.end()) tracked.erase(it);
      break;
    default:
      return false;
  }
  std::sort(tracked.begin(), tracked.end(),
            [](const v1::TrackedDeadline& a, const v1::TrackedDeadline& b) {
              if (DueMs(a) != DueMs(b)) return DueMs(a) < DueMs(b);
              return a.deadline_id() < b.deadline_id();
            });
  v1::NextDeadline next;
  for (const auto& d : tracked) *next.add_tracked() = d;
  for (const auto& d : tracked) {
    if (d.suspended()) continue;
    next.set_deadline_id(d.deadline_id());
    next.set_rule_id(d.rule_id());
    *next.mutable_due_time() = d.due_time();
    next.set_at_risk(d.at_risk());
    next.set_missed(d.missed());
    break;
  }
  next.set_open_deadlines(static_cast<int32_t>(tracked.size()));
  if (google::protobuf::util::MessageDifferencer::Equals(before, next)) return false;
  if (tracked.empty()) {
    request->clear_next_deadline();
  } else {
    *request->mutable_next_deadline() = std::move(next);
  }
  return true;
}

}  // namespace rogatory::intake
