#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rogatory::common {

// Reads an environment variable; injected so tests need not touch the real environment.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup ProcessEnv();

// Settings from flags and ROGATORY_* environment variables. Each setting `foo-bar` is read
// from `--foo-bar=value` (or `--foo-bar value`), else from ROGATORY_FOO_BAR, else its
// default. Every value is parsed and validated in Parse, which names the setting on error,
// so a bad configuration stops the process at start-up.
class Config {
 public:
  using Parser = std::function<absl::Status(const std::string& text)>;

  void AddString(std::string name, std::string default_value, std::string help, std::string* out,
                 std::function<absl::Status(const std::string&)> check = {});
  void AddChoice(std::string name, std::string default_value, std::vector<std::string> choices,
                 std::string help, std::string* out);
  void AddInt(std::string name, int default_value, int min, int max, std::string help, int* out);
  // The same for values beyond int's range (byte counts of gigabytes).
  void AddInt64(std::string name, int64_t default_value, int64_t min, int64_t max, std::string help,
                int64_t* out);
  void AddBool(std::string name, bool default_value, std::string help, bool* out);
  // Durations as "500ms", "10s", "48h"; must lie in [min, max].
  void AddDuration(std::string name, absl::Duration default_value, absl::Duration min,
                   absl::Duration max, std::string help, absl::Duration* out);

  // Parses flags (argv[1..]) and the environment. `--help` sets help_requested() and
  // returns OK. Unknown flags and bad values are INVALID_ARGUMENT naming the setting.
  absl::Status Parse(int argc, const char* const* argv, const EnvLookup& env);

  bool help_requested() const { return help_requested_; }
  // A table of every setting: flag, environment variable, default, description.
  std::string Help(absl::string_view program) const;

  static std::string EnvName(absl::string_view setting);

 private:
  struct Entry {
    std::string name;
    std::string default_text;
    std::string help;
    Parser parse;
  };
  void Add(std::string name, std::string default_text, std::string help, Parser parse);

  std::vector<Entry> entries_;
  bool help_requested_ = false;
};

}  // namespace rogatory::common
