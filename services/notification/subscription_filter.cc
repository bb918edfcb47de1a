#include "subscription_filter.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rogatory/common/codes.h"

namespace rogatory::notification {
namespace {

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

}  // namespace

std::string EncodeList(const std::vector<std::string>& items) {
  return items.empty() ? "" : absl::StrCat(",", absl::StrJoin(items, ","), ",");
}

std::vector<std::string> DecodeList(absl::string_view encoded) {
  return absl::StrSplit(encoded, ',', absl::SkipEmpty());
}

EncodedFilter EncodeFilter(const v1::SubscriptionFilter& f) {
  EncodedFilter e;
  std::vector<std::string> v;
  for (int i : f.instruments()) v.push_back(absl::StrCat(i));
  e.instruments = EncodeList(v);
  v.clear();
  for (int t : f.event_types()) v.push_back(absl::StrCat(t));
  e.types = EncodeList(v);
  v.assign(f.states().begin(), f.states().end());
  e.states = EncodeList(v);
  return e;
}

void DecodeFilter(const EncodedFilter& e, v1::SubscriptionFilter* f) {
  for (const auto& s : DecodeList(e.instruments)) {
    f->add_instruments(static_cast<common::v1::Instrument>(ToInt(s)));
  }
  for (const auto& s : DecodeList(e.types)) {
    f->add_event_types(static_cast<common::v1::EventType>(ToInt(s)));
  }
  for (const auto& s : DecodeList(e.states)) f->add_states(s);
}

void ValidateFilter(const v1::SubscriptionFilter& f, const std::string& path,
                    common::FieldViolations& v) {
  // Each list names values of a small set; longer ones only cost memory and matching time
  // on every event (issue 8: item counts bounded).
  constexpr int kMaxFilterValues = 64;
  bool too_long = false;
  const std::pair<const char*, int> lists[] = {{"instruments", f.instruments_size()},
                                               {"event_types", f.event_types_size()},
                                               {"states", f.states_size()}};
  for (const auto& [name, size] : lists) {
    if (size > kMaxFilterValues) {
      v.Add(absl::StrCat(path, ".", name), absl::StrCat("at most ", kMaxFilterValues, " values"));
      too_long = true;
    }
  }
  if (too_long) return;
  for (int i = 0; i < f.instruments_size(); ++i) {
    if (f.instruments(i) == common::v1::INSTRUMENT_UNSPECIFIED ||
        !common::v1::Instrument_IsValid(f.instruments(i))) {
      v.Add(absl::StrCat(path, ".instruments[", i, "]"), "must be a known instrument");
    }
  }
  for (int i = 0; i < f.event_types_size(); ++i) {
    if (f.event_types(i) == common::v1::EVENT_TYPE_UNSPECIFIED ||
        !common::v1::EventType_IsValid(f.event_types(i))) {
      v.Add(absl::StrCat(path, ".event_types[", i, "]"), "must be a known event type");
    }
  }
  for (int i = 0; i < f.states_size(); ++i) {
    if (!common::IsCountryCode(f.states(i))) {
      v.Add(absl::StrCat(path, ".states[", i, "]"), "must be an ISO 3166-1 alpha-2 code");
    }
  }
}

bool FilterMatches(const EncodedFilter& filter, absl::string_view instrument,
                   absl::string_view type, absl::string_view states) {
  // Each list is ",a,b," (empty: everything), so ",<value>," finds a value.
  const auto has = [](absl::string_view list, absl::string_view value) {
    return list.empty() || absl::StrContains(list, absl::StrCat(",", value, ","));
  };
  if (!has(filter.instruments, instrument) || !has(filter.types, type)) return false;
  if (filter.states.empty()) return true;
  for (absl::string_view state : absl::StrSplit(states, ',', absl::SkipEmpty())) {
    if (absl::StrContains(filter.states, absl::StrCat(",", state, ","))) return true;
  }
  return false;
}

bool FilterMatches(const v1::SubscriptionFilter& filter, const common::v1::Event& event,
                   const std::vector<std::string>& states) {
  return FilterMatches(EncodeFilter(filter), absl::StrCat(static_cast<int>(event.instrument())),
                       absl::StrCat(static_cast<int>(event.type())), EncodeList(states));
}

}  // namespace rogatory::notification
