#include "registry.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rogatory/common/reload.h"

namespace rogatory::routing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr char kDataDir[] = ROGATORY_ROUTING_DATA_DIR;

const char* kEu27[] = {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES",
                       "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU",
                       "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"};

std::string ValidFile(const std::string& state, const std::string& language) {
  return R"({"version": "t", "declarations": [{"state": ")" + state +
         R"(", "instrument": "INSTRUMENT_EIO", "applies": true, "source": "test",
  "acceptedLanguages": [{"language": ")" +
         language +
         R"(", "condition": "LANGUAGE_CONDITION_ALWAYS"}],
  "channel": "CHANNEL_DIRECT_JUDICIAL",
  "competentAuthorities": [{"authority": {"authorityId": "X-1", "state": ")" +
         state + R"("}, "timeZone": "Europe/Berlin"}]}]})";
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/rogatory-registry-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ + "/" + name) << text;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ReferenceRegistryTest, LoadsAndCoversEveryEuStateAndFiveOthers) {
  auto registry = LoadRegistryDirectory(kDataDir);
  ASSERT_TRUE(registry.ok()) << registry.status();
  for (const char* state : kEu27) {
    EXPECT_NE((*registry)->Find(state, common::v1::INSTRUMENT_EIO), nullptr) << state;
    EXPECT_NE((*registry)->Find(state, common::v1::INSTRUMENT_EAW), nullptr) << state;
  }
  std::set<std::string> others;
  for (const auto& d : (*registry)->declarations()) {
    if (std::find(std::begin(kEu27), std::end(kEu27), d.state()) == std::end(kEu27)) {
      others.insert(d.state());
    }
    EXPECT_FALSE(d.source().empty()) << d.state();
  }
  EXPECT_GE(others.size(), 5u);
  EXPECT_FALSE((*registry)->Find("DK", common::v1::INSTRUMENT_EIO)->applies());
  EXPECT_FALSE((*registry)->Find("IE", common::v1::INSTRUMENT_EIO)->applies());
  EXPECT_TRUE((*registry)->Find("DE", common::v1::INSTRUMENT_EIO)->confirmed());
  EXPECT_FALSE((*registry)->Find("BE", common::v1::INSTRUMENT_EIO)->confirmed());
}

TEST(RegistryFileTest, BadLanguageTagIsNamedWithItsPath) {
  auto r = ParseRegistryFile("x.json", ValidFile("DE", "de_DE"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("x.json: declarations[0].accepted_languages[0].language: 'de_DE' is "
                        "not a BCP 47 tag"));
}

TEST(RegistryFileTest, SyntaxErrorNamesTheLine) {
  auto r = ParseRegistryFile("x.json", "{\n\"declarations\": [\n{\"state\": \"DE\"}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("x.json: line 4: unexpected end of file"));
}

TEST(RegistryFileTest, UnknownEnumValueIsNamedWithItsPath) {
  auto r =
      ParseRegistryFile("x.json", R"({"declarations": [{"state": "DE", "instrument": "EIO"}]})");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("declarations[0].instrument"));
}

TEST(RegistryFileTest, EveryProblemIsListed) {
  auto r = ParseRegistryFile("x.json", R"({"declarations": [
    {"state": "EL", "instrument": "INSTRUMENT_EIO", "applies": true, "source": "s",
     "acceptedLanguages": [{"language": "en", "condition": "LANGUAGE_CONDITION_URGENT_ONLY"},
                           {"language": "fr", "condition": "LANGUAGE_CONDITION_RECIPROCITY"}],
     "competentAuthorities": [{"authority": {"authorityId": "A", "state": "GR"},
                               "timeZone": "Mars/Olympus"}]}]})");
  ASSERT_FALSE(r.ok());
  const std::string m(r.status().message());
  EXPECT_THAT(m, HasSubstr("declarations[0].state: 'EL' is not an ISO 3166-1 alpha-2 code"));
  EXPECT_THAT(m, HasSubstr("accepted_languages[1].reciprocity_states: must name the states"));
  EXPECT_THAT(m, HasSubstr("accepted_languages: must hold a language accepted always"));
  EXPECT_THAT(m, HasSubstr("declarations[0].channel: is required"));
  EXPECT_THAT(m, HasSubstr("competent_authorities[0].time_zone: 'Mars/Olympus'"));
}

TEST(RegistryDirectoryTest, SameDeclarationInTwoFilesIsRefused) {
  TempDir dir;
  dir.Write("a.json", ValidFile("DE", "de"));
  dir.Write("b.json", ValidFile("DE", "de"));
  auto r = LoadRegistryDirectory(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("b.json: declares (DE, INSTRUMENT_EIO) again; a.json declares it"));
}

TEST(RegistryDirectoryTest, EmptyFolderIsRefused) {
  TempDir dir;
  dir.Write("notes.txt", "not a registry");
  dir.Write(".hidden.json", "{broken");
  auto r = LoadRegistryDirectory(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("holds no declaration"));
}

TEST(RegistryDirectoryTest, VersionChangesWithContent) {
  TempDir dir;
  dir.Write("a.json", ValidFile("DE", "de"));
  auto first = LoadRegistryDirectory(dir.path());
  ASSERT_TRUE(first.ok()) << first.status();
  dir.Write("a.json", ValidFile("DE", "en"));
  auto second = LoadRegistryDirectory(dir.path());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE((*first)->version(), (*second)->version());
  EXPECT_THAT((*first)->version(), ::testing::StartsWith("t@"));
}

// The reload path the service wires: a ReloadHooks entry over the holder. A broken file
// leaves the running registry in place; a fixed one replaces it.
TEST(RegistryReloadTest, BrokenFileKeepsThePreviousRegistryAndAFixedOneReplacesIt) {
  TempDir dir;
  dir.Write("a.json", ValidFile("DE", "de"));
  auto initial = LoadRegistryDirectory(dir.path());
  ASSERT_TRUE(initial.ok());
  RegistryHolder holder(*initial);
  absl::Status last;
  common::ReloadHooks hooks;
  hooks.Add("declarations registry", [&] { return last = holder.Reload(dir.path()); });

  dir.Write("a.json", ValidFile("DE", "not a tag"));
  hooks.RunAll();
  EXPECT_THAT(last.message(), HasSubstr("'not a tag' is not a BCP 47 tag"));
  EXPECT_EQ(holder.Get()->version(), (*initial)->version());
  EXPECT_EQ(holder.Get()->Find("DE", common::v1::INSTRUMENT_EIO)->accepted_languages(0).language(),
            "de");

  dir.Write("a.json", ValidFile("DE", "en"));
  hooks.RunAll();
  EXPECT_TRUE(last.ok()) << last;
  EXPECT_NE(holder.Get()->version(), (*initial)->version());
  EXPECT_EQ(holder.Get()->Find("DE", common::v1::INSTRUMENT_EIO)->accepted_languages(0).language(),
            "en");
}

std::string ProviderFile(const std::string& id, const std::string& region,
                         const std::string& zone) {
  return R"({"version": "p", "serviceProviders": [{"providerId": "P-)" + id +
         R"(", "providerName": "P", "addressee": {"authorityId": ")" + id +
         R"(", "state": "IE", "region": ")" + region +
         R"("}, "kind": "ADDRESSEE_KIND_DESIGNATED_ESTABLISHMENT", "acceptedLanguages":
  [{"language": "en", "condition": "LANGUAGE_CONDITION_ALWAYS"}], "timeZone": ")" +
         zone + R"(", "source": "test"}]})";
}

TEST(ReferenceRegistryTest, ServiceProvidersAreLoadedFromTheirOwnFile) {
  auto registry = LoadRegistryDirectory(kDataDir);
  ASSERT_TRUE(registry.ok()) << registry.status();
  const auto* p = (*registry)->FindServiceProvider("IE-EXAMPLE-MAIL-PROVIDER");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->provider_id(), "EXAMPLE-MAIL");
  EXPECT_EQ((*registry)->FindServiceProvider("EXAMPLE-MAIL"), p);
  EXPECT_EQ((*registry)->FindServiceProvider("NOBODY"), nullptr);
  // Every instrument the API accepts has entries: declared, or explained as a gap.
  for (int i = common::v1::Instrument_MIN + 1; i <= common::v1::Instrument_MAX; ++i) {
    if (!common::v1::Instrument_IsValid(i)) continue;
    int applies = 0;
    for (const auto& d : (*registry)->declarations()) {
      if (d.instrument() == i && d.applies()) ++applies;
    }
    EXPECT_GT(applies, 0) << common::v1::Instrument_Name(static_cast<common::v1::Instrument>(i));
  }
  // Denmark and Ireland do not take part in Regulation 2018/1805.
  for (const char* state : {"DK", "IE"}) {
    const auto* d = (*registry)->Find(state, common::v1::INSTRUMENT_FREEZING_ORDER);
    ASSERT_NE(d, nullptr) << state;
    EXPECT_FALSE(d->applies());
    EXPECT_EQ(d->not_applied_code(), "NOT_BOUND");
  }
}

TEST(RegistryFileTest, ServiceProviderProblemsAreNamedWithTheirPath) {
  auto bad = ParseRegistryFile("p.json", ProviderFile("IE-X", "DE-BY", "Mars/Olympus"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("service_providers[0].addressee.region: 'DE-BY' is not an ISO 3166-2"));
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("service_providers[0].time_zone: 'Mars/Olympus'"));
  EXPECT_TRUE(ParseRegistryFile("p.json", ProviderFile("IE-X", "IE-D", "Europe/Dublin")).ok());
  auto code = ParseRegistryFile(
      "g.json",
      R"({"declarations": [{"state": "DE", "instrument": "INSTRUMENT_MLA", "applies": false,
          "notAppliedCode": "not bound", "source": "s"}]})");
  ASSERT_FALSE(code.ok());
  EXPECT_THAT(std::string(code.status().message()),
              HasSubstr("declarations[0].not_applied_code: 'not bound' must be upper case"));
}

TEST(RegistryDirectoryTest, SameServiceProviderInTwoFilesIsRefused) {
  TempDir dir;
  dir.Write("a.json", ValidFile("DE", "de"));
  dir.Write("p1.json", ProviderFile("IE-X", "IE-D", "Europe/Dublin"));
  dir.Write("p2.json", ProviderFile("IE-X", "", "Europe/Dublin"));
  auto loaded = LoadRegistryDirectory(dir.path());
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("p2.json: service provider 'IE-X' again; p1.json names it already"));
}

TEST(LanguageMatchesTest, RegionalFormsAndNorwegian) {
  EXPECT_TRUE(LanguageMatches("pt", "pt-PT"));
  EXPECT_TRUE(LanguageMatches("PT", "pt"));
  EXPECT_FALSE(LanguageMatches("pt-PT", "pt-BR"));
  EXPECT_TRUE(LanguageMatches("no", "nb"));
  EXPECT_FALSE(LanguageMatches("sl", "sk"));
}

}  // namespace
}  // namespace rogatory::routing
