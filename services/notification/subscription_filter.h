#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "rogatory/common/status.h"
#include "rogatory/common/v1/events.pb.h"
#include "rogatory/notification/v1/notification.pb.h"

namespace rogatory::notification {

// A subscription filter as the store keeps it: each list as ",a,b," ("" for an empty list,
// which matches everything). The same encoding is what a delivery's request states are
// passed as (",DE,FR,").
struct EncodedFilter {
  std::string instruments, types, states;
};
EncodedFilter EncodeFilter(const v1::SubscriptionFilter& filter);
void DecodeFilter(const EncodedFilter& encoded, v1::SubscriptionFilter* filter);

std::string EncodeList(const std::vector<std::string>& items);
std::vector<std::string> DecodeList(absl::string_view encoded);

// Adds the violations of `filter` (a field at `path`) to `v`.
void ValidateFilter(const v1::SubscriptionFilter& filter, const std::string& path,
                    common::FieldViolations& v);

// Whether an event matches a subscription filter (unset parts match everything): one of
// the filter's instruments and event types (when it names any), and at least one of the
// states the request involves (when it names any). The one implementation of the filter:
// Subscribe streams and webhook subscriptions (the fan-out worker) both match with it.
bool FilterMatches(const EncodedFilter& filter, absl::string_view instrument,
                   absl::string_view type, absl::string_view states);
// The same for a filter as a Subscribe request gives it; `states` as a list.
bool FilterMatches(const v1::SubscriptionFilter& filter, const common::v1::Event& event,
                   const std::vector<std::string>& states);

}  // namespace rogatory::notification
