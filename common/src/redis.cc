#include "rogatory/common/redis.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "rogatory/common/await.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/status.h"

namespace rogatory::common {
LuaScript::LuaScript(std::string source) : source_(std::move(source)), sha1_(Sha1Hex(source_)) {}

absl::StatusOr<RedisUrl> ParseRedisUrl(absl::string_view url) {
  RedisUrl out;
  if (absl::ConsumePrefix(&url, "rediss://")) {
    out.tls.enabled = true;
  } else if (!absl::ConsumePrefix(&url, "redis://")) {
    return absl::InvalidArgumentError("must start with redis:// (or rediss:// for TLS)");
  }
  if (auto at = url.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = url.substr(0, at);
    url.remove_prefix(at + 1);
    if (auto colon = userinfo.find(':'); colon != absl::string_view::npos) {
      out.user = std::string(userinfo.substr(0, colon));
      out.password = std::string(userinfo.substr(colon + 1));
    } else {
      out.password = std::string(userinfo);
    }
  }
  absl::string_view hostport = url;
  if (auto slash = url.find('/'); slash != absl::string_view::npos) {
    hostport = url.substr(0, slash);
    absl::string_view db = url.substr(slash + 1);
    if (!db.empty() && (!absl::SimpleAtoi(db, &out.db) || out.db < 0 || out.db > 15)) {
      return absl::InvalidArgumentError("database must be a number from 0 to 15");
    }
  }
  for (absl::string_view address : absl::StrSplit(hostport, ',')) {
    RedisHostPort seed;
    if (auto colon = address.rfind(':'); colon != absl::string_view::npos) {
      if (!absl::SimpleAtoi(address.substr(colon + 1), &seed.port) || seed.port <= 0 ||
          seed.port > 65535) {
        return absl::InvalidArgumentError("port must be a number from 1 to 65535");
      }
      address = address.substr(0, colon);
    }
    if (address.empty()) return absl::InvalidArgumentError("host is missing");
    seed.host = std::string(address);
    out.seeds.push_back(std::move(seed));
  }
  out.host = out.seeds.front().host;
  out.port = out.seeds.front().port;
  return out;
}

namespace {
// The payload that marks a configuration error (no type of ours: only its presence counts).
constexpr absl::string_view kConfigurationErrorUrl = "type.rogatory.dev/redis.ConfigurationError";
}  // namespace

absl::Status RedisConfigurationError(absl::string_view message) {
  absl::Status status = absl::UnavailableError(message);
  status.SetPayload(kConfigurationErrorUrl, absl::Cord("1"));
  return status;
}

bool IsRedisConfigurationError(const absl::Status& status) {
  return status.GetPayload(kConfigurationErrorUrl).has_value();
}

absl::Status RedisErrorToStatus(absl::string_view error) {
  // The error code is the reply's first word: "BUSYGROUP" (a consumer group that exists)
  // is not "BUSY" (a script running too long), and counting it as an outage would take
  // readiness down at every start.
  const absl::string_view code = error.substr(0, error.find(' '));
  if (code == "OOM") {
    // maxmemory reached with noeviction: Redis refused the write before it changed
    // anything (see kScriptRefusedWhenFull). Callers get this, not Redis's own text.
    return WithReason(
        absl::UnavailableError("the store is full (Redis reached its maxmemory bound): nothing was "
                               "changed; retry later"),
        v1::ERROR_REASON_STORE_FULL);
  }
  for (absl::string_view retryable : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
                                      "OOM", "READONLY", "NOAUTH", "WRONGPASS"}) {
    if (code == retryable) {
      return absl::UnavailableError(absl::StrCat("redis: ", error));
    }
  }
  return absl::InternalError(absl::StrCat("redis: ", error));
}

absl::StatusOr<RedisReply> RunRedisCommand(RedisClient& client, std::vector<std::string> args) {
  return AwaitCallback<absl::StatusOr<RedisReply>>(
      [&](RedisCallback cb) { client.Command(std::move(args), std::move(cb)); });
}

absl::StatusOr<RedisReply> RunRedisScript(RedisClient& client, const LuaScript& script,
                                          std::vector<std::string> keys,
                                          std::vector<std::string> args) {
  return AwaitCallback<absl::StatusOr<RedisReply>>([&](RedisCallback cb) {
    client.Eval(script, std::move(keys), std::move(args), std::move(cb));
  });
}

}  // namespace rogatory::common
