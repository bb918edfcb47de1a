// Malformed input, table-driven: each case breaks one thing and must be answered with
// INVALID_ARGUMENT naming exactly that field path (and nothing else).
#include <functional>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "request_validator.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/status.h"

namespace rogatory::intake {
namespace {

namespace pb = rogatory::common::v1;
const absl::Time kNow = absl::FromUnixSeconds(1795700000);  // 2026-11

struct SubmitCase {
  const char* name;
  std::function<void(v1::SubmitRequestRequest&)> breaks;
  std::string field;
};

v1::SubmitRequestRequest Valid() {
  v1::SubmitRequestRequest r;
  r.set_request_id("abc-123");
  *r.mutable_content() = testing::CompleteEio();
  return r;
}

std::set<std::string> BadFields(const absl::Status& s) {
  std::set<std::string> out;
  for (const auto& v : common::GetFieldViolations(s)) out.insert(v.field);
  return out;
}

std::vector<SubmitCase> SubmitCases() {
  using R = v1::SubmitRequestRequest;
  auto c = [](R& r) { return r.mutable_content(); };
  return {
      {"RequestIdWithSpaces", [](R& r) { r.set_request_id("has spaces"); }, "request_id"},
      {"RequestIdTooLong", [](R& r) { r.set_request_id(std::string(65, 'a')); }, "request_id"},
      {"NoContent", [](R& r) { r.clear_content(); }, "content"},
      {"InstrumentUnspecified", [=](R& r) { c(r)->set_instrument(pb::INSTRUMENT_UNSPECIFIED); },
       "content.instrument"},
      {"InstrumentUnknown", [=](R& r) { c(r)->set_instrument(static_cast<pb::Instrument>(42)); },
       "content.instrument"},
      {"UrgencyUnknown", [=](R& r) { c(r)->set_urgency(static_cast<pb::Urgency>(9)); },
       "content.urgency"},
      {"NoIssuingAuthority", [=](R& r) { c(r)->clear_issuing_authority(); },
       "content.issuing_authority"},
      {"IssuingAuthorityIdEmpty",
       [=](R& r) { c(r)->mutable_issuing_authority()->clear_authority_id(); },
       "content.issuing_authority.authority_id"},
      {"IssuingAuthorityIdBadCharacters",
       [=](R& r) { c(r)->mutable_issuing_authority()->set_authority_id("FR TJ/Paris"); },
       "content.issuing_authority.authority_id"},
      {"IssuingStateLowerCase", [=](R& r) { c(r)->mutable_issuing_authority()->set_state("fr"); },
       "content.issuing_authority.state"},
      {"IssuingAuthorityNameTooLong",
       [=](R& r) { c(r)->mutable_issuing_authority()->set_display_name(std::string(257, 'x')); },
       "content.issuing_authority.display_name"},
      {"RequestedStateMissing", [=](R& r) { c(r)->clear_requested_state(); },
       "content.requested_state"},
      {"RequestedStateNotACountry", [=](R& r) { c(r)->set_requested_state("XX1"); },
       "content.requested_state"},
      {"RequestedStateGreeceAsEl", [=](R& r) { c(r)->set_requested_state("EL"); },
       "content.requested_state"},
      {"RequestedStateSameAsIssuing", [=](R& r) { c(r)->set_requested_state("FR"); },
       "content.requested_state"},
      {"SourceLanguageMissing", [=](R& r) { c(r)->clear_source_language(); },
       "content.source_language"},
      {"SourceLanguageNotBcp47", [=](R& r) { c(r)->set_source_language("french!"); },
       "content.source_language"},
      {"LegalBasisTooLong", [=](R& r) { c(r)->set_legal_basis(std::string(257, 'x')); },
       "content.legal_basis"},
      {"IssuerReferenceTooLong", [=](R& r) { c(r)->set_issuer_reference(std::string(129, 'x')); },
       "content.issuer_reference"},
      {"StatementOfFactsTooLong",
       [=](R& r) { c(r)->set_statement_of_facts(std::string(20001, 'x')); },
       "content.statement_of_facts"},
      {"TooManySubjects",
       [=](R& r) {
         for (int i = 0; i < 50; ++i) *c(r)->add_subjects() = c(r)->subjects(0);
       },
       "content.subjects"},
      {"SubjectRoleMissing", [=](R& r) { c(r)->mutable_subjects(0)->clear_role(); },
       "content.subjects[0].role"},
      {"SubjectFamilyNameEmpty", [=](R& r) { c(r)->mutable_subjects(0)->clear_family_name(); },
       "content.subjects[0].family_name"},
      {"SubjectBirthDateImpossible",
       [=](R& r) { c(r)->mutable_subjects(0)->mutable_birth_date()->set_month(13); },
       "content.subjects[0].birth_date"},
      {"SubjectBirthDateInFuture",
       [=](R& r) { c(r)->mutable_subjects(0)->mutable_birth_date()->set_year(2031); },
       "content.subjects[0].birth_date"},
      {"SubjectNationalityBad",
       [=](R& r) { c(r)->mutable_subjects(0)->add_nationalities("French"); },
       "content.subjects[0].nationalities[0]"},
      {"SubjectTooManyNationalities",
       [=](R& r) {
         for (int i = 0; i < 9; ++i) c(r)->mutable_subjects(0)->add_nationalities("FR");
       },
       "content.subjects[0].nationalities"},
      {"SubjectIdentifierValueEmpty",
       [=](R& r) { c(r)->mutable_subjects(0)->add_identifiers()->set_kind("PASSPORT"); },
       "content.subjects[0].identifiers[0].value"},
      {"OffenceDescriptionEmpty", [=](R& r) { c(r)->mutable_offences(0)->clear_description(); },
       "content.offences[0].description"},
      {"OffencePenaltyZeroMonths",
       [=](R& r) { c(r)->mutable_offences(0)->set_maximum_penalty_months(0); },
       "content.offences[0].maximum_penalty_months"},
      {"OffencePenaltyOver100Years",
       [=](R& r) { c(r)->mutable_offences(0)->set_maximum_penalty_months(1201); },
       "content.offences[0].maximum_penalty_months"},
      {"TooManyOffences",
       [=](R& r) {
         for (int i = 0; i < 50; ++i) *c(r)->add_offences() = c(r)->offences(0);
       },
       "content.offences"},
      {"MeasureTypeUnknown",
       [=](R& r) { c(r)->mutable_measures(0)->set_type(static_cast<v1::MeasureType>(77)); },
       "content.measures[0].type"},
      {"MeasureDescriptionTooLong",
       [=](R& r) { c(r)->mutable_measures(0)->set_description(std::string(4001, 'x')); },
       "content.measures[0].description"},
      {"DetailsOfAnotherInstrument", [=](R& r) { c(r)->mutable_eaw(); }, "content.details"},
      {"EioDeadlineReasonTooLong",
       [=](R& r) { c(r)->mutable_eio()->set_deadline_reason(std::string(2001, 'x')); },
       "content.eio.deadline_reason"},
      {"EioValidatingAuthorityWithoutState",
       [=](R& r) {
         c(r)->mutable_eio()->mutable_validating_authority()->set_authority_id("FR-JLD");
       },
       "content.eio.validating_authority.state"},
      {"EawPurposeUnknown",
       [=](R& r) {
         c(r)->set_instrument(pb::INSTRUMENT_EAW);
         c(r)->mutable_eaw()->set_purpose(static_cast<v1::WarrantPurpose>(5));
       },
       "content.eaw.purpose"},
      {"EawNegativeSentence",
       [=](R& r) {
         c(r)->set_instrument(pb::INSTRUMENT_EAW);
         c(r)->mutable_eaw()->set_sentence_imposed_months(-1);
       },
       "content.eaw.sentence_imposed_months"},
      {"FreezingAssetCurrencyBad",
       [=](R& r) {
         c(r)->set_instrument(pb::INSTRUMENT_FREEZING_ORDER);
         auto* a = c(r)->mutable_freezing_order()->add_assets();
         a->set_description("Account");
         a->set_currency("euro");
       },
       "content.freezing_order.assets[0].currency"},
      {"FreezingAssetNegativeValue",
       [=](R& r) {
         c(r)->set_instrument(pb::INSTRUMENT_FREEZING_ORDER);
         auto* a = c(r)->mutable_freezing_order()->add_assets();
         a->set_description("Account");
         a->set_estimated_value_minor_units(-5);
       },
       "content.freezing_order.assets[0].estimated_value_minor_units"},
      {"ProductionOrderDataCategoryUnspecified",
       [=](R& r) {
         c(r)->set_instrument(pb::INSTRUMENT_PRODUCTION_ORDER);
         c(r)->mutable_production_order()->add_data_categories(v1::DATA_CATEGORY_UNSPECIFIED);
       },
       "content.production_order.data_categories[0]"},
      {"ProductionOrderEnforcingStateBad",
       [=](R& r) {
         c(r)->set_instrument(pb::INSTRUMENT_PRODUCTION_ORDER);
         c(r)->mutable_production_order()->set_enforcing_state("Ireland");
       },
       "content.production_order.enforcing_state"},
      {"SafeguardUnknownValue",
       [=](R& r) {
         c(r)->mutable_safeguards()->set_death_penalty_assurance(
             static_cast<v1::SafeguardAssessment>(12));
       },
       "content.safeguards.death_penalty_assurance"},
  };
}

class MalformedSubmitTest : public ::testing::TestWithParam<SubmitCase> {};

TEST_P(MalformedSubmitTest, IsInvalidArgumentNamingExactlyTheFieldPath) {
  v1::SubmitRequestRequest r = Valid();
  ASSERT_TRUE(ValidateSubmit(r, kNow).ok());
  GetParam().breaks(r);
  const absl::Status s = ValidateSubmit(r, kNow);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BadFields(s), std::set<std::string>{GetParam().field}) << s.message();
}

INSTANTIATE_TEST_SUITE_P(Table, MalformedSubmitTest, ::testing::ValuesIn(SubmitCases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(MalformedTableTest, HasAtLeastThirtyCases) { EXPECT_GE(SubmitCases().size(), 30u); }

// The lifecycle RPCs' own fields.
TEST(MalformedChangeTest, TransitionNamesEveryBadField) {
  v1::TransitionRequestRequest r;
  r.set_request_id("bad id");
  r.set_id("rq-99-nope");
  r.set_target_status(static_cast<pb::RequestStatus>(999));
  r.set_reason_code(std::string(65, 'x'));
  r.set_legal_basis(std::string(257, 'x'));
  r.set_note(std::string(2001, 'x'));
  r.set_etag("-3");
  r.add_refusal_grounds(pb::REFUSAL_GROUND_UNSPECIFIED);
  EXPECT_EQ(BadFields(ValidateTransition(r, 16)),
            (std::set<std::string>{"request_id", "id", "target_status", "reason_code",
                                   "legal_basis", "note", "etag", "refusal_grounds[0]"}));
}

TEST(MalformedChangeTest, WithdrawAndHistoryNameTheirBadFields) {
  v1::WithdrawRequestRequest w;
  w.set_reason_code(std::string(65, 'x'));
  EXPECT_EQ(BadFields(ValidateWithdraw(w, 16)), (std::set<std::string>{"id", "reason_code"}));
  v1::GetRequestHistoryRequest h;
  h.set_id(common::Sharding::MakeId("rq", 1, kNow));
  h.set_page_size(1001);
  EXPECT_EQ(BadFields(ValidateHistory(h, 16)), std::set<std::string>{"page_size"});
}

}  // namespace
}  // namespace rogatory::intake
