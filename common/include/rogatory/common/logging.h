#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rogatory::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

absl::Status ParseLogLevel(absl::string_view text, LogLevel* level);

// A value in a structured log line.
using LogValue = std::variant<std::string, int64_t, double, bool>;

struct LogField {
  LogField(absl::string_view k, absl::string_view v) : key(k), value(std::string(v)) {}
  LogField(absl::string_view k, const char* v) : key(k), value(std::string(v)) {}
  LogField(absl::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(absl::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(absl::string_view k, int64_t v) : key(k), value(v) {}
  LogField(absl::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(absl::string_view k, double v) : key(k), value(v) {}
  LogField(absl::string_view k, bool v) : key(k), value(v) {}
  std::string key;
  LogValue value;
};

// Process-wide structured logging: one JSON object a line on stderr, with time, level,
// service and message, plus fields. Never pass personal data (names, birth dates,
// identifiers) or case references in the message or fields. Thread-safe.
class Log {
 public:
  // Sets the service name and minimum level. Call once at start-up.
  static void Configure(absl::string_view service, LogLevel min_level);
  // Routes gRPC's and protobuf's own log output into this log.
  static void CaptureLibraryLogs();

  static void Write(LogLevel level, absl::string_view message,
                    std::initializer_list<LogField> fields = {});
  static void Debug(absl::string_view m, std::initializer_list<LogField> f = {}) {
    Write(LogLevel::kDebug, m, f);
  }
  static void Info(absl::string_view m, std::initializer_list<LogField> f = {}) {
    Write(LogLevel::kInfo, m, f);
  }
  static void Warn(absl::string_view m, std::initializer_list<LogField> f = {}) {
    Write(LogLevel::kWarn, m, f);
  }
  static void Error(absl::string_view m, std::initializer_list<LogField> f = {}) {
    Write(LogLevel::kError, m, f);
  }

  // Formats one line without writing it (for tests).
  static std::string Format(absl::string_view time, LogLevel level, absl::string_view service,
                            absl::string_view message, std::initializer_list<LogField> fields);
};

// JSON string escaping (quotes included).
std::string JsonQuote(absl::string_view s);

}  // namespace rogatory::common
