#include <set>

#include "completeness.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "request_validator.h"
#include "rogatory/common/status.h"

namespace rogatory::intake {
namespace {

using testing::CompleteEio;
const absl::Time kNow = absl::FromUnixSeconds(1795700000);  // 2026-11

std::set<std::string> BadFields(const absl::Status& s) {
  std::set<std::string> out;
  for (const auto& v : common::GetFieldViolations(s)) out.insert(v.field);
  return out;
}

v1::SubmitRequestRequest Submit(v1::RequestContent c) {
  v1::SubmitRequestRequest r;
  r.set_request_id("abc-123");
  *r.mutable_content() = std::move(c);
  return r;
}

TEST(ValidatorTest, CompleteEioIsValid) {
  EXPECT_TRUE(ValidateSubmit(Submit(CompleteEio()), kNow).ok());
}

TEST(ValidatorTest, EveryBadFieldIsListedNotOnlyTheFirst) {
  v1::RequestContent c = CompleteEio();
  c.set_instrument(common::v1::INSTRUMENT_UNSPECIFIED);
  c.set_requested_state("germany");
  c.set_source_language("");
  c.clear_issuing_authority();
  c.mutable_subjects(0)->set_family_name("");
  c.mutable_subjects(0)->mutable_birth_date()->set_day(30);  // 30 February
  c.mutable_offences(0)->set_maximum_penalty_months(0);
  c.mutable_measures(0)->set_type(static_cast<v1::MeasureType>(77));
  auto r = Submit(c);
  r.set_request_id("has spaces");
  absl::Status s = ValidateSubmit(r, kNow);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BadFields(s),
            (std::set<std::string>{
                "request_id", "content.instrument", "content.requested_state",
                "content.source_language", "content.issuing_authority",
                "content.subjects[0].family_name", "content.subjects[0].birth_date",
                "content.offences[0].maximum_penalty_months", "content.measures[0].type"}));
}

TEST(ValidatorTest, MissingContentIsReported) {
  EXPECT_EQ(BadFields(ValidateSubmit(v1::SubmitRequestRequest(), kNow)),
            std::set<std::string>{"content"});
}

TEST(ValidatorTest, TooManyItemsAndOverlongStringsAreRejected) {
  v1::RequestContent c = CompleteEio();
  for (int i = 0; i < 60; ++i) *c.add_offences() = c.offences(0);
  c.set_statement_of_facts(std::string(20001, 'x'));
  EXPECT_EQ(BadFields(ValidateSubmit(Submit(c), kNow)),
            (std::set<std::string>{"content.offences", "content.statement_of_facts"}));
}

TEST(ValidatorTest, RequestedStateMustDifferFromIssuingState) {
  v1::RequestContent c = CompleteEio();
  c.set_requested_state("FR");
  EXPECT_EQ(BadFields(ValidateSubmit(Submit(c), kNow)),
            std::set<std::string>{"content.requested_state"});
}

TEST(ValidatorTest, DetailsMustMatchInstrument) {
  v1::RequestContent c = CompleteEio();
  c.mutable_eaw();
  EXPECT_EQ(BadFields(ValidateSubmit(Submit(c), kNow)), std::set<std::string>{"content.details"});
}

TEST(ValidatorTest, BirthDateInTheFutureIsRejected) {
  v1::RequestContent c = CompleteEio();
  c.mutable_subjects(0)->mutable_birth_date()->set_year(2030);
  EXPECT_EQ(BadFields(ValidateSubmit(Submit(c), kNow)),
            std::set<std::string>{"content.subjects[0].birth_date"});
}

std::set<std::string> MissingCodes(const v1::RequestContent& c) {
  std::set<std::string> out;
  for (const auto& m : FindMissingElements(c)) out.insert(m.code());
  return out;
}

TEST(CompletenessTest, CompleteEioHasNothingMissing) {
  EXPECT_TRUE(FindMissingElements(CompleteEio()).empty());
}

TEST(CompletenessTest, EioWithoutMeasuresIsIncomplete) {
  v1::RequestContent c = CompleteEio();
  c.clear_measures();
  EXPECT_EQ(MissingCodes(c), std::set<std::string>{"MEASURES_REQUIRED"});
}

TEST(CompletenessTest, EawNeedsMaximumPenaltyPurposeAndRequestedPerson) {
  v1::RequestContent c = CompleteEio();
  c.set_instrument(common::v1::INSTRUMENT_EAW);
  c.mutable_eaw();
  c.mutable_offences(0)->clear_maximum_penalty_months();
  EXPECT_EQ(MissingCodes(c),
            (std::set<std::string>{"REQUESTED_PERSON_REQUIRED", "MAXIMUM_PENALTY_REQUIRED",
                                   "WARRANT_PURPOSE_REQUIRED", "ENFORCEABLE_DECISION_REQUIRED"}));
  auto missing = FindMissingElements(c);
  bool has_path = false;
  for (const auto& m : missing) has_path |= m.field() == "content.offences[0].maximum_penalty";
  EXPECT_TRUE(has_path);
}

TEST(CompletenessTest, ProvisionalArrestNeedsStatementThatFormalRequestFollows) {
  v1::RequestContent c = CompleteEio();
  c.set_instrument(common::v1::INSTRUMENT_PROVISIONAL_ARREST);
  c.mutable_subjects(0)->set_role(v1::SUBJECT_ROLE_REQUESTED_PERSON);
  c.mutable_provisional_arrest()->set_underlying_decision_reference("Warrant 12/2026");
  EXPECT_EQ(MissingCodes(c), std::set<std::string>{"FORMAL_REQUEST_STATEMENT_REQUIRED"});
  c.mutable_provisional_arrest()->set_formal_request_will_follow(true);
  EXPECT_TRUE(MissingCodes(c).empty());
}

TEST(CompletenessTest, ProductionOrderNeedsProviderAndDataCategories) {
  v1::RequestContent c = CompleteEio();
  c.set_instrument(common::v1::INSTRUMENT_PRODUCTION_ORDER);
  c.mutable_production_order();
  EXPECT_EQ(MissingCodes(c),
            (std::set<std::string>{"SERVICE_PROVIDER_REQUIRED", "DATA_CATEGORIES_REQUIRED"}));
}

}  // namespace
}  // namespace rogatory::intake
