#include "redis_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "gtest/gtest.h"
#include "redis_cluster.h"

namespace rogatory::testing {
namespace {

using Mode = RedisServer::Mode;

struct Shared {
  std::unique_ptr<RedisServer> server;
  std::unique_ptr<common::RedisClient> client;
};
std::array<Shared, 2> shared;
Mode current_mode = Mode::kStandalone;
bool use_cluster = false;

Shared& SharedOfCurrentMode() {
  Shared& s = shared[current_mode == Mode::kStandalone ? 0 : 1];
  if (s.server == nullptr) {
    s.server = std::make_unique<RedisServer>(current_mode);
    s.client = ConnectedClient(*s.server);
  }
  return s;
}

// Stops the shared servers once the binary's tests end.
class SharedRedisEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    for (Shared& s : shared) {
      s.client.reset();
      s.server.reset();
    }
  }
};

// Every test starts on the standalone server.
class BackToStandalone : public ::testing::EmptyTestEventListener {
 public:
  void OnTestEnd(const ::testing::TestInfo&) override {
    current_mode = Mode::kStandalone;
    use_cluster = false;
  }
};

[[maybe_unused]] const bool registered = [] {
  ::testing::AddGlobalTestEnvironment(new SharedRedisEnvironment);
  ::testing::UnitTest::GetInstance()->listeners().Append(new BackToStandalone);
  return true;
}();

}  // namespace

RedisServer& SharedRedisServer() { return *SharedOfCurrentMode().server; }
common::RedisClient& SharedRedisClient() {
  if (use_cluster) return SharedClusterClient();
  return *SharedOfCurrentMode().client;
}
void UseClusterForThisTest() { use_cluster = true; }
void UseOneNodeClusterForThisTest() { current_mode = Mode::kOneNodeCluster; }

common::AsyncRedisOptions TestClientOptions() {
  common::AsyncRedisOptions o;
  o.command_timeout = absl::Seconds(5);
  return o;
}

std::unique_ptr<common::RedisClient> ConnectedClient(const RedisServer& server,
                                                     common::AsyncRedisOptions options) {
  options.url = *common::ParseRedisUrl(server.url());
  auto client = common::NewAsyncRedisClient(options);
  EXPECT_TRUE(AwaitPong(*client)) << "redis-server at " << server.url()
                                  << " did not answer the client's PING within 10 s";
  return client;
}

bool AwaitPong(common::RedisClient& client, absl::Duration within) {
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(within);
  while (true) {
    if (common::RunRedisCommand(client, {"PING"}).ok()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

RedisServer::RedisServer(Mode mode) : mode_(mode) {
  char tmpl[] = "/tmp/rogatory-redis-XXXXXX";
  dir_ = mkdtemp(tmpl);
  port_ = FreePort();
  cluster_bus_port_ = FreePort();
  Start();
}

RedisServer::~RedisServer() {
  Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

void RedisServer::Start() {
  if (pid_ > 0) return;
  const std::string port = std::to_string(port_);
  pid_ = fork();
  if (pid_ == 0) {
    // Keep the test's output pipe free of the server (ctest waits for it to close).
    const int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
    const char* cluster = mode_ == Mode::kStandalone ? "no" : "yes";
    // The cluster bus's port is port + 10000 by default, beyond 65535 for a high free port.
    const std::string bus_port = std::to_string(cluster_bus_port_);
    execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--dir",
           dir_.c_str(), "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
           "--logfile", (dir_ + "/redis.log").c_str(), "--cluster-enabled", cluster,
           "--cluster-config-file", (dir_ + "/nodes.conf").c_str(), "--cluster-port",
           bus_port.c_str(), "--cluster-node-timeout", "1500", static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL() << "redis-server exited at start (is it installed?)";
    }
    if (Cli("PING").find("PONG") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (Cli("PING").find("PONG") == std::string::npos) {
    FAIL() << "redis-server did not answer PING within 20 s";
  }
  if (mode_ != Mode::kOneNodeCluster) return;
  // Every slot on this node (a restart keeps them: nodes.conf is in the data folder).
  if (Cli("CLUSTER INFO").find("cluster_slots_assigned:16384") == std::string::npos) {
    Cli("CLUSTER ADDSLOTSRANGE 0 16383");
  }
  while (std::chrono::steady_clock::now() < deadline) {
    if (Cli("CLUSTER INFO").find("cluster_state:ok") != std::string::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "the one-node cluster did not reach cluster_state:ok within 20 s: "
         << Cli("CLUSTER INFO");
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  paused_ = false;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
  paused_ = true;
}

void RedisServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
  paused_ = false;
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);  // a paused server would not act on SIGTERM
  paused_ = false;
  kill(pid_, SIGTERM);
  int status = 0;
  // A primary waits for its replicas at shutdown (shutdown-timeout, 10 s): past 20 s, kill.
  for (int i = 0; i < 2000 && waitpid(pid_, &status, WNOHANG) != pid_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (i == 1999) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }
  pid_ = -1;
}

std::string RedisServer::Cli(const std::string& args) const {
  const std::string cmd =
      "redis-cli -h 127.0.0.1 -p " + std::to_string(port_) + " " + args + " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    std::array<char, 256> buf;
    while (fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
    pclose(p);
  }
  return out;
}

}  // namespace rogatory::testing
