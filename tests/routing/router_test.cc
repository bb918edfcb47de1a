// Table-driven routing decisions over the reference registry (services/routing/data): each
// case asserts language, authority, channel and the explanation.
#include "router.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "intake_service.h"
#include "routing_event_handler.h"

namespace rogatory::routing {
namespace {

using common::v1::Channel;
using common::v1::Instrument;
using common::v1::Urgency;
using ::testing::HasSubstr;

constexpr auto kEio = common::v1::INSTRUMENT_EIO;
constexpr auto kEaw = common::v1::INSTRUMENT_EAW;
constexpr auto kMla = common::v1::INSTRUMENT_MLA;
constexpr auto kNormal = common::v1::URGENCY_NORMAL;
constexpr auto kUrgent = common::v1::URGENCY_URGENT;
constexpr auto kEmergency = common::v1::URGENCY_EMERGENCY;
constexpr auto kDirect = common::v1::CHANNEL_DIRECT_JUDICIAL;
constexpr auto kSis = common::v1::CHANNEL_SIS_SIRENE;
constexpr auto kCentral = common::v1::CHANNEL_CENTRAL_AUTHORITY;
constexpr auto kNone = common::v1::CHANNEL_UNSPECIFIED;

struct Case {
  std::string name;
  Instrument instrument;
  std::string issuing_state;
  std::string requested_state;
  std::string source_language;
  Urgency urgency;
  std::string region;
  // Expectations.
  bool unroutable;
  bool translation;
  std::string target;     // "" when no translation
  std::string authority;  // "" when unroutable
  Channel channel;
  std::vector<std::string> codes;  // reason codes, in order
  std::string explanation;         // a piece of the reasons' details
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const std::vector<Case>& Cases() {
  static const auto* cases = new std::vector<Case>{
      {"BelgiumAcceptsFrench",
       kEio,
       "FR",
       "BE",
       "fr",
       kNormal,
       "",
       false,
       false,
       "",
       "BE-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "BE accepts fr for INSTRUMENT_EIO always"},
      {"BelgiumAcceptsDutch",
       kEio,
       "NL",
       "BE",
       "nl",
       kNormal,
       "",
       false,
       false,
       "",
       "BE-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "BE accepts nl"},
      {"BelgiumAcceptsGerman",
       kEio,
       "DE",
       "BE",
       "de",
       kNormal,
       "",
       false,
       false,
       "",
       "BE-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "BE accepts de"},
      {"BelgiumAcceptsEnglishForEaw",
       kEaw,
       "IE",
       "BE",
       "en",
       kNormal,
       "",
       false,
       false,
       "",
       "BE-EAW-COURT",
       kSis,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "Transmitted by CHANNEL_SIS_SIRENE"},
      {"BelgiumSpanishIsTranslatedIntoDutch",
       kEio,
       "ES",
       "BE",
       "es",
       kNormal,
       "",
       false,
       true,
       "nl",
       "BE-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_NOT_ACCEPTED", "TRANSLATION_REQUIRED",
        "COMPETENT_AUTHORITY", "CHANNEL"},
       "Translate from es into nl, the first language BE accepts always"},
      {"CroatiaAcceptsEnglishWhenUrgent",
       kEio,
       "NL",
       "HR",
       "en",
       kUrgent,
       "",
       false,
       false,
       "",
       "HR-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "HR accepts en for INSTRUMENT_EIO in urgent cases only"},
      {"CroatiaAcceptsEnglishInEmergencies",
       kEio,
       "NL",
       "HR",
       "en",
       kEmergency,
       "",
       false,
       false,
       "",
       "HR-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "in urgent cases only"},
      {"CroatiaNeedsCroatianWhenNotUrgent",
       kEio,
       "NL",
       "HR",
       "en",
       kNormal,
       "",
       false,
       true,
       "hr",
       "HR-PROSECUTOR",
       kDirect,
       {"DECLARATION", "URGENT_ONLY_NOT_URGENT", "TRANSLATION_REQUIRED", "COMPETENT_AUTHORITY",
        "CHANNEL"},
       "HR accepts en in urgent cases only, and this request is not urgent"},
      {"GermanyRefusesEnglishEvenWhenUrgent",
       kEio,
       "NL",
       "DE",
       "en",
       kUrgent,
       "",
       false,
       true,
       "de",
       "DE-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_NOT_ACCEPTED", "TRANSLATION_REQUIRED",
        "COMPETENT_AUTHORITY", "CHANNEL"},
       "DE does not accept en for INSTRUMENT_EIO (accepts de)"},
      {"GermanyAcceptsGerman",
       kEio,
       "AT",
       "DE",
       "de",
       kNormal,
       "",
       false,
       false,
       "",
       "DE-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "Applied the declaration of DE for INSTRUMENT_EIO (confirmed)"},
      {"SloveniaAcceptsEnglish",
       kEio,
       "IT",
       "SI",
       "en",
       kNormal,
       "",
       false,
       false,
       "",
       "SI-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "SI accepts en for INSTRUMENT_EIO always"},
      {"SloveniaFrenchIsTranslatedIntoSlovenian",
       kEio,
       "FR",
       "SI",
       "fr",
       kNormal,
       "",
       false,
       true,
       "sl",
       "SI-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_NOT_ACCEPTED", "TRANSLATION_REQUIRED",
        "COMPETENT_AUTHORITY", "CHANNEL"},
       "into sl"},
      {"AustriaAcceptsFrenchFromLuxembourgOnReciprocity",
       kEio,
       "LU",
       "AT",
       "fr",
       kNormal,
       "",
       false,
       false,
       "",
       "AT-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "on reciprocity with BE, LU"},
      {"AustriaRefusesFrenchFromFranceWithoutReciprocity",
       kEio,
       "FR",
       "AT",
       "fr",
       kUrgent,
       "",
       false,
       true,
       "de",
       "AT-PROSECUTOR",
       kDirect,
       {"DECLARATION", "RECIPROCITY_NOT_GRANTED", "TRANSLATION_REQUIRED", "COMPETENT_AUTHORITY",
        "CHANNEL"},
       "the issuing state FR is not among them"},
      {"AustriaAcceptsDutchFromBelgiumForEaw",
       kEaw,
       "BE",
       "AT",
       "nl",
       kNormal,
       "",
       false,
       false,
       "",
       "AT-EAW-COURT",
       kSis,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "on reciprocity with BE"},
      {"PolandAcceptsEnglishWhenUrgent",
       kEio,
       "SE",
       "PL",
       "en",
       kUrgent,
       "",
       false,
       false,
       "",
       "PL-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "in urgent cases only"},
      {"PolandNeedsPolishWhenNotUrgent",
       kEio,
       "SE",
       "PL",
       "en",
       kNormal,
       "",
       false,
       true,
       "pl",
       "PL-PROSECUTOR",
       kDirect,
       {"DECLARATION", "URGENT_ONLY_NOT_URGENT", "TRANSLATION_REQUIRED", "COMPETENT_AUTHORITY",
        "CHANNEL"},
       "into pl"},
      {"DenmarkDoesNotApplyTheEio",
       kEio,
       "SE",
       "DK",
       "sv",
       kNormal,
       "",
       true,
       false,
       "",
       "",
       kNone,
       {"INSTRUMENT_NOT_APPLIED"},
       "DK does not apply INSTRUMENT_EIO: Not bound by Directive 2014/41/EU"},
      {"IrelandDoesNotApplyTheEio",
       kEio,
       "FR",
       "IE",
       "en",
       kNormal,
       "",
       true,
       false,
       "",
       "",
       kNone,
       {"INSTRUMENT_NOT_APPLIED"},
       "IE does not apply INSTRUMENT_EIO"},
      {"IrelandAcceptsEnglishForEaw",
       kEaw,
       "FR",
       "IE",
       "en",
       kNormal,
       "",
       false,
       false,
       "",
       "IE-EAW-COURT",
       kSis,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "IE accepts en for INSTRUMENT_EAW always"},
      {"DenmarkMlaGoesThroughItsCentralAuthority",
       kMla,
       "DE",
       "DK",
       "de",
       kNormal,
       "",
       false,
       true,
       "da",
       "DK-PROSECUTOR",
       kCentral,
       {"DECLARATION", "SOURCE_LANGUAGE_NOT_ACCEPTED", "TRANSLATION_REQUIRED",
        "COMPETENT_AUTHORITY", "CENTRAL_AUTHORITY", "CHANNEL"},
       "Passes through the central authority DK-MOJ"},
      {"UnknownStateIsUnroutable",
       kEio,
       "FR",
       "US",
       "fr",
       kNormal,
       "",
       true,
       false,
       "",
       "",
       kNone,
       {"UNKNOWN_STATE"},
       "The registry holds no declaration of US"},
      {"EawToANonMemberStateIsExplained",
       kEaw,
       "FR",
       "GB",
       "en",
       kNormal,
       "",
       true,
       false,
       "",
       "",
       kNone,
       {"NOT_BOUND"},
       "GB does not apply INSTRUMENT_EAW: GB is not an EU member state"},
      {"FreezingOrderFranceToSpainGoesToTheAssetAuthorityInSpanish",
       common::v1::INSTRUMENT_FREEZING_ORDER,
       "FR",
       "ES",
       "fr",
       kUrgent,
       "",
       false,
       true,
       "es",
       "ES-ASSET-AUTHORITY",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_NOT_ACCEPTED", "TRANSLATION_REQUIRED",
        "COMPETENT_AUTHORITY", "CHANNEL"},
       "Translate from fr into es"},
      {"FreezingOrderToIrelandIsNotBound",
       common::v1::INSTRUMENT_FREEZING_ORDER,
       "FR",
       "IE",
       "fr",
       kUrgent,
       "",
       true,
       false,
       "",
       "",
       kNone,
       {"NOT_BOUND"},
       "IE does not apply INSTRUMENT_FREEZING_ORDER: Not bound by Regulation (EU) 2018/1805"},
      {"ProvisionalArrestFranceToSwitzerlandGoesByInterpolInFrench",
       common::v1::INSTRUMENT_PROVISIONAL_ARREST,
       "FR",
       "CH",
       "fr",
       kUrgent,
       "",
       false,
       false,
       "",
       "CH-EXTRADITION-COURT",
       common::v1::CHANNEL_INTERPOL,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CENTRAL_AUTHORITY",
        "CHANNEL"},
       "CH accepts fr for INSTRUMENT_PROVISIONAL_ARREST always"},
      {"ProvisionalArrestBetweenMemberStatesPointsToTheEaw",
       common::v1::INSTRUMENT_PROVISIONAL_ARREST,
       "FR",
       "DE",
       "fr",
       kUrgent,
       "",
       true,
       false,
       "",
       "",
       kNone,
       {"REPLACED_BY_EU_INSTRUMENT"},
       "European Arrest Warrant (FD 2002/584/JHA Art 31) replaces"},
      {"ExtraditionFranceToSwitzerlandGoesThroughDiplomaticChannels",
       common::v1::INSTRUMENT_EXTRADITION,
       "FR",
       "CH",
       "fr",
       kNormal,
       "",
       false,
       false,
       "",
       "CH-EXTRADITION-COURT",
       common::v1::CHANNEL_DIPLOMATIC,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CENTRAL_AUTHORITY",
        "CHANNEL"},
       "Passes through the central authority CH-MOJ"},
      {"SpainCanaryIslandsHaveTheirOwnAuthority",
       kEio,
       "PT",
       "ES",
       "es",
       kNormal,
       "ES-CN",
       false,
       false,
       "",
       "ES-CN-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY_FOR_REGION", "CHANNEL"},
       "(covers ES-CN), time zone Atlantic/Canary"},
      {"SpainMainlandUsesTheNationalAuthority",
       kEio,
       "PT",
       "ES",
       "es",
       kNormal,
       "",
       false,
       false,
       "",
       "ES-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "(whole state), time zone Europe/Madrid"},
      {"SwitzerlandRoutesByCanton",
       kMla,
       "FR",
       "CH",
       "fr",
       kNormal,
       "CH-GE",
       false,
       false,
       "",
       "CH-GE-PROSECUTOR",
       kCentral,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY_FOR_REGION",
        "CENTRAL_AUTHORITY", "CHANNEL"},
       "Competent: CH-GE-PROSECUTOR (covers CH-GE)"},
      {"SwitzerlandWithoutCantonGoesToTheFederalOfficeOfJustice",
       kMla,
       "FR",
       "CH",
       "fr",
       kNormal,
       "",
       false,
       false,
       "",
       "CH-FOJ",
       kCentral,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CENTRAL_AUTHORITY",
        "CHANNEL"},
       "Competent: CH-FOJ (whole state)"},
      {"MlaBetweenMemberStatesPointsToTheEio",
       kMla,
       "FR",
       "ES",
       "fr",
       kNormal,
       "ES-XX",
       true,
       false,
       "",
       "",
       kNone,
       {"REPLACED_BY_EU_INSTRUMENT"},
       "the EIO (Directive 2014/41/EU Art 34) replaces mutual legal assistance"},
      {"PortugalAcceptsEuropeanPortuguese",
       kEio,
       "ES",
       "PT",
       "pt-PT",
       kNormal,
       "",
       false,
       false,
       "",
       "PT-PROSECUTOR",
       kDirect,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "PT accepts pt-PT"},
      {"CzechiaAcceptsSlovakFromSlovakiaForEaw",
       kEaw,
       "SK",
       "CZ",
       "sk",
       kNormal,
       "",
       false,
       false,
       "",
       "CZ-EAW-COURT",
       kSis,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CHANNEL"},
       "on reciprocity with SK"},
      {"CzechiaNeedsCzechForSlovakFromPoland",
       kEaw,
       "PL",
       "CZ",
       "sk",
       kNormal,
       "",
       false,
       true,
       "cs",
       "CZ-EAW-COURT",
       kSis,
       {"DECLARATION", "RECIPROCITY_NOT_GRANTED", "TRANSLATION_REQUIRED", "COMPETENT_AUTHORITY",
        "CHANNEL"},
       "into cs"},
      {"NorwayAcceptsBokmal",
       kMla,
       "SE",
       "NO",
       "nb",
       kNormal,
       "",
       false,
       false,
       "",
       "NO-PROSECUTOR",
       kCentral,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "COMPETENT_AUTHORITY", "CENTRAL_AUTHORITY",
        "CHANNEL"},
       "(unconfirmed: check the EJN)"},
  };
  return *cases;
}

class RoutingTableTest : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadRegistryDirectory(ROGATORY_ROUTING_DATA_DIR);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    registry_ = new std::shared_ptr<const Registry>(*loaded);
  }
  static std::shared_ptr<const Registry>* registry_;
};
std::shared_ptr<const Registry>* RoutingTableTest::registry_ = nullptr;

TEST_P(RoutingTableTest, DecidesLanguageAuthorityChannelAndExplains) {
  const Case& c = GetParam();
  v1::RoutingFacts f;
  f.set_instrument(c.instrument);
  f.set_issuing_state(c.issuing_state);
  f.set_requested_state(c.requested_state);
  f.set_source_language(c.source_language);
  f.set_urgency(c.urgency);
  f.set_region(c.region);
  const absl::Time now = absl::FromUnixSeconds(1767225600);
  v1::RoutingDecision d = DecideRouting(f, **registry_, now);

  EXPECT_EQ(d.unroutable(), c.unroutable);
  EXPECT_EQ(d.translation_required(), c.translation);
  EXPECT_EQ(d.target_language(), c.target);
  EXPECT_EQ(d.competent_authority().authority_id(), c.authority);
  EXPECT_EQ(d.channel(), c.channel);
  std::vector<std::string> codes, details;
  for (const auto& r : d.reasons()) {
    codes.push_back(r.code());
    details.push_back(r.detail());
  }
  EXPECT_EQ(codes, c.codes);
  EXPECT_THAT(absl::StrJoin(details, " | "), HasSubstr(c.explanation));
  EXPECT_EQ(d.registry_version(), (*registry_)->version());
  // Deterministic: the same inputs give the same decision, byte for byte.
  EXPECT_EQ(DecideRouting(f, **registry_, now).SerializeAsString(), d.SerializeAsString());
  // Every reason after the lookup names the registry entry's source.
  for (const auto& r : d.reasons()) {
    if (r.code() != "UNKNOWN_STATE" && r.code() != "NO_DECLARATION") {
      EXPECT_FALSE(r.source().empty()) << r.code();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceRegistry, RoutingTableTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// --- Production orders, regions and gaps (issue 22, item 2). ---

std::shared_ptr<const Registry> ReferenceRegistry() {
  static const auto* registry = [] {
    auto loaded = LoadRegistryDirectory(ROGATORY_ROUTING_DATA_DIR);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return new std::shared_ptr<const Registry>(loaded.ok() ? *loaded : nullptr);
  }();
  return *registry;
}

const absl::Time kNow = absl::FromUnixSeconds(1767225600);

std::string Codes(const v1::RoutingDecision& d) {
  std::vector<std::string> codes;
  for (const auto& r : d.reasons()) codes.push_back(r.code());
  return absl::StrJoin(codes, ",");
}

v1::RoutingFacts ProductionOrderFacts() {
  v1::RoutingFacts f;
  f.set_instrument(common::v1::INSTRUMENT_PRODUCTION_ORDER);
  f.set_issuing_state("FR");
  f.set_requested_state("IE");
  f.set_source_language("fr");
  f.set_urgency(kNormal);
  f.mutable_service_provider()->set_authority_id("IE-EXAMPLE-MAIL-PROVIDER");
  f.mutable_service_provider()->set_state("IE");
  f.set_enforcing_state("IE");
  f.set_traffic_or_content_data(true);
  return f;
}

TEST(ProductionOrderRoutingTest, FranceToIrelandGoesToTheProvidersAddresseeAndNotifiesIreland) {
  auto registry = ReferenceRegistry();
  ASSERT_NE(registry, nullptr);
  v1::RoutingDecision d = DecideRouting(ProductionOrderFacts(), *registry, kNow);
  ASSERT_FALSE(d.unroutable()) << Codes(d);
  // The addressee is the executing party, not a state authority.
  EXPECT_EQ(d.competent_authority().authority_id(), "IE-EXAMPLE-MAIL-PROVIDER");
  EXPECT_EQ(d.competent_authority().state(), "IE");
  EXPECT_EQ(d.competent_authority().region(), "IE-D");
  EXPECT_EQ(d.competent_authority_time_zone(), "Europe/Dublin");
  EXPECT_EQ(d.channel(), common::v1::CHANNEL_SERVICE_PROVIDER);
  EXPECT_TRUE(d.translation_required());
  EXPECT_EQ(d.target_language(), "en");
  // The enforcing state's authority is told (Art 8).
  EXPECT_EQ(d.notified_authority().authority_id(), "IE-EPOC-ENFORCING-AUTHORITY");
  EXPECT_EQ(d.notified_authority().state(), "IE");
  EXPECT_EQ(Codes(d),
            "SERVICE_PROVIDER_ADDRESSEE,SOURCE_LANGUAGE_NOT_ACCEPTED,TRANSLATION_REQUIRED,"
            "ENFORCING_AUTHORITY_NOTIFIED,CHANNEL");
  for (const auto& r : d.reasons()) EXPECT_FALSE(r.source().empty()) << r.code();
}

TEST(ProductionOrderRoutingTest, SubscriberDataOnlyNotifiesNoOne) {
  v1::RoutingFacts f = ProductionOrderFacts();
  f.clear_enforcing_state();
  f.set_traffic_or_content_data(false);
  v1::RoutingDecision d = DecideRouting(f, *ReferenceRegistry(), kNow);
  ASSERT_FALSE(d.unroutable()) << Codes(d);
  EXPECT_FALSE(d.has_notified_authority());
  EXPECT_THAT(Codes(d), HasSubstr("NO_ENFORCING_NOTIFICATION"));
}

TEST(ProductionOrderRoutingTest, TheEnforcingStateIsWhereTheAddresseeIs) {
  v1::RoutingFacts f = ProductionOrderFacts();
  f.mutable_service_provider()->set_authority_id("DE-EXAMPLE-CLOUD-LEGAL-REP");
  f.set_requested_state("DE");
  v1::RoutingDecision d = DecideRouting(f, *ReferenceRegistry(), kNow);
  ASSERT_FALSE(d.unroutable()) << Codes(d);
  EXPECT_EQ(d.competent_authority().authority_id(), "DE-EXAMPLE-CLOUD-LEGAL-REP");
  EXPECT_EQ(d.notified_authority().authority_id(), "DE-EPOC-ENFORCING-AUTHORITY");
  EXPECT_THAT(Codes(d), HasSubstr("ENFORCING_STATE_OF_ADDRESSEE"));
}

TEST(ProductionOrderRoutingTest, MissingOrUnknownProviderIsExplained) {
  v1::RoutingFacts f = ProductionOrderFacts();
  f.clear_service_provider();
  v1::RoutingDecision d = DecideRouting(f, *ReferenceRegistry(), kNow);
  EXPECT_TRUE(d.unroutable());
  EXPECT_EQ(Codes(d), "SERVICE_PROVIDER_REQUIRED");
  f.mutable_service_provider()->set_authority_id("XX-NOBODY");
  d = DecideRouting(f, *ReferenceRegistry(), kNow);
  EXPECT_TRUE(d.unroutable());
  EXPECT_EQ(Codes(d), "UNKNOWN_SERVICE_PROVIDER");
  EXPECT_THAT(d.reasons(0).detail(), HasSubstr("XX-NOBODY"));
}

// Every (state, instrument) the registry does not route answers with an explanation naming
// why (not bound, replaced by an EU instrument, ...) and its source, never a bare
// NO_DECLARATION.
TEST(RegistryCoverageTest, EveryStateAndInstrumentRoutesOrExplainsTheGap) {
  auto registry = ReferenceRegistry();
  ASSERT_NE(registry, nullptr);
  std::set<std::string> states;
  for (const auto& d : registry->declarations()) states.insert(d.state());
  ASSERT_GE(states.size(), 33u);
  int routed = 0, explained = 0;
  for (const auto& state : states) {
    for (int i = common::v1::Instrument_MIN; i <= common::v1::Instrument_MAX; ++i) {
      if (!common::v1::Instrument_IsValid(i) || i == common::v1::INSTRUMENT_UNSPECIFIED) continue;
      const auto instrument = static_cast<Instrument>(i);
      if (instrument == common::v1::INSTRUMENT_PRODUCTION_ORDER) continue;  // to providers
      SCOPED_TRACE(absl::StrCat(state, " ", common::v1::Instrument_Name(instrument)));
      v1::RoutingFacts f;
      f.set_instrument(instrument);
      f.set_issuing_state(state == "FR" ? "BE" : "FR");
      f.set_requested_state(state);
      f.set_source_language("fr");
      f.set_urgency(kNormal);
      v1::RoutingDecision d = DecideRouting(f, *registry, kNow);
      if (!d.unroutable()) {
        ++routed;
        EXPECT_FALSE(d.competent_authority().authority_id().empty());
        continue;
      }
      ++explained;
      ASSERT_EQ(d.reasons_size(), 1);
      const auto& r = d.reasons(0);
      EXPECT_NE(r.code(), "NO_DECLARATION");
      EXPECT_NE(r.code(), "UNKNOWN_STATE");
      EXPECT_FALSE(r.source().empty());
      EXPECT_THAT(r.detail(), HasSubstr(state));
    }
    // And the enforcing side of a production order: declared, or explained.
    const v1::Declaration* epo = registry->Find(state, common::v1::INSTRUMENT_PRODUCTION_ORDER);
    ASSERT_NE(epo, nullptr) << state;
    EXPECT_FALSE(epo->source().empty());
  }
  EXPECT_GE(routed, 98);  // 80 for EU states, 18 for the others, today
  EXPECT_GT(explained, 0);
}

// Deadline tracking picks regional holidays by the executing authority's ISO 3166-2 region:
// every decision names it where the registry knows it.
TEST(RegionTest, TheCompetentAuthorityCarriesItsRegionWhereTheRegistryKnowsIt) {
  auto registry = ReferenceRegistry();
  int regional = 0;
  for (const auto& decl : registry->declarations()) {
    if (!decl.applies()) continue;
    for (const auto& c : decl.competent_authorities()) {
      if (c.regions().empty()) continue;
      v1::RoutingFacts f;
      f.set_instrument(decl.instrument());
      f.set_issuing_state(decl.state() == "FR" ? "BE" : "FR");
      f.set_requested_state(decl.state());
      f.set_source_language(decl.accepted_languages(0).language());
      f.set_urgency(kNormal);
      f.set_region(c.regions(0));
      v1::RoutingDecision d = DecideRouting(f, *registry, kNow);
      ASSERT_FALSE(d.unroutable()) << Codes(d);
      EXPECT_EQ(d.competent_authority().region(), c.regions(0))
          << decl.state() << " " << decl.instrument();
      EXPECT_EQ(d.competent_authority_time_zone(), c.time_zone());
      ++regional;
    }
  }
  EXPECT_GT(regional, 10);

  // An authority that covers one region but does not name it on its reference.
  std::vector<v1::Declaration> decls(1);
  v1::Declaration& de = decls[0];
  de.set_state("DE");
  de.set_instrument(kEio);
  de.set_applies(true);
  de.set_source("test");
  de.set_channel(kDirect);
  auto* l = de.add_accepted_languages();
  l->set_language("de");
  l->set_condition(v1::LANGUAGE_CONDITION_ALWAYS);
  auto* by = de.add_competent_authorities();
  by->mutable_authority()->set_authority_id("DE-BY-GSTA-MUENCHEN");
  by->mutable_authority()->set_state("DE");
  by->add_regions("DE-BY");
  by->set_time_zone("Europe/Berlin");
  Registry small("test", decls);
  v1::RoutingFacts f;
  f.set_instrument(kEio);
  f.set_issuing_state("FR");
  f.set_requested_state("DE");
  f.set_source_language("de");
  f.set_region("DE-BY");
  v1::RoutingDecision d = DecideRouting(f, small, kNow);
  ASSERT_FALSE(d.unroutable()) << Codes(d);
  EXPECT_EQ(d.competent_authority().region(), "DE-BY");
  EXPECT_EQ(d.competent_authority_time_zone(), "Europe/Berlin");
}

// A whole-state authority ("the prosecutor's office of the place of execution") acts in the
// region where the request is executed: the decision names that region, so that deadline
// tracking counts with the Land's holidays; a region of another state is ignored.
TEST(RegionTest, AWholeStateAuthorityActsInTheRegionOfExecution) {
  auto registry = ReferenceRegistry();
  v1::RoutingFacts f;
  f.set_instrument(kEio);
  f.set_issuing_state("FR");
  f.set_requested_state("DE");
  f.set_source_language("de");
  f.set_urgency(kNormal);
  f.set_region("DE-BY");
  v1::RoutingDecision d = DecideRouting(f, *registry, kNow);
  ASSERT_FALSE(d.unroutable()) << Codes(d);
  EXPECT_EQ(d.competent_authority().authority_id(), "DE-PROSECUTOR");
  EXPECT_EQ(d.competent_authority().region(), "DE-BY");

  f.set_region("AT-9");
  d = DecideRouting(f, *registry, kNow);
  ASSERT_FALSE(d.unroutable()) << Codes(d);
  EXPECT_EQ(d.competent_authority().region(), "");

  f.clear_region();
  d = DecideRouting(f, *registry, kNow);
  ASSERT_FALSE(d.unroutable()) << Codes(d);
  EXPECT_EQ(d.competent_authority().region(), "");
}

// Every shipped sample (samples/requests/*.json) goes the way a submitted request goes:
// intake's facts, routing's facts from the event, a decision on the real data files.
TEST(ShippedSamplesTest, EverySampleRoutes) {
  auto registry = ReferenceRegistry();
  ASSERT_NE(registry, nullptr);
  int samples = 0;
  for (const auto& entry : std::filesystem::directory_iterator(ROGATORY_SAMPLES_DIR)) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().filename().string());
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    intake::v1::Request request;
    request.set_id("rq-3-01hx0000000000000000000000");
    auto parsed =
        google::protobuf::util::JsonStringToMessage(text.str(), request.mutable_content());
    ASSERT_TRUE(parsed.ok()) << parsed.message();
    common::v1::Event event;
    event.set_instrument(request.content().instrument());
    *event.mutable_request() = intake::FactsOf(request);
    v1::RoutingDecision d = DecideRouting(FactsFromEvent(event), *registry, kNow);
    EXPECT_FALSE(d.unroutable()) << Codes(d) << ": " << d.reasons(d.reasons_size() - 1).detail();
    EXPECT_FALSE(d.competent_authority().authority_id().empty());
    EXPECT_NE(d.channel(), common::v1::CHANNEL_UNSPECIFIED);
    if (request.content().instrument() == common::v1::INSTRUMENT_PRODUCTION_ORDER) {
      EXPECT_EQ(d.competent_authority().authority_id(),
                request.content().production_order().service_provider().authority_id());
      EXPECT_FALSE(d.notified_authority().authority_id().empty());
    }
    ++samples;
  }
  EXPECT_GE(samples, 7);
}

TEST(RoutingTableSizeTest, HasAtLeastTwentyCases) { EXPECT_GE(Cases().size(), 20u); }

TEST(EventFactsTest, IntakesRequestFactsBecomeRoutingFacts) {
  common::v1::Event e;
  e.set_instrument(kEaw);
  e.mutable_request()->mutable_issuing_authority()->set_state("BE");
  e.mutable_request()->set_requested_state("AT");
  e.mutable_request()->set_source_language("nl");
  e.mutable_request()->set_urgency(kUrgent);
  e.mutable_request()->mutable_executing_authority()->set_region("AT-9");
  v1::RoutingFacts f = FactsFromEvent(e);
  EXPECT_EQ(f.instrument(), kEaw);
  EXPECT_EQ(f.issuing_state(), "BE");
  EXPECT_EQ(f.requested_state(), "AT");
  EXPECT_EQ(f.source_language(), "nl");
  EXPECT_EQ(f.urgency(), kUrgent);
  EXPECT_EQ(f.region(), "AT-9");
}

TEST(EventFactsTest, ProductionOrderFactsNameTheProviderAndEnforcingState) {
  intake::v1::Request r;
  auto* c = r.mutable_content();
  c->set_instrument(common::v1::INSTRUMENT_PRODUCTION_ORDER);
  c->mutable_issuing_authority()->set_state("FR");
  c->set_requested_state("IE");
  c->mutable_production_order()->mutable_service_provider()->set_authority_id("IE-X");
  c->mutable_production_order()->set_enforcing_state("IE");
  c->mutable_production_order()->add_data_categories(intake::v1::DATA_CATEGORY_SUBSCRIBER);
  common::v1::Event e;
  e.set_instrument(c->instrument());
  *e.mutable_request() = intake::FactsOf(r);
  v1::RoutingFacts f = FactsFromEvent(e);
  EXPECT_EQ(f.service_provider().authority_id(), "IE-X");
  EXPECT_EQ(f.enforcing_state(), "IE");
  EXPECT_FALSE(f.traffic_or_content_data());
  c->mutable_production_order()->add_data_categories(intake::v1::DATA_CATEGORY_CONTENT);
  *e.mutable_request() = intake::FactsOf(r);
  EXPECT_TRUE(FactsFromEvent(e).traffic_or_content_data());
}

TEST(EventFactsTest, StatusAskedOfIntakeFollowsTheDecision) {
  v1::RoutingDecision d;
  EXPECT_EQ(StatusForDecision(d), common::v1::REQUEST_STATUS_FORWARDED);
  d.set_translation_required(true);
  EXPECT_EQ(StatusForDecision(d), common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  d.set_unroutable(true);
  EXPECT_EQ(StatusForDecision(d), common::v1::REQUEST_STATUS_UNSPECIFIED);
  // A production order goes to a provider: SENT_TO_PROVIDER, not FORWARDED.
  v1::RoutingDecision po;
  po.set_channel(common::v1::CHANNEL_SERVICE_PROVIDER);
  EXPECT_EQ(StatusForDecision(po), common::v1::REQUEST_STATUS_SENT_TO_PROVIDER);
  po.set_translation_required(true);
  EXPECT_EQ(StatusForDecision(po), common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  EXPECT_EQ(ForwardStatusFor(po), common::v1::REQUEST_STATUS_SENT_TO_PROVIDER);
}

}  // namespace
}  // namespace rogatory::routing
