// ClusterRedisClient on a real Redis Cluster of three primaries and three replicas
// (issue 18): routing by slot, MOVED and ASK while a slot moves, failover after kill -9, a
// paused node. The tests share one cluster and run in order; each leaves it healthy.

#include "rogatory/common/cluster_redis_client.h"

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cluster_test_lua_scripts.h"
#include "gtest/gtest.h"
#include "redis_cluster.h"
#include "rogatory/common/platform.h"
#include "rogatory/common/pubsub_listener.h"

namespace rogatory::testing {
namespace {

using common::LuaScript;
using common::RedisClient;
using common::RunRedisCommand;
using common::RunRedisScript;

const LuaScript& SetGet() {
  static const auto* script = new LuaScript(std::string(common::cluster_test_lua::kSetGetProbe));
  return *script;
}

RedisCluster& Cluster() { return SharedRedisCluster(); }
RedisClient& Client() { return SharedClusterClient(); }

// A key ("k<n>{t<n>}") for each primary node index, the first found of each.
std::map<int, std::string> KeyPerPrimary() {
  std::map<int, std::string> out;
  for (int n = 0; out.size() < 3 && n < 1000; ++n) {
    const std::string key = absl::StrCat("k{t", n, "}");
    const int primary = Cluster().PrimaryOfKey(key);
    if (primary >= 0 && out.count(primary) == 0) out[primary] = key;
  }
  return out;
}

// A key whose slot `primary` does not own.
std::string KeyNotOn(int primary, int skip = 0) {
  for (int n = 0;; ++n) {
    const std::string key = absl::StrCat("other{o", n, "}");
    if (Cluster().PrimaryOfKey(key) != primary && skip-- == 0) return key;
  }
}

TEST(RedisKeySlotTest, IsRedisClusterSlotWithHashTags) {
  EXPECT_EQ(common::RedisKeySlot("foo"), 12182);
  EXPECT_EQ(common::RedisKeySlot("123456789"), 0x31C3 % 16384);
  EXPECT_EQ(common::RedisKeySlot("rg:{s0}:req:a"), common::RedisKeySlot("s0"));
  EXPECT_EQ(common::RedisKeySlot("a{}b"), common::RedisKeySlot("a{}b"));
  EXPECT_NE(common::RedisKeySlot("a{}b"), common::RedisKeySlot(""));
  for (const std::string key : {"rg:{s0}:x", "rg:{s15}:idx:all", "plain", "{a}{b}", "x{y"}) {
    EXPECT_EQ(absl::StrCat(common::RedisKeySlot(key), "\n"),
              Cluster().node(0).Cli(absl::StrCat("CLUSTER KEYSLOT '", key, "'")))
        << key;
  }
}

TEST(RedisCommandKeysTest, NamesTheKeysOfTheCommandsTheServicesSend) {
  using V = std::vector<absl::string_view>;
  EXPECT_EQ(common::RedisCommandKeys({"HGET", "k", "f"}), V{"k"});
  EXPECT_EQ(common::RedisCommandKeys({"PING"}), V{});
  EXPECT_EQ(common::RedisCommandKeys({"PUBLISH", "channel", "m"}), V{});
  EXPECT_EQ(common::RedisCommandKeys({"DEL", "a", "b"}), (V{"a", "b"}));
  EXPECT_EQ(common::RedisCommandKeys({"XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"}), V{"s"});
  EXPECT_EQ(common::RedisCommandKeys({"XINFO", "GROUPS", "s"}), V{"s"});
  EXPECT_EQ(common::RedisCommandKeys(
                {"XREAD", "COUNT", "1", "BLOCK", "10", "STREAMS", "a", "b", "0-0", "0-0"}),
            (V{"a", "b"}));
  EXPECT_EQ(common::RedisCommandKeys({"EVALSHA", "sha", "2", "a", "b", "arg"}), (V{"a", "b"}));
  // A SCAN of one hash tag's keys goes where they are; other SCANs have no key.
  EXPECT_EQ(common::RedisCommandKeys({"SCAN", "0", "MATCH", "rg:{s3}:req:*", "COUNT", "500"}),
            V{"rg:{s3}:req:*"});
  EXPECT_EQ(common::RedisCommandKeys({"SCAN", "0", "MATCH", "rg:*"}), V{});
  EXPECT_EQ(common::RedisCommandKeys({"SCAN", "0", "MATCH", "rg:{s*}:x"}), V{});
  EXPECT_EQ(common::RedisCommandKeys({"SCAN", "0"}), V{});
}

// The migrations walk each shard with SCAN MATCH rg:{sN}:...*: every shard's keys are found,
// whichever primary holds the shard (a SCAN sent to another primary finds nothing).
TEST(ClusterRedisClientTest, ScanOfOneHashTagFindsItsKeysOnWhicheverPrimaryHoldsThem) {
  for (int shard = 0; shard < 16; ++shard) {
    const std::string key = absl::StrCat("rg:{s", shard, "}:scanprobe");
    ASSERT_TRUE(RunRedisCommand(Client(), {"SET", key, "1"}).ok());
  }
  for (int shard = 0; shard < 16; ++shard) {
    const std::string key = absl::StrCat("rg:{s", shard, "}:scanprobe");
    std::vector<std::string> found;
    std::string cursor = "0";
    do {
      auto page = RunRedisCommand(
          Client(),
          {"SCAN", cursor, "MATCH", absl::StrCat("rg:{s", shard, "}:scan*"), "COUNT", "1000"});
      ASSERT_TRUE(page.ok()) << page.status();
      ASSERT_EQ(page->elements.size(), 2u);
      cursor = page->elements[0].str;
      for (const auto& k : page->elements[1].elements) found.push_back(k.str);
    } while (cursor != "0");
    EXPECT_EQ(found, std::vector<std::string>{key}) << "shard " << shard;
    ASSERT_TRUE(RunRedisCommand(Client(), {"DEL", key}).ok());
  }
}

TEST(ClusterRedisClientTest, RefusesADatabaseOtherThanZeroAndNoSeed) {
  common::ClusterRedisOptions options;
  EXPECT_EQ(common::NewClusterRedisClient(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.seeds.push_back({"127.0.0.1", Cluster().node(0).port()});
  options.node_options.url.db = 3;
  auto refused = common::NewClusterRedisClient(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("database 0 only"), absl::string_view::npos);

  common::ServerSettings settings;
  settings.redis_url = "redis://127.0.0.1:7000,127.0.0.1:7001/2";
  auto url = common::RedisUrlFromSettings(settings);
  EXPECT_EQ(url.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(url.status().message().find("database 0 only"), absl::string_view::npos)
      << url.status();
  settings.redis_url = "redis://127.0.0.1:7000/2";
  settings.redis_cluster = true;
  EXPECT_EQ(common::RedisUrlFromSettings(settings).status().code(),
            absl::StatusCode::kInvalidArgument);
  settings.redis_url = "redis://127.0.0.1:7000,127.0.0.2:7001";
  settings.redis_cluster = false;
  auto seeds = common::RedisUrlFromSettings(settings);
  ASSERT_TRUE(seeds.ok()) << seeds.status();
  ASSERT_EQ(seeds->seeds.size(), 2u);
  EXPECT_EQ(seeds->seeds[1].host, "127.0.0.2");
  EXPECT_EQ(seeds->seeds[1].port, 7001);
  EXPECT_TRUE(common::IsClusterUrl(*seeds));
}

TEST(ClusterRedisClientTest, CommandsAndScriptsReachEveryPrimary) {
  const auto keys = KeyPerPrimary();
  ASSERT_EQ(keys.size(), 3u);
  for (const auto& [primary, key] : keys) {
    auto set = RunRedisCommand(Client(), {"SET", key, absl::StrCat("v", primary)});
    ASSERT_TRUE(set.ok()) << key << ": " << set.status();
    // Written on the primary that owns the slot (redis-cli without -c does not follow MOVED).
    EXPECT_EQ(Cluster().node(primary).Cli(absl::StrCat("GET '", key, "'")),
              absl::StrCat("v", primary, "\n"));
    auto got = RunRedisScript(Client(), SetGet(), {key}, {absl::StrCat("s", primary)});
    ASSERT_TRUE(got.ok()) << key << ": " << got.status();
    EXPECT_EQ(got->str, absl::StrCat("s", primary));
    auto read = RunRedisCommand(Client(), {"GET", key});
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->str, absl::StrCat("s", primary));
  }
  // Keyless commands go to any node; FLUSHALL to every primary.
  EXPECT_TRUE(RunRedisCommand(Client(), {"PUBLISH", "rg:test", "hello"}).ok());
  auto flushed = RunRedisCommand(Client(), {"FLUSHALL"});
  ASSERT_TRUE(flushed.ok()) << flushed.status();
  for (const auto& [primary, key] : keys) {
    EXPECT_EQ(Cluster().node(primary).Cli("DBSIZE"), "0\n") << primary;
  }
}

TEST(ClusterRedisClientTest, RefusesKeysInSeveralSlotsWithoutSendingAnything) {
  const LuaScript two_keys{std::string(common::cluster_test_lua::kTwoKeysProbe)};
  auto cross = RunRedisScript(Client(), two_keys, {"rg:{s1}:a", "rg:{s2}:b"}, {});
  EXPECT_EQ(cross.status().code(), absl::StatusCode::kInvalidArgument) << cross.status();
  auto del = RunRedisCommand(Client(), {"DEL", "rg:{s1}:a", "rg:{s2}:b"});
  EXPECT_EQ(del.status().code(), absl::StatusCode::kInvalidArgument) << del.status();
  EXPECT_TRUE(RunRedisScript(Client(), two_keys, {"rg:{s1}:a", "rg:{s1}:b"}, {}).ok());
  EXPECT_TRUE(RunRedisCommand(Client(), {"DEL", "rg:{s1}:a", "rg:{s1}:b"}).ok());
}

// PUBLISH through the cluster client reaches a subscriber on another node; a subscriber
// whose first seed is down subscribes through the next.
TEST(ClusterRedisClientTest, PubSubWorksAcrossNodesAndPastADeadSeed) {
  auto url = common::ParseRedisUrl(Cluster().url());
  ASSERT_TRUE(url.ok());
  url->seeds.insert(url->seeds.begin(), common::RedisHostPort{"127.0.0.1", FreePort()});
  url->host = url->seeds.front().host;
  url->port = url->seeds.front().port;
  absl::Mutex mu;
  std::vector<std::string> received;
  common::PubSubListener::Callbacks callbacks;
  callbacks.on_message = [&](const std::string& payload) {
    absl::MutexLock lock(&mu);
    received.push_back(payload);
  };
  common::PubSubListener listener(*url, "rg:test:cluster", callbacks, absl::Milliseconds(100));
  for (int i = 0; i < 500 && listener.subscriptions() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(listener.subscriptions(), 0) << "never subscribed";
  ASSERT_TRUE(RunRedisCommand(Client(), {"PUBLISH", "rg:test:cluster", "appended"}).ok());
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(
      mu.AwaitWithTimeout(absl::Condition(
                              +[](std::vector<std::string>* r) { return !r->empty(); }, &received),
                          absl::Seconds(10)));
  EXPECT_EQ(received, std::vector<std::string>{"appended"});
}

// Calls on one key in a loop on a thread of its own, counting what failed and how.
class Load {
 public:
  Load(RedisClient& client, std::vector<std::string> keys) : keys_(std::move(keys)) {
    thread_ = std::thread([this, &client] {
      for (int n = 0; !stop_.load(); ++n) {
        const std::string& key = keys_[n % keys_.size()];
        auto r = (n % 2 == 0) ? RunRedisCommand(client, {"INCR", key})
                              : RunRedisScript(client, SetGet(), {key + ":s"}, {"x"});
        ++calls_;
        if (!r.ok()) {
          ++failed_;
          if (r.status().code() != absl::StatusCode::kUnavailable) {
            ++not_unavailable_;
            last_error_ = std::string(r.status().message());
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  ~Load() { Stop(); }
  int calls() const { return calls_; }
  int failed() const { return failed_; }
  int not_unavailable() const { return not_unavailable_; }
  const std::string& last_error() const { return last_error_; }

 private:
  std::vector<std::string> keys_;
  std::atomic<bool> stop_{false};
  std::atomic<int> calls_{0}, failed_{0}, not_unavailable_{0};
  std::string last_error_;
  std::thread thread_;
};

TEST(ClusterRedisClientTest, FollowsMovedAndAskWhileASlotMovesWithData) {
  const std::string key = "rg:{s0}:moving";
  const int slot = common::RedisKeySlot(key);
  // Several keys of the slot, so that the move can stop half-way.
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back(absl::StrCat("rg:{s0}:k", i));
  for (const std::string& k : keys) ASSERT_TRUE(RunRedisCommand(Client(), {"SET", k, "1"}).ok());
  const int from = Cluster().PrimaryOf(slot);
  ASSERT_GE(from, 0);
  const std::vector<int> primaries = Cluster().Primaries();
  const int to = primaries[0] != from ? primaries[0] : primaries[1];

  Load load(Client(), keys);
  Cluster().BeginSlotMove(slot, to);
  Cluster().MigrateKeys(slot, 10);  // half of them: the source answers ASK for those
  for (const std::string& k : keys) {
    auto r = RunRedisCommand(Client(), {"GET", k});
    EXPECT_TRUE(r.ok()) << k << ": " << r.status();
    auto s = RunRedisScript(Client(), SetGet(), {k + ":t"}, {"y"});
    EXPECT_TRUE(s.ok()) << k << ": " << s.status();
  }
  Cluster().EndSlotMove(slot, to);
  ASSERT_EQ(Cluster().PrimaryOf(slot), to);
  for (const std::string& k : keys) {
    auto r = RunRedisCommand(Client(), {"GET", k});
    ASSERT_TRUE(r.ok()) << k << ": " << r.status();
    EXPECT_FALSE(r->is_nil()) << k;
  }
  load.Stop();
  EXPECT_GT(load.calls(), 0);
  EXPECT_EQ(load.failed(), 0) << load.last_error();
  // Back where it was (the next tests pick nodes by slot, not by position).
  Cluster().BeginSlotMove(slot, from);
  Cluster().EndSlotMove(slot, from);
  EXPECT_EQ(Cluster().PrimaryOf(slot), from);
}

TEST(ClusterRedisClientTest, FailoverAfterKill9FailsOnlyItsSlotsAndOnlyUnavailable) {
  const std::string key = "rg:{s3}:failover";
  const int victim = Cluster().PrimaryOfKey(key);
  ASSERT_GE(victim, 0);
  const int replica = Cluster().ReplicaOf(victim);
  ASSERT_GE(replica, 0);
  const std::string elsewhere = KeyNotOn(victim);
  const std::string elsewhere2 = KeyNotOn(victim, 1);
  ASSERT_TRUE(RunRedisCommand(Client(), {"SET", key, "before"}).ok());
  // Let the replica have the write (replication is asynchronous).
  for (int i = 0; i < 200 && Cluster().node(replica).Cli("GET " + key) != "before\n"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Load others(Client(), {elsewhere, elsewhere2});

  Cluster().node(victim).Kill();
  int unavailable = 0;
  absl::Status other;
  bool recovered = false;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!recovered && std::chrono::steady_clock::now() < give_up) {
    auto r = RunRedisCommand(Client(), {"INCR", key + ":n"});
    if (r.ok()) {
      recovered = true;
    } else if (r.status().code() == absl::StatusCode::kUnavailable) {
      ++unavailable;
    } else {
      other = r.status();
    }
  }
  others.Stop();
  EXPECT_TRUE(recovered) << "the replica did not take over within 30 s";
  EXPECT_TRUE(other.ok()) << "a call to the failed node's slots failed otherwise: " << other;
  EXPECT_EQ(others.failed(), 0) << "calls to other nodes' slots failed: " << others.last_error();
  EXPECT_GT(others.calls(), 0);
  EXPECT_EQ(Cluster().PrimaryOfKey(key), replica);
  auto kept = RunRedisCommand(Client(), {"GET", key});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->str, "before");
  std::cout << "failover: " << unavailable << " calls to the failed primary's slots answered "
            << "UNAVAILABLE before its replica took over\n";
  Cluster().Restart(victim);  // rejoins as a replica
}

TEST(ClusterRedisClientTest, PausedNodeFailsOnlyTheCallsThatNeedItsSlotsWithinTheirDeadline) {
  common::AsyncRedisOptions fast = TestClientOptions();
  fast.command_timeout = absl::Milliseconds(300);
  auto client = ClusterClient(Cluster(), fast, absl::Seconds(3));
  const std::string key = "rg:{s7}:paused";
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", key, "1"}).ok());
  const int paused = Cluster().PrimaryOfKey(key);
  ASSERT_GE(paused, 0);
  const std::string elsewhere = KeyNotOn(paused);
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", elsewhere, "1"}).ok());

  Cluster().node(paused).Pause();
  int ok_elsewhere = 0;
  absl::Status failed_elsewhere;
  int answered_on_paused = 0;
  absl::Status not_unavailable;
  for (int i = 0; i < 5; ++i) {
    auto r = RunRedisCommand(*client, {"GET", key});
    ++answered_on_paused;  // it answered (the call did not hang)
    if (!r.ok() && r.status().code() != absl::StatusCode::kUnavailable) {
      not_unavailable = r.status();
    }
    auto e = RunRedisCommand(*client, {"GET", elsewhere});
    if (e.ok()) {
      ++ok_elsewhere;
    } else {
      failed_elsewhere = e.status();
    }
  }
  Cluster().node(paused).Resume();
  EXPECT_EQ(answered_on_paused, 5);
  EXPECT_TRUE(not_unavailable.ok()) << not_unavailable;
  EXPECT_EQ(ok_elsewhere, 5) << failed_elsewhere;
  // A pause longer than the node timeout fails the node over: wait for the cluster to settle.
  EXPECT_TRUE(Cluster().AwaitHealthy());
  EXPECT_TRUE(AwaitPong(*client));
  auto after = RunRedisCommand(*client, {"GET", key});
  EXPECT_TRUE(after.ok()) << after.status();
}

}  // namespace
}  // namespace rogatory::testing
