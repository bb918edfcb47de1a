#include "request_validator.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "google/protobuf/util/time_util.h"
#include "rogatory/common/codes.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/status.h"

namespace rogatory::intake {
namespace {

using common::FieldViolations;
namespace commonpb = rogatory::common::v1;

constexpr int kMaxSubjects = 50;
constexpr int kMaxOffences = 50;
constexpr int kMaxMeasures = 50;
constexpr int kMaxAssets = 100;
constexpr int kMaxNationalities = 8;
constexpr int kMaxIdentifiers = 16;

// Validates one field of a message under construction, prefixing paths.
class Checker {
 public:
  explicit Checker(FieldViolations& v) : v_(v) {}

  void Length(const std::string& path, const std::string& value, size_t min, size_t max) {
    if (value.size() < min) {
      v_.Add(path,
             min == 1 ? "is required" : absl::StrCat("must be at least ", min, " characters"));
    } else if (value.size() > max) {
      v_.Add(path, absl::StrCat("must be at most ", max, " characters"));
    }
  }
  void Country(const std::string& path, const std::string& value, bool required) {
    if (value.empty()) {
      if (required) v_.Add(path, "is required (ISO 3166-1 alpha-2, such as \"DE\")");
    } else if (!common::IsCountryCode(value)) {
      v_.Add(path, "must be an ISO 3166-1 alpha-2 code in upper case, such as \"DE\"");
    }
  }
  void Language(const std::string& path, const std::string& value) {
    if (value.empty()) {
      v_.Add(path, "is required (a BCP 47 language tag, such as \"fr\")");
    } else if (!common::IsLanguageTag(value)) {
      v_.Add(path, "must be a BCP 47 language tag, such as \"fr\" or \"pt-PT\"");
    }
  }
  void Enum(const std::string& path, int value, bool (*is_valid)(int), bool required) {
    if (value == 0) {
      if (required) v_.Add(path, "is required");
    } else if (!is_valid(value)) {
      v_.Add(path, absl::StrCat("has unknown value ", value));
    }
  }
  void Count(const std::string& path, int size, int max) {
    if (size > max) v_.Add(path, absl::StrCat("must have at most ", max, " items"));
  }
  void Authority(const std::string& path, const commonpb::AuthorityRef& a, bool required,
                 bool present) {
    if (!present) {
      if (required) v_.Add(path, "is required");
      return;
    }
    const std::string& id = a.authority_id();
    if (id.empty()) {
      v_.Add(path + ".authority_id", "is required");
    } else if (id.size() > 128 || !std::all_of(id.begin(), id.end(), [](char c) {
                 return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
                        c == '_' || c == ':' || c == '-';
               })) {
      v_.Add(path + ".authority_id", "must be 1 to 128 characters of [A-Za-z0-9._:-]");
    }
    Country(path + ".state", a.state(), true);
    Length(path + ".display_name", a.display_name(), 0, 256);
    Length(path + ".region", a.region(), 0, 16);
  }
  void Date(const std::string& path, const commonpb::Date& d, absl::Time now) {
    const absl::CivilDay day(d.year(), d.month(), d.day());
    if (d.year() < 1 || d.year() > 9999 || d.month() < 1 || d.month() > 12 || d.day() < 1 ||
        day.year() != d.year() || day.month() != d.month() || day.day() != d.day()) {
      v_.Add(path, "must be a valid calendar date");
    } else if (day > absl::ToCivilDay(now, absl::UTCTimeZone())) {
      v_.Add(path, "must not be in the future");
    }
  }

 private:
  FieldViolations& v_;
};

void ValidateSubject(Checker& c, const std::string& p, const v1::Subject& s, absl::Time now) {
  c.Enum(p + ".role", s.role(), v1::SubjectRole_IsValid, true);
  c.Length(p + ".family_name", s.family_name(), 1, 256);
  c.Length(p + ".given_names", s.given_names(), 0, 256);
  if (s.has_birth_date()) c.Date(p + ".birth_date", s.birth_date(), now);
  c.Count(p + ".nationalities", s.nationalities_size(), kMaxNationalities);
  for (int i = 0; i < s.nationalities_size(); ++i) {
    c.Country(absl::StrCat(p, ".nationalities[", i, "]"), s.nationalities(i), true);
  }
  c.Count(p + ".identifiers", s.identifiers_size(), kMaxIdentifiers);
  for (int i = 0; i < s.identifiers_size(); ++i) {
    const std::string ip = absl::StrCat(p, ".identifiers[", i, "]");
    c.Length(ip + ".kind", s.identifiers(i).kind(), 1, 32);
    c.Length(ip + ".value", s.identifiers(i).value(), 1, 64);
    c.Country(ip + ".issuing_state", s.identifiers(i).issuing_state(), false);
  }
}

void ValidateOffence(Checker& c, FieldViolations& v, const std::string& p, const v1::Offence& o) {
  c.Length(p + ".description", o.description(), 1, 4000);
  c.Length(p + ".legal_provision", o.legal_provision(), 0, 512);
  c.Length(p + ".listed_offence_category", o.listed_offence_category(), 0, 64);
  if (o.maximum_penalty_case() == v1::Offence::kMaximumPenaltyMonths &&
      (o.maximum_penalty_months() < 1 || o.maximum_penalty_months() > 1200)) {
    v.Add(p + ".maximum_penalty_months", "must be from 1 to 1200");
  }
  if (o.maximum_penalty_case() == v1::Offence::kLifeImprisonment && !o.life_imprisonment()) {
    v.Add(p + ".life_imprisonment", "must be true when set");
  }
}

// The details oneof must match the instrument.
int DetailsInstrument(const v1::RequestContent& c) {
  switch (c.details_case()) {
    case v1::RequestContent::kMla:
      return commonpb::INSTRUMENT_MLA;
    case v1::RequestContent::kEio:
      return commonpb::INSTRUMENT_EIO;
    case v1::RequestContent::kEaw:
      return commonpb::INSTRUMENT_EAW;
    case v1::RequestContent::kExtradition:
      return commonpb::INSTRUMENT_EXTRADITION;
    case v1::RequestContent::kProvisionalArrest:
      return commonpb::INSTRUMENT_PROVISIONAL_ARREST;
    case v1::RequestContent::kFreezingOrder:
      return commonpb::INSTRUMENT_FREEZING_ORDER;
    case v1::RequestContent::kProductionOrder:
      return commonpb::INSTRUMENT_PRODUCTION_ORDER;
    case v1::RequestContent::DETAILS_NOT_SET:
      return 0;
  }
  return 0;
}

void ValidateDetails(Checker& c, FieldViolations& v, const v1::RequestContent& content) {
  const int details = DetailsInstrument(content);
  if (details != 0 && commonpb::Instrument_IsValid(content.instrument()) &&
      content.instrument() != 0 && details != content.instrument()) {
    v.Add("content.details", "does not match content.instrument");
  }
  switch (content.details_case()) {
    case v1::RequestContent::kMla:
      c.Length("content.mla.treaty", content.mla().treaty(), 0, 256);
      break;
    case v1::RequestContent::kEio: {
      const auto& e = content.eio();
      c.Authority("content.eio.validating_authority", e.validating_authority(), false,
                  e.has_validating_authority());
      c.Length("content.eio.deadline_reason", e.deadline_reason(), 0, 2000);
      break;
    }
    case v1::RequestContent::kEaw: {
      const auto& e = content.eaw();
      c.Enum("content.eaw.purpose", e.purpose(), v1::WarrantPurpose_IsValid, false);
      c.Length("content.eaw.underlying_decision_reference", e.underlying_decision_reference(), 0,
               256);
      c.Length("content.eaw.sis_alert_reference", e.sis_alert_reference(), 0, 64);
      if (e.sentence_imposed_months() < 0) {
        v.Add("content.eaw.sentence_imposed_months", "must not be negative");
      }
      break;
    }
    case v1::RequestContent::kExtradition:
      c.Length("content.extradition.treaty", content.extradition().treaty(), 0, 256);
      c.Length("content.extradition.provisional_arrest_request_id",
               content.extradition().provisional_arrest_request_id(), 0, 64);
      break;
    case v1::RequestContent::kProvisionalArrest:
      c.Length("content.provisional_arrest.treaty", content.provisional_arrest().treaty(), 0, 256);
      c.Length("content.provisional_arrest.underlying_decision_reference",
               content.provisional_arrest().underlying_decision_reference(), 0, 256);
      break;
    case v1::RequestContent::kFreezingOrder: {
      const auto& f = content.freezing_order();
      c.Enum("content.freezing_order.kind", f.kind(), v1::AssetOrderKind_IsValid, false);
      c.Count("content.freezing_order.assets", f.assets_size(), kMaxAssets);
      for (int i = 0; i < f.assets_size(); ++i) {
        const std::string p = absl::StrCat("content.freezing_order.assets[", i, "]");
        c.Length(p + ".description", f.assets(i).description(), 1, 2000);
        if (f.assets(i).estimated_value_minor_units() < 0) {
          v.Add(p + ".estimated_value_minor_units", "must not be negative");
        }
        const std::string& cur = f.assets(i).currency();
        if (!cur.empty() && (cur.size() != 3 || !std::all_of(cur.begin(), cur.end(), [](char ch) {
                               return ch >= 'A' && ch <= 'Z';
                             }))) {
          v.Add(p + ".currency", "must be an ISO 4217 code such as \"EUR\"");
        }
      }
      break;
    }
    case v1::RequestContent::kProductionOrder: {
      const auto& po = content.production_order();
      c.Authority("content.production_order.service_provider", po.service_provider(), false,
                  po.has_service_provider());
      c.Count("content.production_order.data_categories", po.data_categories_size(), 4);
      for (int i = 0; i < po.data_categories_size(); ++i) {
        c.Enum(absl::StrCat("content.production_order.data_categories[", i, "]"),
               po.data_categories(i), v1::DataCategory_IsValid, true);
      }
      c.Country("content.production_order.enforcing_state", po.enforcing_state(), false);
      break;
    }
    case v1::RequestContent::DETAILS_NOT_SET:
      break;
  }
}

}  // namespace

bool IsValidRequestId(const std::string& id) {
  return id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
           return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
         });
}

absl::Status ValidateSubmit(const v1::SubmitRequestRequest& request, absl::Time now) {
  FieldViolations v;
  Checker c(v);
  if (!IsValidRequestId(request.request_id())) {
    v.Add("request_id", "must be at most 64 characters of [A-Za-z0-9_-]");
  }
  if (!request.has_content()) {
    v.Add("content", "is required");
    return v.ToStatus();
  }
  const v1::RequestContent& content = request.content();
  c.Enum("content.instrument", content.instrument(), commonpb::Instrument_IsValid, true);
  c.Enum("content.urgency", content.urgency(), commonpb::Urgency_IsValid, false);
  c.Authority("content.issuing_authority", content.issuing_authority(), true,
              content.has_issuing_authority());
  c.Country("content.requested_state", content.requested_state(), true);
  if (!content.requested_state().empty() &&
      content.requested_state() == content.issuing_authority().state()) {
    v.Add("content.requested_state", "must differ from the issuing authority's state");
  }
  c.Language("content.source_language", content.source_language());
  c.Length("content.legal_basis", content.legal_basis(), 0, 256);
  c.Length("content.issuer_reference", content.issuer_reference(), 0, 128);
  c.Length("content.statement_of_facts", content.statement_of_facts(), 0, 20000);

  c.Count("content.subjects", content.subjects_size(), kMaxSubjects);
  for (int i = 0; i < std::min(content.subjects_size(), kMaxSubjects); ++i) {
    ValidateSubject(c, absl::StrCat("content.subjects[", i, "]"), content.subjects(i), now);
  }
  c.Count("content.offences", content.offences_size(), kMaxOffences);
  for (int i = 0; i < std::min(content.offences_size(), kMaxOffences); ++i) {
    ValidateOffence(c, v, absl::StrCat("content.offences[", i, "]"), content.offences(i));
  }
  c.Count("content.measures", content.measures_size(), kMaxMeasures);
  for (int i = 0; i < std::min(content.measures_size(), kMaxMeasures); ++i) {
    const std::string p = absl::StrCat("content.measures[", i, "]");
    c.Enum(p + ".type", content.measures(i).type(), v1::MeasureType_IsValid, true);
    c.Length(p + ".description", content.measures(i).description(), 0, 4000);
  }
  ValidateDetails(c, v, content);
  if (content.has_safeguards()) {
    const v1::Safeguards& g = content.safeguards();
    const std::pair<const char*, int> items[] = {
        {"dual_criminality", g.dual_criminality()},
        {"ne_bis_in_idem", g.ne_bis_in_idem()},
        {"death_penalty_assurance", g.death_penalty_assurance()},
        {"political_offence", g.political_offence()},
        {"fundamental_rights", g.fundamental_rights()}};
    for (const auto& [name, value] : items) {
      c.Enum(absl::StrCat("content.safeguards.", name), value, v1::SafeguardAssessment_IsValid,
             false);
    }
  }
  return v.ToStatus();
}

namespace {

void CheckId(FieldViolations& v, const std::string& path, const std::string& id, int shard_count) {
  if (id.empty()) {
    v.Add(path, "is required");
  } else if (auto shard = common::Sharding(shard_count).ShardOf("rq", id); !shard.ok()) {
    v.Add(path, std::string(shard.status().message()));
  }
}

void CheckRequestId(FieldViolations& v, const std::string& request_id) {
  if (!IsValidRequestId(request_id)) {
    v.Add("request_id", "must be at most 64 characters of [A-Za-z0-9_-]");
  }
}

void CheckEtag(FieldViolations& v, const std::string& etag) {
  int64_t version = 0;
  if (!etag.empty() && (!absl::SimpleAtoi(etag, &version) || version < 1)) {
    v.Add("etag", "is not an etag this service issued");
  }
}

}  // namespace

bool IsFixedAfterSubmission(const std::string& path) {
  return path == "instrument" || path == "issuing_authority" || path == "requested_state";
}

bool IsSupplementablePath(const std::string& path) {
  const auto* field = v1::RequestContent::descriptor()->FindFieldByName(path);
  return field != nullptr && !IsFixedAfterSubmission(path);
}

absl::Status ValidateTransition(const v1::TransitionRequestRequest& r, int shard_count) {
  FieldViolations v;
  Checker c(v);
  CheckRequestId(v, r.request_id());
  CheckId(v, "id", r.id(), shard_count);
  c.Enum("target_status", r.target_status(), commonpb::RequestStatus_IsValid, true);
  if (r.target_status() == commonpb::REQUEST_STATUS_ACKNOWLEDGED) {
    // One way of doing each thing: the acknowledgment has its own RPC.
    v.Add("target_status", "an acknowledgment of receipt is recorded with AcknowledgeRequest");
  }
  c.Length("reason_code", r.reason_code(), 0, 64);
  c.Length("legal_basis", r.legal_basis(), 0, 256);
  c.Length("note", r.note(), 0, 2000);
  CheckEtag(v, r.etag());
  c.Count("refusal_grounds", r.refusal_grounds_size(), 20);
  for (int i = 0; i < r.refusal_grounds_size(); ++i) {
    c.Enum(absl::StrCat("refusal_grounds[", i, "]"), r.refusal_grounds(i),
           commonpb::RefusalGround_IsValid, true);
  }
  if (r.refusal_grounds_size() == 0 &&
      (r.target_status() == commonpb::REQUEST_STATUS_REFUSED ||
       r.target_status() == commonpb::REQUEST_STATUS_PARTIALLY_EXECUTED)) {
    v.Add("refusal_grounds",
          "at least one coded ground is required for a refusal or a "
          "partial execution");
  }
  return v.ToStatus();
}

absl::Status ValidateSupplement(const v1::SupplementRequestRequest& r, int shard_count) {
  FieldViolations v;
  CheckRequestId(v, r.request_id());
  CheckId(v, "id", r.id(), shard_count);
  CheckEtag(v, r.etag());
  if (!r.has_content()) v.Add("content", "is required");
  if (r.update_mask().paths_size() == 0) {
    v.Add("update_mask", "is required: name the content fields to replace");
  }
  for (int i = 0; i < r.update_mask().paths_size(); ++i) {
    const std::string& path = r.update_mask().paths(i);
    if (IsFixedAfterSubmission(path)) {
      // The parties, the instrument and the requested state are fixed at submission.
      v.Add(absl::StrCat("update_mask.paths[", i, "]"),
            absl::StrCat("content.", path, " is fixed after submission"));
    } else if (!IsSupplementablePath(path)) {
      v.Add(absl::StrCat("update_mask.paths[", i, "]"),
            absl::StrCat("\"", path.substr(0, 64), "\" is not a field of RequestContent"));
    }
  }
  return v.ToStatus();
}

absl::Status ValidateWithdraw(const v1::WithdrawRequestRequest& r, int shard_count) {
  FieldViolations v;
  Checker c(v);
  CheckRequestId(v, r.request_id());
  CheckId(v, "id", r.id(), shard_count);
  c.Length("reason_code", r.reason_code(), 0, 64);
  CheckEtag(v, r.etag());
  return v.ToStatus();
}

absl::Status ValidateAcknowledge(const v1::AcknowledgeRequestRequest& r, int shard_count) {
  FieldViolations v;
  CheckRequestId(v, r.request_id());
  CheckId(v, "id", r.id(), shard_count);
  CheckEtag(v, r.etag());
  return v.ToStatus();
}

absl::Status ValidateHistory(const v1::GetRequestHistoryRequest& r, int shard_count) {
  FieldViolations v;
  CheckId(v, "id", r.id(), shard_count);
  if (r.page_size() < 0 || r.page_size() > 1000) v.Add("page_size", "must be from 0 to 1000");
  return v.ToStatus();
}

absl::Status ValidateGet(const v1::GetRequestRequest& request, int shard_count) {
  FieldViolations v;
  CheckId(v, "id", request.id(), shard_count);
  if (!v1::RequestView_IsValid(request.view())) v.Add("view", "has an unknown value");
  return v.ToStatus();
}

absl::Status ValidateList(const v1::ListRequestsRequest& request) {
  FieldViolations v;
  if (request.page_size() < 0 || request.page_size() > 500) {
    v.Add("page_size", "must be from 0 to 500");
  }
  if (request.status() != 0 && !commonpb::RequestStatus_IsValid(request.status())) {
    v.Add("status", "has an unknown value");
  }
  if (request.instrument() != 0 && !commonpb::Instrument_IsValid(request.instrument())) {
    v.Add("instrument", "has an unknown value");
  }
  if (!request.issuing_state().empty() && !common::IsCountryCode(request.issuing_state())) {
    v.Add("issuing_state", "must be an ISO 3166-1 alpha-2 code in upper case");
  }
  if (!request.requested_state().empty() && !common::IsCountryCode(request.requested_state())) {
    v.Add("requested_state", "must be an ISO 3166-1 alpha-2 code in upper case");
  }
  if (!v1::RequestView_IsValid(request.view())) v.Add("view", "has an unknown value");
  if (request.urgency() != 0 && !commonpb::Urgency_IsValid(request.urgency())) {
    v.Add("urgency", "has an unknown value");
  }
  if (!v1::RequestOrder_IsValid(request.order_by())) v.Add("order_by", "has an unknown value");
  auto valid_time = [](const google::protobuf::Timestamp& t) {
    return t.seconds() >= 0 && t.seconds() < 253402300800 && t.nanos() >= 0 &&
           t.nanos() < 1000000000;
  };
  if (request.has_create_time_from() && !valid_time(request.create_time_from())) {
    v.Add("create_time_from", "must be a time from 1970 to 9999");
  }
  if (request.has_create_time_to() && !valid_time(request.create_time_to())) {
    v.Add("create_time_to", "must be a time from 1970 to 9999");
  } else if (request.has_create_time_from() && request.has_create_time_to() &&
             google::protobuf::util::TimeUtil::TimestampToMilliseconds(request.create_time_to()) <=
                 google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                     request.create_time_from())) {
    v.Add("create_time_to", "must be after create_time_from");
  }
  if (request.statuses_size() > 32) v.Add("statuses", "may name at most 32 statuses");
  for (int i = 0; i < request.statuses_size(); ++i) {
    if (request.statuses(i) == 0 || !commonpb::RequestStatus_IsValid(request.statuses(i))) {
      v.Add(absl::StrCat("statuses[", i, "]"), "must be a known status");
    }
  }
  if (request.status() != 0 && request.statuses_size() > 0) {
    v.Add("statuses", "cannot be combined with status; name every status in statuses");
  }
  if (request.status() != 0 && request.open_only()) {
    v.Add("open_only", "cannot be combined with status; use statuses");
  }
  if (!request.counterpart_state().empty() && !common::IsCountryCode(request.counterpart_state())) {
    v.Add("counterpart_state", "must be an ISO 3166-1 alpha-2 code in upper case");
  }
  if (!v1::CallerSide_IsValid(request.side())) v.Add("side", "has an unknown value");
  if (request.has_next_deadline_before() && !valid_time(request.next_deadline_before())) {
    v.Add("next_deadline_before", "must be a time from 1970 to 9999");
  }
  return v.ToStatus();
}

absl::Status ValidateListScope(const v1::ListRequestsRequest& request, bool all) {
  if (!all) return absl::OkStatus();
  FieldViolations v;
  if (request.side() != v1::CALLER_SIDE_UNSPECIFIED) {
    v.Add("side", "applies to authorities' lists; services and auditors are on no side");
  }
  if (!request.counterpart_state().empty()) {
    v.Add("counterpart_state",
          "applies to authorities' lists; services and auditors have no counterpart");
  }
  if (request.order_by() == v1::REQUEST_ORDER_NEXT_DUE_TIME) {
    v.Add("order_by",
          "REQUEST_ORDER_NEXT_DUE_TIME is offered on an authority's own worklist; lists of "
          "every request are ordered by creation or update time");
  }
  return v.ToStatus();
}

}  // namespace rogatory::intake
