#include "rogatory/common/config.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace rogatory::common {

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string Config::EnvName(absl::string_view setting) {
  return absl::StrCat("ROGATORY_",
                      absl::AsciiStrToUpper(absl::StrReplaceAll(setting, {{"-", "_"}})));
}

void Config::Add(std::string name, std::string default_text, std::string help, Parser parse) {
  entries_.push_back({std::move(name), std::move(default_text), std::move(help), std::move(parse)});
}

void Config::AddString(std::string name, std::string default_value, std::string help,
                       std::string* out, std::function<absl::Status(const std::string&)> check) {
  std::string def = default_value;
  Add(std::move(name), std::move(def), std::move(help),
      [out, check](const std::string& text) -> absl::Status {
        if (check) {
          if (absl::Status s = check(text); !s.ok()) return s;
        }
        *out = text;
        return absl::OkStatus();
      });
}

void Config::AddChoice(std::string name, std::string default_value,
                       std::vector<std::string> choices, std::string help, std::string* out) {
  help = absl::StrCat(help, " (", absl::StrJoin(choices, "|"), ")");
  Add(std::move(name), std::move(default_value), std::move(help),
      [out, choices](const std::string& text) -> absl::Status {
        for (const auto& c : choices) {
          if (c == text) {
            *out = text;
            return absl::OkStatus();
          }
        }
        return absl::InvalidArgumentError(
            absl::StrCat("must be one of ", absl::StrJoin(choices, ", ")));
      });
}

void Config::AddInt(std::string name, int default_value, int min, int max, std::string help,
                    int* out) {
  Add(std::move(name), absl::StrCat(default_value), std::move(help),
      [out, min, max](const std::string& text) -> absl::Status {
        int v = 0;
        if (!absl::SimpleAtoi(text, &v) || v < min || v > max) {
          return absl::InvalidArgumentError(
              absl::StrCat("must be a whole number from ", min, " to ", max));
        }
        *out = v;
        return absl::OkStatus();
      });
}

void Config::AddInt64(std::string name, int64_t default_value, int64_t min, int64_t max,
                      std::string help, int64_t* out) {
  Add(std::move(name), absl::StrCat(default_value), std::move(help),
      [out, min, max](const std::string& text) -> absl::Status {
        int64_t v = 0;
        if (!absl::SimpleAtoi(text, &v) || v < min || v > max) {
          return absl::InvalidArgumentError(
              absl::StrCat("must be a whole number from ", min, " to ", max));
        }
        *out = v;
        return absl::OkStatus();
      });
}

void Config::AddBool(std::string name, bool default_value, std::string help, bool* out) {
  Add(std::move(name), default_value ? "true" : "false", std::move(help),
      [out](const std::string& text) -> absl::Status {
        if (text == "true" || text == "1" || text == "yes") {
          *out = true;
        } else if (text == "false" || text == "0" || text == "no") {
          *out = false;
        } else {
          return absl::InvalidArgumentError("must be true or false");
        }
        return absl::OkStatus();
      });
}

void Config::AddDuration(std::string name, absl::Duration default_value, absl::Duration min,
                         absl::Duration max, std::string help, absl::Duration* out) {
  Add(std::move(name), absl::FormatDuration(default_value), std::move(help),
      [out, min, max](const std::string& text) -> absl::Status {
        absl::Duration d;
        if (!absl::ParseDuration(text, &d) || d < min || d > max) {
          return absl::InvalidArgumentError(
              absl::StrCat("must be a duration (like 500ms, 10s, 48h) from ",
                           absl::FormatDuration(min), " to ", absl::FormatDuration(max)));
        }
        *out = d;
        return absl::OkStatus();
      });
}

absl::Status Config::Parse(int argc, const char* const* argv, const EnvLookup& env) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return absl::OkStatus();
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    arg.remove_prefix(2);
    std::string name, value;
    if (auto eq = arg.find('='); eq != absl::string_view::npos) {
      name = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
    } else {
      name = std::string(arg);
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("setting '", name, "': missing value"));
      }
      value = argv[++i];
    }
    bool known = false;
    for (const Entry& e : entries_) known = known || e.name == name;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("unknown setting '--", name, "'"));
    }
    flags[name] = value;
  }
  for (const Entry& e : entries_) {
    std::string source = "default";
    std::string text = e.default_text;
    if (auto it = flags.find(e.name); it != flags.end()) {
      text = it->second;
      source = absl::StrCat("--", e.name);
    } else if (auto v = env(EnvName(e.name)); v.has_value()) {
      text = *v;
      source = EnvName(e.name);
    }
    if (absl::Status s = e.parse(text); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting '", e.name, "' (from ", source, "): ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::string Config::Help(absl::string_view program) const {
  std::string out = absl::StrCat("Usage: ", program,
                                 " [--setting=value ...]\n\nSettings (flag, environment "
                                 "variable, default):\n");
  for (const Entry& e : entries_) {
    absl::StrAppend(&out, "  --", e.name, "  ", EnvName(e.name), "  [", e.default_text, "]\n      ",
                    e.help, "\n");
  }
  return out;
}

}  // namespace rogatory::common
