#pragma once

#include <sys/types.h>

#include <string>

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
  };
  explicit RedisServer(Mode mode = Mode::kStandalone);
  ~RedisServer();

  // Starts (or restarts, same port and data) the server and waits until it answers PING.
  void Start();
  // Stops it (SIGTERM) and waits for the process to exit.
  void Stop();

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
};

// A loopback TCP port that was free a moment ago.
int FreePort();

}  // namespace rogatory::testing
