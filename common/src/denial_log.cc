#include "rogatory/common/denial_log.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"
#include "script_call.h"

namespace rogatory::common {
namespace {

// lua/denial_log_append.lua
struct DenialAppend {
  std::string stream;
  absl::Time time;
  int64_t max_entries = 1;
  absl::Duration retention;
  std::vector<std::pair<std::string, std::string>> fields;  // the record
};

void AppendDenial(RedisClient& redis, DenialAppend call, std::function<void(absl::Status)> done) {
  std::vector<std::string> args = {
      absl::StrCat(absl::ToUnixMillis(call.time)),
      absl::StrCat(std::max<int64_t>(1, call.max_entries)),
      absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(call.retention)))};
  for (auto& [field, value] : call.fields) {
    args.push_back(std::move(field));
    args.push_back(std::move(value));
  }
  internal::EvalTyped<int64_t>(
      redis, internal::EmbeddedScript<&lua::kDenialLogAppend>(), {std::move(call.stream)},
      std::move(args),
      [](const RedisReply& reply) { return ReplyInteger(reply, "denial log append"); },
      [done = std::move(done)](absl::StatusOr<int64_t> appended) { done(appended.status()); });
}

absl::StatusCode CodeFromName(absl::string_view name) {
  for (int c = 0; c <= 16; ++c) {
    const auto code = static_cast<absl::StatusCode>(c);
    if (absl::StatusCodeToString(code) == name) return code;
  }
  return absl::StatusCode::kUnknown;
}

// A page of at most `page_size` records from XRANGE's reply (which asked for one more, to
// tell whether a next page exists).
absl::StatusOr<DenialPage> ReadDenialPage(const RedisReply& reply, int page_size) {
  constexpr char kWhat[] = "denial log range";
  ASSIGN_OR_RETURN(const std::vector<RedisReply>* entries, ReplyArray(reply, kWhat));
  DenialPage page;
  const size_t n = std::min<size_t>(entries->size(), page_size);
  for (size_t i = 0; i < n; ++i) {
    const RedisReply& entry = (*entries)[i];
    if (entry.elements.size() != 2) return absl::InternalError("bad denial entry");
    ASSIGN_OR_RETURN(std::string id, ReplyString(entry.elements[0], kWhat));
    ASSIGN_OR_RETURN(auto fields, ReplyFields(entry.elements[1], kWhat));
    DenialRecord r;
    for (const auto& [f, v] : fields) {
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
    if (i + 1 == n && entries->size() > n) page.next_after = std::move(id);
  }
  return page;
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
  DenialAppend call;
  call.stream = DenialLogKey(sharding_, r.caller.authority_id);
  call.time = r.time;
  call.max_entries = options_.max_entries;
  call.retention = options_.retention;
  call.fields = {{"t", absl::StrCat(absl::ToUnixMicros(r.time))},
                 {"m", r.method},
                 {"c", std::string(absl::StatusCodeToString(r.code))},
                 {"r", DenialTargetId(r.target_id)},
                 {"a", r.caller.authority_id},
                 {"s", r.caller.state},
                 {"ro", absl::StrJoin(r.caller.roles, ",")},
                 {"sv", r.caller.is_service ? "1" : "0"},
                 {"tr", r.trace_id}};
  AppendDenial(redis_, std::move(call), std::move(done));
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
                  done(ReadDenialPage(*reply, page_size));
                });
}

}  // namespace rogatory::common
