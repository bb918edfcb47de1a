#pragma once

// Typed calls of common's own Redis scripts (issue 17, item 2), internal to common/src.
//
// Each script (a .lua file under common/src/lua, embedded as rogatory::common::lua::kName)
// has one C++ entry point taking a struct of named fields and answering a typed result;
// the entry point builds the KEYS and ARGV, and parses the reply with redis_reply.h. These
// helpers are the plumbing they share: nothing outside the store layer touches RedisReply.

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "rogatory/common/redis.h"

namespace rogatory::common::internal {

// The script of an embedded source, made once per call site:
//   const LuaScript& script = EmbeddedScript<&lua::kAuditSeal>();
// (one LuaScript per constant, never destroyed: callbacks may run during shutdown).
template <const std::string_view* kSource>
const LuaScript& EmbeddedScript() {
  static const LuaScript* script = new LuaScript(std::string(*kSource));
  return *script;
}

// Runs `script` and hands its reply, read by `parse` (RedisReply -> StatusOr<T>), to
// `done`, which runs exactly once on the client's thread. Transport and Redis errors reach
// `done` as they are (see RedisCallback).
template <typename T, typename Parse>
void EvalTyped(RedisClient& redis, const LuaScript& script, std::vector<std::string> keys,
               std::vector<std::string> args, Parse parse,
               std::function<void(absl::StatusOr<T>)> done) {
  redis.Eval(script, std::move(keys), std::move(args),
             [parse = std::move(parse), done = std::move(done)](absl::StatusOr<RedisReply> reply) {
               if (!reply.ok()) return done(reply.status());
               done(parse(*reply));
             });
}

// The same, waiting for the reply: for the background workers (relay lanes, the audit
// sealer) that run on threads of their own, never for gRPC's callback threads.
template <typename T, typename Parse>
absl::StatusOr<T> RunTyped(RedisClient& redis, const LuaScript& script,
                           std::vector<std::string> keys, std::vector<std::string> args,
                           Parse parse) {
  absl::StatusOr<RedisReply> reply =
      RunRedisScript(redis, script, std::move(keys), std::move(args));
  if (!reply.ok()) return reply.status();
  return parse(*reply);
}

}  // namespace rogatory::common::internal
