#include "rogatory/common/redis_readiness.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "script_call.h"

namespace rogatory::common {
namespace {

// The probe's write (lua/redis_readiness_probe.lua).
struct ProbeWrite {
  std::string key;
  absl::Duration ttl;  // at least a millisecond
};

void WriteProbe(RedisClient& redis, const ProbeWrite& probe,
                std::function<void(absl::StatusOr<int64_t>)> done) {
  internal::EvalTyped<int64_t>(
      redis, internal::EmbeddedScript<&lua::kRedisReadinessProbe>(), {probe.key},
      {"1", absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(probe.ttl)))},
      [](const RedisReply& reply) { return ReplyInteger(reply, "redis readiness probe"); },
      std::move(done));
}

}  // namespace

RedisReadiness::RedisReadiness(std::unique_ptr<RedisClient> inner, std::string probe_key,
                               absl::Duration probe_ttl)
    : inner_(std::move(inner)), probe_key_(std::move(probe_key)), probe_ttl_(probe_ttl) {}

RedisReadiness::~RedisReadiness() { inner_.reset(); }

RedisCallback RedisReadiness::Watch(RedisCallback done) {
  return [this, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
    if (!reply.ok() && reply.status().code() == absl::StatusCode::kUnavailable) {
      window_failures_.fetch_add(1);
      total_failures_.fetch_add(1);
      absl::MutexLock lock(&mu_);
      last_error_ = std::string(reply.status().message());
    }
    done(std::move(reply));
  };
}

void RedisReadiness::Command(std::vector<std::string> args, RedisCallback done) {
  inner_->Command(std::move(args), Watch(std::move(done)));
}

void RedisReadiness::Eval(const LuaScript& script, std::vector<std::string> keys,
                          std::vector<std::string> args, RedisCallback done) {
  inner_->Eval(script, std::move(keys), std::move(args), Watch(std::move(done)));
}

void RedisReadiness::Probe(std::function<void(absl::Status)> done) {
  const int64_t failed = window_failures_.exchange(0);
  std::string last_error;
  if (failed > 0) {
    absl::MutexLock lock(&mu_);
    last_error = last_error_;
  }
  WriteProbe(*inner_, {probe_key_, probe_ttl_},
             [failed, last_error = std::move(last_error),
              done = std::move(done)](absl::StatusOr<int64_t> written) {
               if (!written.ok()) {
                 return done(absl::UnavailableError(
                     absl::StrCat("redis probe failed: ", written.status().message())));
               }
               if (failed > 0) {
                 return done(absl::UnavailableError(absl::StrCat(
                     failed, " redis command(s) failed since the last probe: ", last_error)));
               }
               done(absl::OkStatus());
             });
}

}  // namespace rogatory::common
