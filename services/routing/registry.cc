#include "registry.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "rogatory/common/codes.h"
#include "rogatory/common/ids.h"

namespace rogatory::routing {
namespace {

using common::v1::Instrument;

std::string PrimaryLanguage(absl::string_view tag) {
  std::string primary = absl::AsciiStrToLower(tag.substr(0, tag.find('-')));
  if (primary == "nb" || primary == "nn") return "no";
  return primary;
}

// Checks a list of accepted languages (a declaration's or a service provider's).
template <typename Bad>
void CheckLanguages(const google::protobuf::RepeatedPtrField<v1::AcceptedLanguage>& languages,
                    Bad& bad) {
  if (languages.empty()) bad("accepted_languages", "must list at least one");
  bool has_always = false;
  std::set<std::string> seen_languages;
  for (int i = 0; i < languages.size(); ++i) {
    const auto& l = languages.Get(i);
    const std::string p = absl::StrCat("accepted_languages[", i, "]");
    if (!common::IsLanguageTag(l.language())) {
      bad(p + ".language", absl::StrCat("'", l.language(), "' is not a BCP 47 tag"));
    }
    if (!seen_languages
             .insert(absl::StrCat(absl::AsciiStrToLower(l.language()), "/", l.condition()))
             .second) {
      bad(p, absl::StrCat("'", l.language(), "' is listed twice with the same condition"));
    }
    switch (l.condition()) {
      case v1::LANGUAGE_CONDITION_ALWAYS:
        has_always = true;
        [[fallthrough]];
      case v1::LANGUAGE_CONDITION_URGENT_ONLY:
        if (l.reciprocity_states_size() > 0) {
          bad(p + ".reciprocity_states", "is only allowed with LANGUAGE_CONDITION_RECIPROCITY");
        }
        break;
      case v1::LANGUAGE_CONDITION_RECIPROCITY:
        if (l.reciprocity_states_size() == 0) {
          bad(p + ".reciprocity_states", "must name the states granted reciprocity");
        }
        for (int j = 0; j < l.reciprocity_states_size(); ++j) {
          if (!common::IsCountryCode(l.reciprocity_states(j))) {
            bad(absl::StrCat(p, ".reciprocity_states[", j, "]"),
                absl::StrCat("'", l.reciprocity_states(j), "' is not an ISO 3166-1 alpha-2 code"));
          }
        }
        break;
      default:
        bad(p + ".condition", "is required");
    }
  }
  if (!languages.empty() && !has_always) {
    bad("accepted_languages",
        "must hold a language accepted always (LANGUAGE_CONDITION_ALWAYS): it is the "
        "translation target");
  }
}

// Semantic checks of one declaration; adds "<path>: <problem>" lines to `problems`.
void CheckDeclaration(const v1::Declaration& d, const std::string& path,
                      std::vector<std::string>& problems) {
  auto bad = [&](const std::string& field, const std::string& why) {
    problems.push_back(absl::StrCat(path, field.empty() ? "" : ".", field, ": ", why));
  };
  if (!common::IsCountryCode(d.state())) {
    bad("state", absl::StrCat("'", d.state(), "' is not an ISO 3166-1 alpha-2 code"));
  }
  if (d.instrument() == common::v1::INSTRUMENT_UNSPECIFIED) bad("instrument", "is required");
  if (d.source().empty()) bad("source", "is required (where the facts come from)");
  if (!d.not_applied_code().empty()) {
    if (d.applies()) bad("not_applied_code", "is only allowed with applies false");
    for (char c : d.not_applied_code()) {
      if (!absl::ascii_isupper(c) && !absl::ascii_isdigit(c) && c != '_') {
        bad("not_applied_code", absl::StrCat("'", d.not_applied_code(),
                                             "' must be upper case letters, digits and '_'"));
        break;
      }
    }
  }
  if (!d.applies()) {
    if (d.accepted_languages_size() > 0 || d.competent_authorities_size() > 0) {
      bad("applies", "is false, so accepted_languages and competent_authorities must be empty");
    }
    return;
  }
  CheckLanguages(d.accepted_languages(), bad);
  if (d.channel() == common::v1::CHANNEL_UNSPECIFIED) bad("channel", "is required");
  if (d.has_central_authority() && d.central_authority().authority_id().empty()) {
    bad("central_authority.authority_id", "is required");
  }
  if (d.competent_authorities_size() == 0) {
    bad("competent_authorities", "must list at least one");
  }
  for (int i = 0; i < d.competent_authorities_size(); ++i) {
    const auto& c = d.competent_authorities(i);
    const std::string p = absl::StrCat("competent_authorities[", i, "]");
    if (c.authority().authority_id().empty()) bad(p + ".authority.authority_id", "is required");
    if (c.authority().state() != d.state()) {
      bad(p + ".authority.state", absl::StrCat("must be the declaring state '", d.state(), "'"));
    }
    absl::TimeZone tz;
    if (c.time_zone().empty() || !absl::LoadTimeZone(c.time_zone(), &tz)) {
      bad(p + ".time_zone", absl::StrCat("'", c.time_zone(), "' is not an IANA time zone"));
    }
    for (int j = 0; j < c.regions_size(); ++j) {
      if (!absl::StartsWith(c.regions(j), d.state() + "-") ||
          c.regions(j).size() < d.state().size() + 2) {
        bad(absl::StrCat(p, ".regions[", j, "]"),
            absl::StrCat("'", c.regions(j), "' is not an ISO 3166-2 code of ", d.state()));
      }
    }
  }
}

// Semantic checks of one service provider's addressee.
void CheckServiceProvider(const v1::ServiceProviderAddressee& p, const std::string& path,
                          std::vector<std::string>& problems) {
  auto bad = [&](const std::string& field, const std::string& why) {
    problems.push_back(absl::StrCat(path, ".", field, ": ", why));
  };
  if (p.provider_id().empty()) bad("provider_id", "is required");
  const auto& a = p.addressee();
  if (a.authority_id().empty()) bad("addressee.authority_id", "is required");
  if (!common::IsCountryCode(a.state())) {
    bad("addressee.state", absl::StrCat("'", a.state(), "' is not an ISO 3166-1 alpha-2 code"));
  }
  if (!a.region().empty() && (!absl::StartsWith(a.region(), a.state() + "-") ||
                              a.region().size() < a.state().size() + 2)) {
    bad("addressee.region",
        absl::StrCat("'", a.region(), "' is not an ISO 3166-2 code of ", a.state()));
  }
  if (p.kind() == v1::ADDRESSEE_KIND_UNSPECIFIED) bad("kind", "is required");
  if (p.source().empty()) bad("source", "is required (where the facts come from)");
  CheckLanguages(p.accepted_languages(), bad);
  absl::TimeZone tz;
  if (p.time_zone().empty() || !absl::LoadTimeZone(p.time_zone(), &tz)) {
    bad("time_zone", absl::StrCat("'", p.time_zone(), "' is not an IANA time zone"));
  }
}

// protobuf's JSON parser reports problems without positions; for syntax errors, find the
// line ourselves with a small scanner, so the operator is pointed at it.
std::string LocateSyntaxError(absl::string_view text) {
  int line = 1;
  std::vector<char> stack;
  bool in_string = false, escape = false;
  for (char c : text) {
    if (c == '\n') {
      if (in_string) return absl::StrCat("line ", line, ": unterminated string");
      ++line;
      continue;
    }
    if (in_string) {
      if (escape)
        escape = false;
      else if (c == '\\')
        escape = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      stack.push_back(c);
    else if (c == '}' || c == ']') {
      if (stack.empty() || (c == '}' ? '{' : '[') != stack.back()) {
        return absl::StrCat("line ", line, ": unexpected '", std::string(1, c), "'");
      }
      stack.pop_back();
    }
  }
  if (in_string) return absl::StrCat("line ", line, ": unterminated string");
  if (!stack.empty())
    return absl::StrCat("line ", line, ": unexpected end of file (unclosed '",
                        std::string(1, stack.back()), "')");
  return "";
}

}  // namespace

bool LanguageMatches(absl::string_view declared, absl::string_view source) {
  if (absl::EqualsIgnoreCase(declared, source)) return true;
  if (declared.find('-') != absl::string_view::npos) return false;
  return PrimaryLanguage(declared) == PrimaryLanguage(source);
}

Registry::Registry(std::string version, std::vector<v1::Declaration> declarations,
                   std::vector<v1::ServiceProviderAddressee> service_providers)
    : version_(std::move(version)),
      declarations_(std::move(declarations)),
      service_providers_(std::move(service_providers)) {
  std::sort(service_providers_.begin(), service_providers_.end(),
            [](const auto& a, const auto& b) { return a.provider_id() < b.provider_id(); });
  for (size_t i = 0; i < service_providers_.size(); ++i) {
    provider_index_.emplace(service_providers_[i].provider_id(), i);
  }
  // Addressee ids win over provider ids: they are what an order names.
  for (size_t i = 0; i < service_providers_.size(); ++i) {
    provider_index_[service_providers_[i].addressee().authority_id()] = i;
  }
  std::sort(declarations_.begin(), declarations_.end(),
            [](const v1::Declaration& a, const v1::Declaration& b) {
              return std::make_pair(a.state(), static_cast<int>(a.instrument())) <
                     std::make_pair(b.state(), static_cast<int>(b.instrument()));
            });
  for (size_t i = 0; i < declarations_.size(); ++i) {
    index_[{declarations_[i].state(), declarations_[i].instrument()}] = i;
  }
}

const v1::Declaration* Registry::Find(absl::string_view state, Instrument instrument) const {
  auto it = index_.find({std::string(state), instrument});
  return it == index_.end() ? nullptr : &declarations_[it->second];
}

const v1::ServiceProviderAddressee* Registry::FindServiceProvider(absl::string_view id) const {
  auto it = provider_index_.find(id);
  return it == provider_index_.end() ? nullptr : &service_providers_[it->second];
}

bool Registry::HasState(absl::string_view state) const {
  auto it = index_.lower_bound({std::string(state), 0});
  return it != index_.end() && it->first.first == state;
}

absl::StatusOr<v1::DeclarationRegistry> ParseRegistryFile(absl::string_view file_name,
                                                          absl::string_view text) {
  v1::DeclarationRegistry registry;
  google::protobuf::util::JsonParseOptions options;  // unknown fields are errors
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(text.data(), text.size()), &registry, options);
  if (!parsed.ok()) {
    std::string where = LocateSyntaxError(text);
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ": ", where.empty() ? "" : where + ": ",
                     "not a valid registry file: ", std::string(parsed.message())));
  }
  std::vector<std::string> problems;
  std::map<std::pair<std::string, int>, int> seen;
  for (int i = 0; i < registry.declarations_size(); ++i) {
    const auto& d = registry.declarations(i);
    const std::string path = absl::StrCat("declarations[", i, "]");
    CheckDeclaration(d, path, problems);
    auto [it, fresh] = seen.insert({{d.state(), d.instrument()}, i});
    if (!fresh) {
      problems.push_back(absl::StrCat(path, ": duplicates declarations[", it->second, "] (",
                                      d.state(), ", ", common::v1::Instrument_Name(d.instrument()),
                                      ")"));
    }
  }
  std::map<std::string, int> seen_providers;
  for (int i = 0; i < registry.service_providers_size(); ++i) {
    const auto& p = registry.service_providers(i);
    const std::string path = absl::StrCat("service_providers[", i, "]");
    CheckServiceProvider(p, path, problems);
    for (const std::string& id : {p.provider_id(), p.addressee().authority_id()}) {
      if (id.empty()) continue;
      auto [it, fresh] = seen_providers.insert({id, i});
      if (!fresh && it->second != i) {
        problems.push_back(
            absl::StrCat(path, ": '", id, "' names service_providers[", it->second, "] already"));
      }
    }
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": ", absl::StrJoin(problems, "; ")));
  }
  return registry;
}

absl::StatusOr<std::shared_ptr<const Registry>> LoadRegistryDirectory(
    const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.' || !absl::EndsWith(name, ".json")) continue;
    if (!fs::is_regular_file(it->path(), ec)) continue;  // follows symlinks
    files.push_back(it->path());
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry folder '", directory, "': ", ec.message()));
  }
  std::sort(files.begin(), files.end());
  std::vector<v1::Declaration> all;
  std::vector<v1::ServiceProviderAddressee> providers;
  std::map<std::string, std::string> provider_owner;  // provider or addressee id -> file
  std::map<std::pair<std::string, int>, std::string> owner;
  std::vector<std::string> labels;
  std::string contents;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": cannot be read"));
    }
    const std::string text = buffer.str();
    const std::string name = path.filename().string();
    auto registry = ParseRegistryFile(name, text);
    if (!registry.ok()) return registry.status();
    for (auto& d : *registry->mutable_declarations()) {
      auto [it, fresh] = owner.insert({{d.state(), d.instrument()}, name});
      if (!fresh) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": declares (", d.state(), ", ", common::v1::Instrument_Name(d.instrument()),
            ") again; ", it->second, " declares it already"));
      }
      all.push_back(std::move(d));
    }
    for (auto& p : *registry->mutable_service_providers()) {
      // Within a file, ParseRegistryFile already refused duplicates.
      for (const std::string& id :
           std::set<std::string>{p.provider_id(), p.addressee().authority_id()}) {
        auto [it, fresh] = provider_owner.insert({id, name});
        if (!fresh && it->second != name) {
          return absl::InvalidArgumentError(absl::StrCat(
              name, ": service provider '", id, "' again; ", it->second, " names it already"));
        }
      }
      providers.push_back(std::move(p));
    }
    if (!registry->version().empty()) labels.push_back(registry->version());
    absl::StrAppend(&contents, name, "\n", text, "\n");
  }
  if (all.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry folder '", directory, "' holds no declaration (*.json files)"));
  }
  std::string version = absl::StrCat(labels.empty() ? "registry" : absl::StrJoin(labels, "+"), "@",
                                     common::Sha256Hex(contents).substr(0, 12));
  return std::shared_ptr<const Registry>(
      std::make_shared<Registry>(version, std::move(all), std::move(providers)));
}

std::shared_ptr<const Registry> RegistryHolder::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status RegistryHolder::Reload(const std::string& directory) {
  auto loaded = LoadRegistryDirectory(directory);
  if (!loaded.ok()) return loaded.status();
  absl::MutexLock lock(&mu_);
  current_ = *std::move(loaded);
  return absl::OkStatus();
}

}  // namespace rogatory::routing
