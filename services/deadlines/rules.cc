#include "rules.h"

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "rogatory/common/status.h"

namespace rogatory::deadlines {
namespace {

bool IsRuleId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

template <typename Message>
absl::Status ReadJson(const std::string& path, Message* out) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(text.str(), out, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", status.ToString()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RuleSet>> RuleSet::Create(
    v1::DeadlineRulesFile rules, std::shared_ptr<const Calendars> calendars) {
  common::FieldViolations v;
  if (rules.version().empty()) v.Add("version", "is required");
  std::set<std::string> ids;
  for (int i = 0; i < rules.rules_size(); ++i) {
    const v1::DeadlineRule& r = rules.rules(i);
    const std::string p = absl::StrCat("rules[", i, "]");
    if (!IsRuleId(r.id())) {
      v.Add(p + ".id", "must be 1 to 64 characters of A-Z, 0-9 and _");
    } else if (!ids.insert(r.id()).second) {
      v.Add(p + ".id", absl::StrCat("duplicate rule id ", r.id()));
    }
    if (r.instrument() == common::v1::INSTRUMENT_UNSPECIFIED)
      v.Add(p + ".instrument", "is required");
    if (r.unit() == v1::PERIOD_UNIT_UNSPECIFIED) v.Add(p + ".unit", "is required");
    if (r.kind() == v1::DEADLINE_KIND_UNSPECIFIED) v.Add(p + ".kind", "is required");
    const int max_length = r.unit() == v1::PERIOD_UNIT_HOURS ? 87600 : 3650;
    if (r.length() <= 0 || r.length() > max_length) {
      v.Add(p + ".length", absl::StrCat("must be 1 to ", max_length));
    }
    if (r.regulation_1182_71() && r.unit() == v1::PERIOD_UNIT_HOURS) {
      v.Add(p + ".regulation_1182_71", "applies to periods in days only");
    }
    const absl::Duration period =
        r.unit() == v1::PERIOD_UNIT_HOURS ? absl::Hours(r.length()) : absl::Hours(24) * r.length();
    if (r.max_extensions() < 0) v.Add(p + ".max_extensions", "must not be negative");
    if (r.max_extensions() > 0 && FromProto(r.max_extension()) <= absl::ZeroDuration()) {
      v.Add(p + ".max_extension", "must be positive when extensions are allowed");
    }
    if (r.max_extensions() == 0 && FromProto(r.max_extension()) != absl::ZeroDuration()) {
      v.Add(p + ".max_extension", "is set but max_extensions is 0");
    }
    for (int j = 0; j < r.remind_before_size(); ++j) {
      const absl::Duration d = FromProto(r.remind_before(j));
      if (d <= absl::ZeroDuration() || d >= period) {
        v.Add(absl::StrCat(p, ".remind_before[", j, "]"),
              "must be positive and shorter than the period");
      }
    }
    for (int j = 0; j < r.escalate_after_size(); ++j) {
      const absl::Duration d = FromProto(r.escalate_after(j));
      const absl::Duration prev =
          j == 0 ? absl::ZeroDuration() : FromProto(r.escalate_after(j - 1));
      if (d <= prev) {
        v.Add(absl::StrCat(p, ".escalate_after[", j, "]"), "must be positive and increasing");
      }
    }
    if (r.source().size() > 2000) v.Add(p + ".source", "must be at most 2000 characters");
    if (r.satisfied_by().empty()) v.Add(p + ".satisfied_by", "needs at least one event type");
    for (int j = 0; j < r.satisfied_by_size(); ++j) {
      if (r.satisfied_by(j) == r.trigger() && r.trigger() != 0) {
        v.Add(absl::StrCat(p, ".satisfied_by[", j, "]"), "is the rule's own trigger");
      }
    }
  }
  RETURN_IF_ERROR(v.ToStatus());
  std::shared_ptr<RuleSet> set(new RuleSet());
  set->version_ = absl::StrCat(rules.version(), "+", calendars->version());
  set->rules_ = std::move(rules);
  set->calendars_ = std::move(calendars);
  return std::shared_ptr<const RuleSet>(std::move(set));
}

absl::StatusOr<std::shared_ptr<const RuleSet>> RuleSet::Load(const std::string& dir) {
  v1::CalendarsFile calendars_file;
  RETURN_IF_ERROR(ReadJson(dir + "/calendars.json", &calendars_file));
  auto calendars = Calendars::Create(std::move(calendars_file));
  if (!calendars.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/calendars.json: ", calendars.status().message()));
  }
  v1::DeadlineRulesFile rules_file;
  RETURN_IF_ERROR(ReadJson(dir + "/rules.json", &rules_file));
  auto set = Create(std::move(rules_file), *std::move(calendars));
  if (!set.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/rules.json: ", set.status().message()));
  }
  return set;
}

const v1::DeadlineRule* RuleSet::Find(const std::string& id) const {
  for (const auto& r : rules_.rules()) {
    if (r.id() == id) return &r;
  }
  return nullptr;
}

std::vector<const v1::DeadlineRule*> RuleSet::TriggeredBy(common::v1::EventType type,
                                                          common::v1::Instrument instrument,
                                                          common::v1::Urgency urgency) const {
  std::vector<const v1::DeadlineRule*> out;
  if (type == common::v1::EVENT_TYPE_UNSPECIFIED) return out;
  for (const auto& r : rules_.rules()) {
    if (r.trigger() != type || r.instrument() != instrument) continue;
    if (!r.urgencies().empty() &&
        std::find(r.urgencies().begin(), r.urgencies().end(), urgency) == r.urgencies().end()) {
      continue;
    }
    out.push_back(&r);
  }
  return out;
}

std::shared_ptr<const RuleSet> RulesRegistry::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status RulesRegistry::Reload() {
  ASSIGN_OR_RETURN(auto next, RuleSet::Load(dir_));
  absl::MutexLock lock(&mu_);
  current_ = std::move(next);
  return absl::OkStatus();
}

}  // namespace rogatory::deadlines
