#include "redis_cluster.h"

#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace rogatory::testing {
namespace {

struct ClusterNodeLine {
  std::string id;
  int port = 0;
  bool primary = false;
  bool failed = false;
  std::string primary_id;  // of a replica
  std::vector<std::pair<int, int>> slots;
};

// CLUSTER NODES as one node sees it.
std::vector<ClusterNodeLine> ParseNodes(const std::string& text) {
  std::vector<ClusterNodeLine> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 8) continue;
    ClusterNodeLine n;
    n.id = std::string(f[0]);
    absl::string_view address = f[1].substr(0, f[1].find('@'));
    absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &n.port);
    n.primary = f[2].find("master") != absl::string_view::npos;
    n.failed = f[2].find("fail") != absl::string_view::npos &&
               f[2].find("fail?") == absl::string_view::npos;
    n.primary_id = std::string(f[3]);
    for (size_t i = 8; i < f.size(); ++i) {
      if (f[i].empty() || f[i][0] == '[') continue;  // importing / migrating
      std::vector<absl::string_view> range = absl::StrSplit(f[i], '-');
      int a = 0, b = 0;
      if (!absl::SimpleAtoi(range[0], &a)) continue;
      b = a;
      if (range.size() == 2) absl::SimpleAtoi(range[1], &b);
      n.slots.emplace_back(a, b);
    }
    out.push_back(std::move(n));
  }
  return out;
}

struct SharedCluster {
  std::unique_ptr<RedisCluster> cluster;
  std::unique_ptr<common::RedisClient> client;
};
SharedCluster& Shared() {
  static auto* shared = new SharedCluster();
  return *shared;
}

class SharedClusterEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    Shared().client.reset();
    Shared().cluster.reset();
  }
};

[[maybe_unused]] const bool registered = [] {
  ::testing::AddGlobalTestEnvironment(new SharedClusterEnvironment);
  return true;
}();

}  // namespace

RedisCluster::RedisCluster() {
  std::vector<std::string> addresses;
  for (int i = 0; i < kNodes; ++i) {
    nodes_.push_back(std::make_unique<RedisServer>(RedisServer::Mode::kClusterNode));
    addresses.push_back(absl::StrCat("127.0.0.1:", nodes_.back()->port()));
  }
  const std::string out = nodes_[0]->Cli(absl::StrCat(
      "--cluster create ", absl::StrJoin(addresses, " "), " --cluster-replicas 1 --cluster-yes"));
  EXPECT_NE(out.find("All 16384 slots covered"), std::string::npos) << out;
  EXPECT_TRUE(AwaitHealthy()) << "the cluster did not become healthy:\n"
                              << nodes_[0]->Cli("CLUSTER NODES");
}

RedisCluster::~RedisCluster() = default;

std::string RedisCluster::url() const {
  std::vector<std::string> addresses;
  for (const auto& n : nodes_) addresses.push_back(absl::StrCat("127.0.0.1:", n->port()));
  return absl::StrCat("redis://", absl::StrJoin(addresses, ","), "/0");
}

namespace {
std::vector<ClusterNodeLine> ViewOf(const RedisServer& node) {
  return ParseNodes(node.Cli("CLUSTER NODES"));
}
}  // namespace

int RedisCluster::PrimaryOf(int slot) const {
  for (const auto& n : nodes_) {
    if (!n->running()) continue;
    for (const ClusterNodeLine& line : ViewOf(*n)) {
      if (!line.primary || line.failed) continue;
      for (auto [a, b] : line.slots) {
        if (slot < a || slot > b) continue;
        for (int i = 0; i < kNodes; ++i) {
          if (nodes_[i]->port() == line.port) return i;
        }
      }
    }
    return -1;
  }
  return -1;
}

int RedisCluster::PrimaryOfKey(const std::string& key) const {
  return PrimaryOf(common::RedisKeySlot(key));
}

std::string RedisCluster::NodeId(int i) const {
  return std::string(absl::StripAsciiWhitespace(nodes_[i]->Cli("CLUSTER MYID")));
}

int RedisCluster::ReplicaOf(int primary) const {
  const std::string id = NodeId(primary);
  for (int i = 0; i < kNodes; ++i) {
    if (!nodes_[i]->running()) continue;
    for (const ClusterNodeLine& line : ViewOf(*nodes_[i])) {
      if (line.port == nodes_[i]->port() && !line.primary && line.primary_id == id) return i;
    }
  }
  return -1;
}

std::vector<int> RedisCluster::Primaries() const {
  std::vector<int> out;
  for (int i = 0; i < kNodes; ++i) {
    if (!nodes_[i]->running()) continue;
    for (const ClusterNodeLine& line : ViewOf(*nodes_[i])) {
      if (line.port == nodes_[i]->port() && line.primary && !line.slots.empty()) out.push_back(i);
    }
  }
  return out;
}

bool RedisCluster::AwaitHealthy(absl::Duration within) const {
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(within);
  while (std::chrono::steady_clock::now() < deadline) {
    bool healthy = true;
    std::optional<std::map<int, int>> agreed;  // first slot of a range -> primary port
    for (const auto& n : nodes_) {
      if (!n->running()) continue;
      if (n->Cli("CLUSTER INFO").find("cluster_state:ok") == std::string::npos) {
        healthy = false;
        break;
      }
      std::map<int, int> owners;
      for (const ClusterNodeLine& line : ViewOf(*n)) {
        if (line.failed && !line.slots.empty()) healthy = false;
        if (!line.primary) continue;
        for (auto [a, b] : line.slots) owners[a] = line.port * 100000 + b;
      }
      if (!agreed.has_value()) {
        agreed = owners;
      } else if (*agreed != owners) {
        healthy = false;
      }
      if (!healthy) break;
    }
    if (healthy) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void RedisCluster::BeginSlotMove(int slot, int to) {
  moving_from_ = PrimaryOf(slot);
  ASSERT_GE(moving_from_, 0);
  ASSERT_NE(moving_from_, to);
  const std::string s = std::to_string(slot);
  EXPECT_NE(
      nodes_[to]->Cli("CLUSTER SETSLOT " + s + " IMPORTING " + NodeId(moving_from_)).find("OK"),
      std::string::npos);
  EXPECT_NE(
      nodes_[moving_from_]->Cli("CLUSTER SETSLOT " + s + " MIGRATING " + NodeId(to)).find("OK"),
      std::string::npos);
}

void RedisCluster::MigrateKeys(int slot, int count) {
  ASSERT_GE(moving_from_, 0);
  RedisServer& from = *nodes_[moving_from_];
  const std::string keys = from.Cli(absl::StrCat("CLUSTER GETKEYSINSLOT ", slot, " ", count));
  for (absl::string_view key : absl::StrSplit(keys, '\n', absl::SkipWhitespace())) {
    // The target is the node that imports the slot: find it by its IMPORTING mark.
    int to = -1;
    for (int i = 0; i < kNodes; ++i) {
      if (i != moving_from_ && nodes_[i]->running() &&
          nodes_[i]->Cli("CLUSTER NODES").find(absl::StrCat("[", slot, "-<-")) !=
              std::string::npos) {
        to = i;
      }
    }
    ASSERT_GE(to, 0) << "no node imports slot " << slot;
    const std::string out =
        from.Cli(absl::StrCat("MIGRATE 127.0.0.1 ", nodes_[to]->port(), " '", key, "' 0 5000"));
    EXPECT_NE(out.find("OK"), std::string::npos) << key << ": " << out;
  }
}

void RedisCluster::EndSlotMove(int slot, int to) {
  ASSERT_GE(moving_from_, 0);
  MigrateKeys(slot);
  const std::string command = absl::StrCat("CLUSTER SETSLOT ", slot, " NODE ", NodeId(to));
  EXPECT_NE(nodes_[to]->Cli(command).find("OK"), std::string::npos);
  EXPECT_NE(nodes_[moving_from_]->Cli(command).find("OK"), std::string::npos);
  for (int i : Primaries()) {
    if (i != to && i != moving_from_) nodes_[i]->Cli(command);
  }
  moving_from_ = -1;
  EXPECT_TRUE(AwaitHealthy());
}

void RedisCluster::Restart(int i) {
  nodes_[i]->Start();
  EXPECT_TRUE(AwaitHealthy()) << nodes_[i]->Cli("CLUSTER NODES");
}

std::unique_ptr<common::RedisClient> ClusterClient(const RedisCluster& cluster,
                                                   common::AsyncRedisOptions node_options,
                                                   absl::Duration retry_budget) {
  auto url = common::ParseRedisUrl(cluster.url());
  common::ClusterRedisOptions options;
  options.seeds = url->seeds;
  options.node_options = node_options;
  options.retry_budget = retry_budget;
  auto client = common::NewClusterRedisClient(options);
  EXPECT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE(AwaitPong(**client)) << "the cluster did not answer the client's PING";
  return *std::move(client);
}

RedisCluster& SharedRedisCluster() {
  if (Shared().cluster == nullptr) Shared().cluster = std::make_unique<RedisCluster>();
  return *Shared().cluster;
}

common::RedisClient& SharedClusterClient() {
  if (Shared().client == nullptr) Shared().client = ClusterClient(SharedRedisCluster());
  return *Shared().client;
}

}  // namespace rogatory::testing
