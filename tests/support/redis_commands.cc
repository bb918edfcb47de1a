#include "redis_commands.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace rogatory::testing {
namespace {

// INFO, and CONFIG's subcommands (RESETSTAT, GET), which counting sends, not the code counted.
bool SentByCounting(absl::string_view command) {
  return command == "info" || command == "config" || absl::StartsWith(command, "config|");
}

}  // namespace

CommandCalls ParseCommandStats(absl::string_view info) {
  CommandCalls out;
  for (absl::string_view line : absl::StrSplit(info, absl::ByAnyChar("\r\n"))) {
    if (!absl::ConsumePrefix(&line, "cmdstat_")) continue;
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(colon + 1);
    if (!absl::ConsumePrefix(&rest, "calls=")) continue;
    int64_t calls = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find(',')), &calls)) {
      out[std::string(line.substr(0, colon))] = calls;
    }
  }
  return out;
}

CommandCounter::CommandCounter(common::RedisClient& redis) : redis_(redis) { Snapshot(); }

absl::StatusOr<CommandCalls> CommandCounter::Read() {
  auto info = common::RunRedisCommand(redis_, {"INFO", "commandstats"});
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return info.status();
  return ParseCommandStats(info->str);
}

void CommandCounter::Snapshot() {
  auto now = Read();
  snapshot_ = now.ok() ? *std::move(now) : CommandCalls{};
}

absl::StatusOr<CommandCalls> CommandCounter::DeltaOrError() {
  auto now = Read();
  if (!now.ok()) return now.status();
  CommandCalls out;
  for (const auto& [command, calls] : *now) {
    if (SentByCounting(command)) continue;
    const auto before = snapshot_.find(command);
    const int64_t since = calls - (before == snapshot_.end() ? 0 : before->second);
    if (since != 0) out[command] = since;
  }
  return out;
}

CommandCalls CommandCounter::Delta() {
  auto delta = DeltaOrError();
  return delta.ok() ? *std::move(delta) : CommandCalls{};
}

int64_t CommandCounter::Total() {
  auto delta = DeltaOrError();
  if (!delta.ok()) return -1;
  int64_t total = 0;
  for (const auto& [command, calls] : *delta) total += calls;
  return total;
}

}  // namespace rogatory::testing
