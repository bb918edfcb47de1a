#include "completeness.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"

namespace rogatory::intake {
namespace {

namespace commonpb = rogatory::common::v1;

class Missing {
 public:
  void Add(std::string field, std::string code, std::string description) {
    v1::MissingElement e;
    e.set_field(std::move(field));
    e.set_code(std::move(code));
    e.set_description(std::move(description));
    out_.push_back(std::move(e));
  }
  std::vector<v1::MissingElement> Take() { return std::move(out_); }

 private:
  std::vector<v1::MissingElement> out_;
};

bool HasSubject(const v1::RequestContent& c, v1::SubjectRole role) {
  return std::any_of(c.subjects().begin(), c.subjects().end(),
                     [role](const v1::Subject& s) { return s.role() == role; });
}

void NeedOffences(const v1::RequestContent& c, Missing& m, const char* basis) {
  if (c.offences_size() == 0) {
    m.Add("content.offences", "OFFENCE_REQUIRED",
          absl::StrCat("a description of the offence is required (", basis, ")"));
  }
}

void NeedMaximumPenalties(const v1::RequestContent& c, Missing& m, const char* basis) {
  for (int i = 0; i < c.offences_size(); ++i) {
    if (c.offences(i).maximum_penalty_case() == v1::Offence::MAXIMUM_PENALTY_NOT_SET) {
      m.Add(absl::StrCat("content.offences[", i, "].maximum_penalty"), "MAXIMUM_PENALTY_REQUIRED",
            absl::StrCat("the maximum penalty in the issuing state is required (", basis, ")"));
    }
  }
}

void NeedRequestedPerson(const v1::RequestContent& c, Missing& m, const char* basis) {
  if (!HasSubject(c, v1::SUBJECT_ROLE_REQUESTED_PERSON)) {
    m.Add("content.subjects", "REQUESTED_PERSON_REQUIRED",
          absl::StrCat("the identity of the requested person is required (", basis, ")"));
  }
}

void NeedMeasures(const v1::RequestContent& c, Missing& m, const char* basis) {
  if (c.measures_size() == 0) {
    m.Add("content.measures", "MEASURES_REQUIRED",
          absl::StrCat("the investigative measures requested are required (", basis, ")"));
  }
}

}  // namespace

std::vector<v1::MissingElement> FindMissingElements(const v1::RequestContent& c) {
  Missing m;
  switch (c.instrument()) {
    case commonpb::INSTRUMENT_MLA:
      NeedOffences(c, m, "1959 MLA Convention Art 14");
      NeedMeasures(c, m, "1959 MLA Convention Art 14");
      if (c.mla().treaty().empty()) {
        m.Add("content.mla.treaty", "TREATY_REQUIRED", "the treaty relied on is required");
      }
      break;
    case commonpb::INSTRUMENT_EIO:
      NeedOffences(c, m, "Directive 2014/41/EU Annex A section G");
      NeedMeasures(c, m, "Directive 2014/41/EU Art 5(1)(c), Annex A section C");
      if (c.eio().has_execute_by_time() || c.eio().has_execute_on_date()) {
        if (c.eio().deadline_reason().empty()) {
          m.Add("content.eio.deadline_reason", "DEADLINE_REASON_REQUIRED",
                "a shorter deadline or fixed date needs reasons (Directive 2014/41/EU Art 12(2))");
        }
      }
      break;
    case commonpb::INSTRUMENT_EAW:
      NeedRequestedPerson(c, m, "FD 2002/584/JHA Art 8(1)(a)");
      NeedOffences(c, m, "FD 2002/584/JHA Art 8(1)(d),(e)");
      NeedMaximumPenalties(c, m, "FD 2002/584/JHA Art 8(1)(f)");
      if (c.eaw().purpose() == v1::WARRANT_PURPOSE_UNSPECIFIED) {
        m.Add("content.eaw.purpose", "WARRANT_PURPOSE_REQUIRED",
              "whether the warrant is for prosecution or sentence execution is required "
              "(FD 2002/584/JHA Art 1(1))");
      } else if (c.eaw().purpose() == v1::WARRANT_PURPOSE_SENTENCE_EXECUTION &&
                 c.eaw().sentence_imposed_months() <= 0) {
        m.Add("content.eaw.sentence_imposed_months", "SENTENCE_REQUIRED",
              "the sentence imposed is required (FD 2002/584/JHA Art 8(1)(f))");
      }
      if (c.eaw().underlying_decision_reference().empty()) {
        m.Add(
            "content.eaw.underlying_decision_reference", "ENFORCEABLE_DECISION_REQUIRED",
            "the enforceable judgment or arrest warrant is required (FD 2002/584/JHA Art 8(1)(c))");
      }
      break;
    case commonpb::INSTRUMENT_EXTRADITION:
      NeedRequestedPerson(c, m, "ECE Art 12(2)(c)");
      NeedOffences(c, m, "ECE Art 12(2)(b)");
      NeedMaximumPenalties(c, m, "ECE Art 2(1)");
      if (c.extradition().treaty().empty()) {
        m.Add("content.extradition.treaty", "TREATY_REQUIRED", "the treaty relied on is required");
      }
      break;
    case commonpb::INSTRUMENT_PROVISIONAL_ARREST:
      NeedRequestedPerson(c, m, "ECE Art 16(2)");
      NeedOffences(c, m, "ECE Art 16(2)");
      if (!c.provisional_arrest().formal_request_will_follow()) {
        m.Add("content.provisional_arrest.formal_request_will_follow",
              "FORMAL_REQUEST_STATEMENT_REQUIRED",
              "the statement that a formal extradition request will follow is required "
              "(ECE Art 16(2))");
      }
      if (c.provisional_arrest().underlying_decision_reference().empty()) {
        m.Add("content.provisional_arrest.underlying_decision_reference",
              "ENFORCEABLE_DECISION_REQUIRED",
              "the existence of a warrant or judgment must be stated (ECE Art 16(2))");
      }
      break;
    case commonpb::INSTRUMENT_FREEZING_ORDER:
      NeedOffences(c, m, "Regulation (EU) 2018/1805 Annex I section G");
      if (c.freezing_order().kind() == v1::ASSET_ORDER_KIND_UNSPECIFIED) {
        m.Add("content.freezing_order.kind", "ORDER_KIND_REQUIRED",
              "whether it is a freezing or confiscation order is required");
      }
      if (c.freezing_order().assets_size() == 0) {
        m.Add("content.freezing_order.assets", "ASSETS_REQUIRED",
              "the property concerned is required (Regulation (EU) 2018/1805 Annex I section C)");
      }
      break;
    case commonpb::INSTRUMENT_PRODUCTION_ORDER:
      if (!c.production_order().has_service_provider()) {
        m.Add("content.production_order.service_provider", "SERVICE_PROVIDER_REQUIRED",
              "the addressee service provider is required (Regulation (EU) 2023/1543 Art 9)");
      }
      if (c.production_order().data_categories_size() == 0) {
        m.Add("content.production_order.data_categories", "DATA_CATEGORIES_REQUIRED",
              "the categories of data requested are required (Regulation (EU) 2023/1543 Art 5)");
      }
      break;
    default:
      break;
  }
  return m.Take();
}

}  // namespace rogatory::intake
