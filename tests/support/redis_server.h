#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "rogatory/common/async_redis_client.h"

namespace rogatory::testing {

// A real redis-server for one test binary: free loopback port, data in a temp dir, AOF on.
// Never skips: if redis-server cannot start, the test fails.
class RedisServer {
 public:
  enum class Mode {
    kStandalone,
    // `cluster-enabled yes` with every slot on this one node: Redis then refuses a script
    // whose keys span slots, or that reaches a key of another slot than its KEYS, as a
    // real cluster does, without MOVED redirections a single-node client cannot follow.
    kOneNodeCluster,
    // `cluster-enabled yes`, no slots, cluster-node-timeout 1500 ms: one node of a
    // RedisCluster (redis_cluster.h), which assigns the slots.
    kClusterNode,
  };
  explicit RedisServer(Mode mode = Mode::kStandalone);
  ~RedisServer();

  // Starts (or restarts, same port and data) the server and waits until it answers PING.
  void Start();
  // Stops it (SIGTERM) and waits for the process to exit.
  void Stop();

  // SIGKILL: the process dies at once, as a crashed machine's would; Start() brings it back
  // with its data folder (a cluster node rejoins as a replica of the node that took over).
  void Kill();
  // SIGSTOP / SIGCONT: the process stays, its connections open, and answers nothing.
  void Pause();
  void Resume();

  // Started, not killed, stopped or paused.
  bool running() const { return pid_ > 0 && !paused_; }
  int port() const { return port_; }
  std::string url() const;
  // Runs a redis-cli command against it and returns its output.
  std::string Cli(const std::string& args) const;

 private:
  Mode mode_;
  std::string dir_;
  int port_ = 0;
  int cluster_bus_port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

// A loopback TCP port that was free a moment ago.
int FreePort();

// A client on `server` that has answered PING (the client connects in the background); the
// test fails if it does not within 10 s. `options.url` is set to the server's.
common::AsyncRedisOptions TestClientOptions();  // command timeout 5 s
std::unique_ptr<common::RedisClient> ConnectedClient(
    const RedisServer& server, common::AsyncRedisOptions options = TestClientOptions());
// Waits until `client` answers PING (after its server restarted): true if it does in `within`.
bool AwaitPong(common::RedisClient& client, absl::Duration within = absl::Seconds(10));

// One server of each mode and a connected client on it, shared by all the tests of one
// binary: started at first use, stopped when the binary's tests end. A test uses the
// standalone one unless its store factory is OnOneNodeCluster<F>, whose Make() switches the
// rest of that test to the one-node cluster (a store contract suite then runs on both with
// one factory: INSTANTIATE_TYPED_TEST_SUITE_P(OneNodeCluster, Suite, OnOneNodeCluster<F>)).
RedisServer& SharedRedisServer();
common::RedisClient& SharedRedisClient();
void UseOneNodeClusterForThisTest();

template <typename Factory>
struct OnOneNodeCluster : Factory {
  static auto Make() {
    UseOneNodeClusterForThisTest();
    return Factory::Make();
  }
};

}  // namespace rogatory::testing
