// Table-driven routing decisions over the reference registry (services/routing/data): each
// case asserts language, authority, channel and the explanation.
#include "router.h"

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
       "DK does not apply INSTRUMENT_EIO; a person must route"},
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
      {"UndeclaredInstrumentIsUnroutable",
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
       {"NO_DECLARATION"},
       "GB declared nothing for INSTRUMENT_EAW"},
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
      {"SwitzerlandWithoutCantonHasNoCompetentAuthority",
       kMla,
       "FR",
       "CH",
       "fr",
       kNormal,
       "",
       true,
       false,
       "",
       "",
       kNone,
       {"DECLARATION", "SOURCE_LANGUAGE_ACCEPTED", "NO_COMPETENT_AUTHORITY"},
       "covers the request without a region; a person must route this request"},
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

TEST(EventFactsTest, StatusAskedOfIntakeFollowsTheDecision) {
  v1::RoutingDecision d;
  EXPECT_EQ(StatusForDecision(d), common::v1::REQUEST_STATUS_FORWARDED);
  d.set_translation_required(true);
  EXPECT_EQ(StatusForDecision(d), common::v1::REQUEST_STATUS_TRANSLATION_PENDING);
  d.set_unroutable(true);
  EXPECT_EQ(StatusForDecision(d), common::v1::REQUEST_STATUS_UNSPECIFIED);
}

}  // namespace
}  // namespace rogatory::routing
