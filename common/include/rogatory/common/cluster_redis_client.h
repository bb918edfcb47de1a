#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// The hash slot (0..16383) Redis Cluster gives `key`: CRC16 (XMODEM) of the key, or of its
// hash tag (what is between the first '{' and the next '}', when not empty), mod 16384.
int RedisKeySlot(absl::string_view key);

// The keys a command names, as Redis Cluster sees them (args[0] is the command's name):
// args[1] for most, none for PING/INFO/PUBLISH/TIME/SCRIPT/..., every argument for
// DEL/EXISTS/MGET/UNLINK/TOUCH, the keys after STREAMS for XREAD/XREADGROUP, args[2] for
// XGROUP/XINFO/MEMORY subcommands, the declared keys for EVAL/EVALSHA; for SCAN, its MATCH
// pattern when that starts with a hash tag free of glob characters (it matches only keys of
// that slot), else none.
std::vector<absl::string_view> RedisCommandKeys(const std::vector<std::string>& args);

// Builds the client of one primary node.
using RedisNodeClientFactory =
    std::function<std::unique_ptr<RedisClient>(const std::string& host, int port)>;

struct ClusterRedisOptions {
  // Where to read the slot map at start (any node of the cluster will do; several in case
  // one is down). At least one.
  std::vector<RedisHostPort> seeds;
  // The options of each node's client (NewAsyncRedisClient): its url's host and port are
  // the node's; its credentials are the cluster's. url.db must be 0.
  AsyncRedisOptions node_options;
  // Null: NewAsyncRedisClient(node_options with the node's host and port).
  RedisNodeClientFactory node_client_factory;
  // A call whose attempt fails retryably (TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN,
  // READONLY, or a node that is not connected: the command never left) is retried with
  // backoff until this long after its first failure, then fails UNAVAILABLE.
  absl::Duration retry_budget = absl::Seconds(2);
};

// RedisClient on a Redis Cluster: one client (one pipelined connection) per primary node,
// commands and scripts sent to the primary that owns their keys' slot, per the slot map
// read from the cluster (CLUSTER SLOTS) at start and again after a MOVED redirection or a
// node that stops answering. Follows ASK (ASKING then the command, on the target node's one
// connection, back to back). Never reads from a replica. A script's keys, and a command's,
// must all be in one slot: otherwise the call fails INVALID_ARGUMENT, sending nothing.
// A command that may have reached a node (timed out, connection lost) is not sent again
// (it may have been applied): the caller gets UNAVAILABLE. Keyless commands (PING, INFO,
// PUBLISH, TIME) go to any primary; SCRIPT, FLUSHALL and FLUSHDB go to every primary.
// Fails INVALID_ARGUMENT when node_options.url.db is not 0 (Redis Cluster has database 0
// only) or there is no seed.
absl::StatusOr<std::unique_ptr<RedisClient>> NewClusterRedisClient(ClusterRedisOptions options);

// The primary that owns `key`'s slot now, asked of the nodes of `url` (its seeds) with a
// blocking CLUSTER SLOTS: for connections of their own that must reach the key's node
// (a blocking XREAD). Start-up and background threads only.
absl::StatusOr<RedisHostPort> ClusterNodeOfKey(const RedisUrl& url, absl::string_view key,
                                               absl::Duration timeout = absl::Seconds(1));

// Whether `url` names a cluster (--redis-cluster=true, or several seed addresses).
inline bool IsClusterUrl(const RedisUrl& url) { return url.cluster || url.seeds.size() > 1; }

// The client `url` asks for: NewClusterRedisClient on its seeds when it names a cluster,
// else NewAsyncRedisClient. `options.url` is replaced by `url`.
absl::StatusOr<std::unique_ptr<RedisClient>> NewRedisClientFor(const RedisUrl& url,
                                                               AsyncRedisOptions options);

}  // namespace rogatory::common
