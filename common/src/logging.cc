#include "rogatory/common/logging.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"
#include "rogatory/common/clock.h"

namespace rogatory::common {
namespace {

std::mutex& OutputMutex() {
  static std::mutex mu;
  return mu;
}
std::string& ServiceName() {
  static std::string name = "rogatory";
  return name;
}
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

void GrpcLogHook(gpr_log_func_args* args) {
  // gRPC logs routine internals at INFO: they are debug lines for us.
  const LogLevel level =
      args->severity == GPR_LOG_SEVERITY_ERROR ? LogLevel::kError : LogLevel::kDebug;
  Log::Write(level, args->message,
             {{"source", "grpc"},
              {"file", args->file ? args->file : ""},
              {"line", static_cast<int64_t>(args->line)}});
}

void ProtobufLogHook(google::protobuf::LogLevel pb_level, const char* filename, int line,
                     const std::string& message) {
  LogLevel level = LogLevel::kInfo;
  if (pb_level == google::protobuf::LOGLEVEL_WARNING) level = LogLevel::kWarn;
  if (pb_level >= google::protobuf::LOGLEVEL_ERROR) level = LogLevel::kError;
  // A request's bytes that do not parse are the caller's fault, not the service's, and
  // any caller can send them at will: the call is answered INVALID_ARGUMENT and counted in
  // the pipeline's rate-limited summary (Pipeline::SetRefusalLog), so protobuf's own line
  // for each is only a debug line.
  if (absl::StrContains(message, "when parsing a protocol buffer")) level = LogLevel::kDebug;
  Log::Write(level, message,
             {{"source", "protobuf"},
              {"file", filename ? filename : ""},
              {"line", static_cast<int64_t>(line)}});
}

}  // namespace

absl::Status ParseLogLevel(absl::string_view text, LogLevel* level) {
  if (text == "debug")
    *level = LogLevel::kDebug;
  else if (text == "info")
    *level = LogLevel::kInfo;
  else if (text == "warn")
    *level = LogLevel::kWarn;
  else if (text == "error")
    *level = LogLevel::kError;
  else
    return absl::InvalidArgumentError("must be one of debug, info, warn, error");
  return absl::OkStatus();
}

std::string JsonQuote(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

void Log::Configure(absl::string_view service, LogLevel min_level) {
  {
    std::lock_guard<std::mutex> lock(OutputMutex());
    ServiceName() = std::string(service);
  }
  g_min_level.store(static_cast<int>(min_level));
}

void Log::CaptureLibraryLogs() {
  gpr_set_log_function(GrpcLogHook);
  gpr_set_log_verbosity(GPR_LOG_SEVERITY_INFO);
  google::protobuf::SetLogHandler(ProtobufLogHook);
}

std::string Log::Format(absl::string_view time, LogLevel level, absl::string_view service,
                        absl::string_view message, std::initializer_list<LogField> fields) {
  std::string line =
      absl::StrCat("{\"time\":", JsonQuote(time), ",\"level\":\"", LevelName(level),
                   "\",\"service\":", JsonQuote(service), ",\"msg\":", JsonQuote(message));
  for (const LogField& f : fields) {
    absl::StrAppend(&line, ",", JsonQuote(f.key), ":");
    std::visit(
        [&line](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            absl::StrAppend(&line, JsonQuote(v));
          } else if constexpr (std::is_same_v<T, bool>) {
            absl::StrAppend(&line, v ? "true" : "false");
          } else {
            absl::StrAppend(&line, v);
          }
        },
        f.value);
  }
  line += "}";
  return line;
}

void Log::Write(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields) {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  // Real time, even where the service clock is a test clock moved ahead: a log line says
  // when it was written, to be read beside other processes' logs.
  static const RealClock* const real_clock = new RealClock();
  std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", real_clock->Now(), absl::UTCTimeZone());
  std::lock_guard<std::mutex> lock(OutputMutex());
  std::string line = Format(time, level, ServiceName(), message, fields);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace rogatory::common
