#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace rogatory::common {

// A Redis reply, copied out of hiredis so it can outlive the callback.
struct RedisReply {
  enum class Type { kNil, kString, kStatus, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;                   // kString, kStatus
  int64_t integer = 0;               // kInteger
  std::vector<RedisReply> elements;  // kArray

  bool is_nil() const { return type == Type::kNil; }
};

// Completion of a Redis command. Runs on the client's event-loop thread: it must not block.
// Error replies and transport failures arrive as a non-OK status: UNAVAILABLE when Redis is
// unreachable, timed out, loading or out of memory (retryable), INTERNAL otherwise.
using RedisCallback = std::function<void(absl::StatusOr<RedisReply>)>;

// A Lua script run with EVALSHA, and re-sent with EVAL when Redis answers NOSCRIPT. Scripts
// take "now" as an argument and never read Redis's TIME.
// Redis 7 script flags, as the first line of a script's source (its shebang). With
// maxmemory and noeviction, a full Redis refuses writes that may grow memory; a script that
// frees memory (erasure, trims, acknowledgements, lease release) starts with
// kScriptRunsWhenFull so it still runs then, and one that grows memory with
// kScriptRefusedWhenFull, so a full Redis refuses it whole, with an OOM error (UNAVAILABLE
// "the store is full"), before it changes anything. A script with neither is judged by its
// first write: refused if that write may grow memory, else run to the end whatever it
// writes after.
inline constexpr char kScriptRunsWhenFull[] = "#!lua flags=allow-oom\n";
inline constexpr char kScriptRefusedWhenFull[] = "#!lua\n";

class LuaScript {
 public:
  explicit LuaScript(std::string source);
  const std::string& source() const { return source_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;
};

// Asynchronous Redis access. Never blocks the caller. Thread-safe.
class RedisClient {
 public:
  virtual ~RedisClient() = default;
  // Sends a command; `done` runs exactly once.
  virtual void Command(std::vector<std::string> args, RedisCallback done) = 0;
  // Runs a script with the given keys and arguments; `done` runs exactly once.
  virtual void Eval(const LuaScript& script, std::vector<std::string> keys,
                    std::vector<std::string> args, RedisCallback done) = 0;
};

struct RedisHostPort {
  std::string host;
  int port = 6379;
};

// TLS to Redis. With `enabled`, the server's certificate must verify against `ca_file`
// (mandatory) and name `server_name` (a DNS name or an IP address; empty: the URL's host),
// which is also sent as SNI when it is a DNS name. A client certificate is presented when
// `cert_file` and `key_file` are set (Redis's `tls-auth-clients yes`).
struct RedisTls {
  bool enabled = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;
};

// Where Redis is: redis://[[user]:password@]host[:port][,host[:port]...][/db], or rediss://...
// for TLS (the files of `tls` come from settings, not from the URL). Several comma-separated
// addresses are the seeds of a Redis Cluster; host and port are the first.
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
  // Every address of the URL, the first one included (one for a single Redis).
  std::vector<RedisHostPort> seeds;
  // A Redis Cluster, even with one seed (--redis-cluster=true).
  bool cluster = false;
  RedisTls tls;
};
absl::StatusOr<RedisUrl> ParseRedisUrl(absl::string_view url);

// A failure to connect that retrying will not fix while the configuration stays as it is:
// the server's certificate did not verify, the client's certificate was refused, or Redis
// refused the credentials (AUTH) or the database (SELECT). Such failures are UNAVAILABLE,
// like any Redis that cannot be reached, and carry a mark that IsRedisConfigurationError
// finds: a starting service gives up at once instead of waiting for Redis to come up.
absl::Status RedisConfigurationError(absl::string_view message);
bool IsRedisConfigurationError(const absl::Status& status);

// Waits for a command's reply. For start-up code and tests only: never call it from the
// client's own callbacks or from gRPC's callback threads.
absl::StatusOr<RedisReply> RunRedisCommand(RedisClient& client, std::vector<std::string> args);
absl::StatusOr<RedisReply> RunRedisScript(RedisClient& client, const LuaScript& script,
                                          std::vector<std::string> keys,
                                          std::vector<std::string> args);

// Maps a Redis error reply text to a status: retryable conditions are UNAVAILABLE.
absl::Status RedisErrorToStatus(absl::string_view error);

}  // namespace rogatory::common
