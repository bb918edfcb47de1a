#include "rogatory/common/denial_log.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rogatory::common {
namespace {

// Appends a record to a caller's stream with the record's time (ms) as its id; when a
// record of a later time is already there (another replica's clock ran ahead), Redis picks
// the id. Then the key lives `retention` after its newest record.
// KEYS: the stream. ARGV: time ms, max entries, retention ms, field, value, ...
const LuaScript kAppend(R"lua(
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
local added = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], ARGV[1] .. '-*',
                          unpack(fields))
if type(added) == 'table' and added.err then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua");

absl::StatusCode CodeFromName(absl::string_view name) {
  for (int c = 0; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    if (absl::StatusCodeToString(code) == name) return code;
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace

bool IsDenial(absl::StatusCode code) {
  return code == absl::StatusCode::kPermissionDenied || code == absl::StatusCode::kNotFound;
}

std::string DenialTargetId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return "";
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != ':' &&
        c != '/' && c != '-') {
      return "";
    }
  }
  return std::string(id);
}

std::string DenialLogKey(const Sharding& sharding, absl::string_view authority_id) {
  return absl::StrCat("rg:{s", sharding.ShardFor(authority_id), "}:denials:", authority_id);
}

void RedisDenialLog::Record(DenialRecord r, std::function<void(absl::Status)> done) {
  r.time = clock_.Now();
  std::vector<std::string> args = {
      absl::StrCat(absl::ToUnixMillis(r.time)),
      absl::StrCat(std::max<int64_t>(1, options_.max_entries)),
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.retention))),
      "t",
      absl::StrCat(absl::ToUnixMicros(r.time)),
      "m",
      r.method,
      "c",
      std::string(absl::StatusCodeToString(r.code)),
      "r",
      DenialTargetId(r.target_id),
      "a",
      r.caller.authority_id,
      "s",
      r.caller.state,
      "ro",
      absl::StrJoin(r.caller.roles, ","),
      "sv",
      r.caller.is_service ? "1" : "0",
      "tr",
      r.trace_id};
  redis_.Eval(kAppend, {DenialLogKey(sharding_, r.caller.authority_id)}, std::move(args),
              [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                done(reply.ok() ? absl::OkStatus() : reply.status());
              });
}

void ListDenials(RedisClient& redis, const Sharding& sharding, const std::string& authority_id,
                 absl::Time from, absl::Time to, const std::string& after, int page_size,
                 std::function<void(absl::StatusOr<DenialPage>)> done) {
  std::string start = "-";
  if (!after.empty()) {
    start = absl::StrCat("(", after);
  } else if (from != absl::InfinitePast()) {
    start = absl::StrCat(std::max<int64_t>(0, absl::ToUnixMillis(from)));
  }
  std::string end = "+";
  if (to != absl::InfiniteFuture()) {
    const int64_t last_ms = absl::ToUnixMillis(to) - 1;
    if (last_ms < 0) return done(DenialPage{});
    end = absl::StrCat(last_ms);
  }
  redis.Command({"XRANGE", DenialLogKey(sharding, authority_id), start, end, "COUNT",
                 absl::StrCat(page_size + 1)},
                [page_size, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                  if (!reply.ok()) return done(reply.status());
                  DenialPage page;
                  const size_t n = std::min<size_t>(reply->elements.size(), page_size);
                  for (size_t i = 0; i < n; ++i) {
                    const RedisReply& entry = reply->elements[i];
                    if (entry.elements.size() != 2)
                      return done(absl::InternalError("bad denial entry"));
                    DenialRecord r;
                    const auto& kv = entry.elements[1].elements;
                    for (size_t k = 0; k + 1 < kv.size(); k += 2) {
                      const std::string& f = kv[k].str;
                      const std::string& v = kv[k + 1].str;
                      if (f == "t") {
                        int64_t us = 0;
                        (void)absl::SimpleAtoi(v, &us);
                        r.time = absl::FromUnixMicros(us);
                      } else if (f == "m") {
                        r.method = v;
                      } else if (f == "c") {
                        r.code = CodeFromName(v);
                      } else if (f == "r") {
                        r.target_id = v;
                      } else if (f == "a") {
                        r.caller.authority_id = v;
                      } else if (f == "s") {
                        r.caller.state = v;
                      } else if (f == "ro") {
                        for (absl::string_view role : absl::StrSplit(v, ',', absl::SkipEmpty())) {
                          r.caller.roles.emplace_back(role);
                        }
                      } else if (f == "sv") {
                        r.caller.is_service = v == "1";
                      } else if (f == "tr") {
                        r.trace_id = v;
                      }
                    }
                    page.records.push_back(std::move(r));
                    if (i + 1 == n && reply->elements.size() > n)
                      page.next_after = entry.elements[0].str;
                  }
                  done(std::move(page));
                });
}

}  // namespace rogatory::common
