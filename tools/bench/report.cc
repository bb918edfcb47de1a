#include "report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace rogatory::bench {
namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

// A JSON string's content: quotes, backslashes and control characters escaped.
std::string JsonEscape(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out;
}

std::string Load(const ScenarioReport& r) {
  return r.mode == "open" ? absl::StrFormat("%.0f/s", r.rate)
                          : absl::StrFormat("c=%d", r.concurrency);
}

std::string Row(const std::string& name, const ScenarioReport& r, const LatencySummary& s) {
  return absl::StrFormat("%-14s %-10s %-8s %9d %7d %7d %10.1f %8.3f %8.3f %8.3f %8.3f %8.3f\n",
                         name, r.label, Load(r), s.calls, s.errors, s.dropped, s.throughput,
                         Ms(s.p50), Ms(s.p90), Ms(s.p99), Ms(s.p999), Ms(s.max));
}

std::string SummaryJson(const LatencySummary& s) {
  std::vector<std::string> codes;
  for (const auto& [code, n] : s.errors_by_code)
    codes.push_back(absl::StrFormat("\"%s\": %d", code, n));
  return absl::StrFormat(
      "{\"calls\": %d, \"ok\": %d, \"errors\": %d, \"dropped\": %d, \"errors_by_code\": {%s}, "
      "\"window_s\": %.3f, \"throughput_per_s\": %.1f, \"latency_ms\": {\"p50\": %.3f, "
      "\"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f, \"mean\": %.3f}}",
      s.calls, s.ok, s.errors, s.dropped, absl::StrJoin(codes, ", "),
      absl::ToDoubleSeconds(s.window), s.throughput, Ms(s.p50), Ms(s.p90), Ms(s.p99), Ms(s.p999),
      Ms(s.max), Ms(s.mean));
}

}  // namespace

std::string TableHeader() {
  return absl::StrFormat("%-14s %-10s %-8s %9s %7s %7s %10s %8s %8s %8s %8s %8s\n", "scenario",
                         "config", "load", "calls", "errors", "dropped", "ok/s", "p50 ms", "p90 ms",
                         "p99 ms", "p99.9 ms", "max ms");
}

std::string TableRow(const ScenarioReport& r) {
  std::string out = Row(r.scenario, r, r.calls);
  if (r.e2e) out += Row(r.scenario + ":notified", r, *r.e2e);
  return out;
}

std::string ToJson(const ScenarioReport& r) {
  std::string out = absl::StrFormat(
      "{\"scenario\": \"%s\", \"label\": \"%s\", \"mode\": \"%s\", \"concurrency\": %d, "
      "\"rate\": %.1f, \"payload_bytes\": %d, \"load_start_unix_s\": %.6f, \"calls\": %s",
      r.scenario, r.label, r.mode, r.concurrency, r.rate, r.payload_bytes,
      absl::ToDoubleSeconds(r.load_start - absl::UnixEpoch()), SummaryJson(r.calls));
  if (r.e2e) {
    absl::StrAppend(&out, ", \"e2e\": ", SummaryJson(*r.e2e), ", \"e2e_stream_error\": \"",
                    JsonEscape(r.e2e_stream_error), "\"");
  }
  absl::StrAppend(&out, "}");
  return out;
}

}  // namespace rogatory::bench
