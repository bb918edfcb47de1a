// Fuzzes the deadline rules and calendars loaders: the input is JSON text (protobuf's
// mapping, as rules.json / calendars.json are read); the first byte picks the file kind.
#include <cstddef>
#include <cstdint>
#include <string>

#include "calendar.h"
#include "fuzz_check.h"
#include "google/protobuf/util/json_util.h"
#include "rules.h"

namespace v1 = rogatory::deadlines::v1;
using rogatory::fuzz::CheckRejection;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool rules = data[0] & 1;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (!rules) {
    v1::CalendarsFile file;
    if (!google::protobuf::util::JsonStringToMessage(text, &file, options).ok()) return 0;
    CheckRejection(rogatory::deadlines::Calendars::Create(file).status(), false);
    return 0;
  }
  v1::DeadlineRulesFile file;
  if (!google::protobuf::util::JsonStringToMessage(text, &file, options).ok()) return 0;
  auto calendars = rogatory::deadlines::Calendars::Create(v1::CalendarsFile());
  if (!calendars.ok()) return 0;
  CheckRejection(rogatory::deadlines::RuleSet::Create(file, *calendars).status(), false);
  return 0;
}
