// The rules file: the reference rules load and are valid, and a bad file is refused with
// the path of every problem.
#include "rules.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "gtest/gtest.h"
#include "test_rules.h"

namespace rogatory::deadlines {
namespace {

TEST(RulesTest, ReferenceRulesCoverAllSevenInstruments) {
  auto rules = testing::ReferenceRules();
  ASSERT_NE(rules, nullptr);
  std::set<int> instruments;
  for (const auto& r : rules->file().rules()) instruments.insert(r.instrument());
  for (int i = 1; i <= 7; ++i) EXPECT_TRUE(instruments.count(i)) << "instrument " << i;
  EXPECT_FALSE(rules->version().empty());
}

TEST(RulesTest, TriggeredByHonoursInstrumentAndUrgency) {
  auto rules = testing::ReferenceRules();
  auto urgent =
      rules->TriggeredBy(common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY,
                         common::v1::INSTRUMENT_FREEZING_ORDER, common::v1::URGENCY_URGENT);
  ASSERT_EQ(urgent.size(), 1u);
  EXPECT_EQ(urgent[0]->id(), "FREEZING_RECOGNITION_URGENT");
  auto normal =
      rules->TriggeredBy(common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY,
                         common::v1::INSTRUMENT_FREEZING_ORDER, common::v1::URGENCY_NORMAL);
  ASSERT_EQ(normal.size(), 1u);
  EXPECT_EQ(normal[0]->id(), "CONFISCATION_RECOGNITION");
  auto arrest =
      rules->TriggeredBy(common::v1::EVENT_TYPE_PROVISIONAL_ARREST,
                         common::v1::INSTRUMENT_PROVISIONAL_ARREST, common::v1::URGENCY_NORMAL);
  EXPECT_EQ(arrest.size(), 3u);  // 18 days, 40 days, 10 days consent statement
}

TEST(RulesTest, EioAcknowledgmentRunsFromReceptionByTheCompetentAuthority) {
  // Directive 2014/41/EU Art 16(1): "within a week of the reception of an EIO" by the
  // competent executing authority, not from the issuer's submission.
  auto rules = testing::ReferenceRules();
  const v1::DeadlineRule& ack = testing::Rule("EIO_ACKNOWLEDGE");
  EXPECT_EQ(ack.trigger(), common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY);
  ASSERT_EQ(ack.satisfied_by_size(), 1);
  EXPECT_EQ(ack.satisfied_by(0), common::v1::EVENT_TYPE_REQUEST_ACKNOWLEDGED);
  auto ids = [](const std::vector<const v1::DeadlineRule*>& list) {
    std::set<std::string> out;
    for (const auto* r : list) out.insert(r->id());
    return out;
  };
  EXPECT_FALSE(ids(rules->TriggeredBy(common::v1::EVENT_TYPE_REQUEST_SUBMITTED,
                                      common::v1::INSTRUMENT_EIO, common::v1::URGENCY_NORMAL))
                   .count("EIO_ACKNOWLEDGE"));
  EXPECT_EQ(ids(rules->TriggeredBy(common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY,
                                   common::v1::INSTRUMENT_EIO, common::v1::URGENCY_NORMAL)),
            (std::set<std::string>{"EIO_ACKNOWLEDGE", "EIO_RECOGNITION"}));
}

TEST(RulesTest, EveryRuleCitesTheSourceOfItsPeriodAndTrigger) {
  for (const auto& r : testing::ReferenceRules()->file().rules()) {
    SCOPED_TRACE(r.id());
    EXPECT_FALSE(r.legal_basis().empty());
    EXPECT_GT(r.source().size(), 40u);
    EXPECT_NE(r.source().find("Trigger"), std::string::npos);
  }
}

TEST(RulesTest, FreezingProvisionalArrestAndProductionOrderRulesHaveTheirTriggers) {
  using common::v1::EventType;
  struct Want {
    const char* id;
    EventType trigger;
    int length;
    v1::PeriodUnit unit;
    v1::DeadlineKind kind;
  };
  const Want wants[] = {
      {"FREEZING_RECOGNITION_URGENT",
       common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY, 48, v1::PERIOD_UNIT_HOURS,
       v1::DEADLINE_KIND_LIMIT},
      {"FREEZING_EXECUTION_URGENT", common::v1::EVENT_TYPE_REQUEST_RECOGNISED, 48,
       v1::PERIOD_UNIT_HOURS, v1::DEADLINE_KIND_LIMIT},
      {"CONFISCATION_RECOGNITION", common::v1::EVENT_TYPE_REQUEST_RECEIVED_BY_COMPETENT_AUTHORITY,
       45, v1::PERIOD_UNIT_DAYS, v1::DEADLINE_KIND_LIMIT},
      {"PROVISIONAL_ARREST_MAY_END", common::v1::EVENT_TYPE_PROVISIONAL_ARREST, 18,
       v1::PERIOD_UNIT_DAYS, v1::DEADLINE_KIND_LIMIT},
      {"PROVISIONAL_ARREST_MAXIMUM", common::v1::EVENT_TYPE_PROVISIONAL_ARREST, 40,
       v1::PERIOD_UNIT_DAYS, v1::DEADLINE_KIND_ABSOLUTE_MAXIMUM},
      {"EXTRADITION_PROVISIONAL_ARREST_MAY_END", common::v1::EVENT_TYPE_PROVISIONAL_ARREST, 18,
       v1::PERIOD_UNIT_DAYS, v1::DEADLINE_KIND_LIMIT},
      {"EXTRADITION_PROVISIONAL_ARREST_MAXIMUM", common::v1::EVENT_TYPE_PROVISIONAL_ARREST, 40,
       v1::PERIOD_UNIT_DAYS, v1::DEADLINE_KIND_ABSOLUTE_MAXIMUM},
      {"PRODUCTION_ORDER_DATA", common::v1::EVENT_TYPE_SENT_TO_PROVIDER, 10, v1::PERIOD_UNIT_DAYS,
       v1::DEADLINE_KIND_LIMIT},
      {"PRODUCTION_ORDER_DATA_EMERGENCY", common::v1::EVENT_TYPE_SENT_TO_PROVIDER, 8,
       v1::PERIOD_UNIT_HOURS, v1::DEADLINE_KIND_LIMIT},
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(w.id);
    const v1::DeadlineRule& r = testing::Rule(w.id);
    EXPECT_EQ(r.trigger(), w.trigger);
    EXPECT_EQ(r.length(), w.length);
    EXPECT_EQ(r.unit(), w.unit);
    EXPECT_EQ(r.kind(), w.kind);
  }
  // The Convention is not EU law: Regulation 1182/71 does not move its limits.
  EXPECT_FALSE(testing::Rule("PROVISIONAL_ARREST_MAXIMUM").regulation_1182_71());
}

TEST(RulesTest, InvalidRuleNamesPathAndProblem) {
  v1::DeadlineRulesFile file;
  file.set_version("t");
  auto* r = file.add_rules();
  r->set_id("bad id");
  r->set_unit(v1::PERIOD_UNIT_DAYS);
  r->set_length(0);
  r->set_max_extensions(1);
  auto* dup = file.add_rules();
  *dup = *r;
  dup->set_id("A");
  *file.add_rules() = *dup;
  auto set =
      RuleSet::Create(file, *Calendars::Create(testing::ReferenceRules()->calendars().file()));
  ASSERT_FALSE(set.ok());
  const std::string m(set.status().message());
  for (const char* want :
       {"rules[0].id", "rules[0].instrument", "rules[0].kind", "rules[0].length",
        "rules[0].max_extension", "rules[0].satisfied_by", "rules[2].id: duplicate rule id A"}) {
    EXPECT_NE(m.find(want), std::string::npos) << want << " in " << m;
  }
}

TEST(RulesTest, LoadRefusesUnknownFieldsAndKeepsTheOldRulesOnReload) {
  const std::string dir = ::testing::TempDir() + "/rules_reload";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(std::string(ROGATORY_DEADLINES_DATA_DIR) + "/calendars.json",
                             dir + "/calendars.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(std::string(ROGATORY_DEADLINES_DATA_DIR) + "/rules.json",
                             dir + "/rules.json",
                             std::filesystem::copy_options::overwrite_existing);
  auto first = RuleSet::Load(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  RulesRegistry registry(dir, *first);
  std::ofstream(dir + "/rules.json") << R"({"version": "x", "rules": [{"idd": "A"}]})";
  absl::Status s = registry.Reload();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("rules.json"), std::string::npos) << s;
  EXPECT_EQ(registry.Current()->version(), (*first)->version());
  std::ofstream(dir + "/rules.json") << R"({"version": "2", "rules": [{"id": "X",
      "instrument": "INSTRUMENT_EIO", "trigger": "EVENT_TYPE_REQUEST_SUBMITTED", "length": 3,
      "unit": "PERIOD_UNIT_DAYS", "kind": "DEADLINE_KIND_LIMIT",
      "satisfiedBy": ["EVENT_TYPE_REQUEST_ACKNOWLEDGED"]}]})";
  ASSERT_TRUE(registry.Reload().ok());
  EXPECT_EQ(registry.Current()->version().substr(0, 2), "2+");
  ASSERT_NE(registry.Current()->Find("X"), nullptr);
}

}  // namespace
}  // namespace rogatory::deadlines
