// The chained audit log on a real redis-server: group-committed appends from many threads
// and two replicas, sealing under leases, head export, retention, and the tampering an
// attacker with write access to Redis could try (done with redis-cli, as they would).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "redis_commands.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/audit_log.h"

namespace rogatory::common {
namespace {

using Steady = std::chrono::steady_clock;
constexpr int kShards = 4;

std::string RequestId(int shard, int i) {
  return absl::StrCat("rq-", shard, "-01hx", absl::StrFormat("%022d", i));
}

class AuditLogRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = Connect();
    key_ = std::make_shared<const AuditKey>(
        *AuditKey::FromSecret("redis-test-audit-key-0123456789-abcdef"));
  }

  std::unique_ptr<RedisClient> Connect() {
    auto client = rogatory::testing::ConnectedClient(server_);
    return client;
  }

  AuditSealerOptions SealerOptions(const std::string& replica) {
    AuditSealerOptions o;
    o.replica_id = replica;
    o.shard_count = kShards;
    o.run_in_background = false;
    return o;
  }

  static AuditRecord Call(const std::string& request_id, AccessKind kind = AccessKind::kRead) {
    AuditRecord r;
    r.method = "GetRequest";
    r.caller.authority_id = "FR-PARIS-TJ";
    r.caller.state = "FR";
    r.caller.roles = {"issuing"};
    r.justification = "case-review";
    r.trace_id = "0af7651916cd43dd8448eb211c80319c";
    r.subjects = {{request_id, kind, ""}};
    return r;
  }

  static absl::Status RecordAndWait(Auditor& auditor, AuditRecord record) {
    absl::Notification done;
    absl::Status result;
    auditor.Record(std::move(record), [&](absl::Status s) {
      result = s;
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  }

  void RecordN(Auditor& auditor, const std::string& request_id, int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(RecordAndWait(auditor, Call(request_id)).ok());
  }

  AuditChainVerdict Verify(const std::string& request_id,
                           std::optional<AuditChainHead> expected = std::nullopt) {
    auto v = VerifyAuditChain(*redis_, sharding_, *key_, request_id, expected);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : AuditChainVerdict{};
  }

  std::string ChainKey(const std::string& request_id) {
    return AuditKeys::Chain(AuditShardOf(sharding_, request_id), request_id);
  }

  std::vector<std::string> ChainElements(const std::string& request_id) {
    auto r = RunRedisCommand(*redis_, {"LRANGE", ChainKey(request_id), "0", "-1"});
    std::vector<std::string> out;
    if (r.ok()) {
      for (const auto& e : r->elements) out.push_back(e.str);
    }
    return out;
  }

  // A sealer of the production shape: running in the background, woken by its blocking
  // connection, with `interval` as its safety net.
  AuditSealerOptions WokenSealerOptions(const std::string& replica, absl::Duration interval) {
    AuditSealerOptions o = SealerOptions(replica);
    o.run_in_background = true;
    o.interval = interval;
    auto url = ParseRedisUrl(server_.url());
    EXPECT_TRUE(url.ok());
    if (url.ok()) o.wake_url = *url;
    return o;
  }

  // Whether the shard's lease is held by `replica`.
  bool Holds(int shard, const std::string& replica) {
    auto r = RunRedisCommand(*redis_, {"HGET", AuditKeys::Lease(shard), "owner"});
    return r.ok() && r->str == replica;
  }

  // redis-cli argument quoting (the stored elements hold no single quote).
  static std::string Q(const std::string& s) { return absl::StrCat("'", s, "'"); }

  testing::RedisServer server_;
  Sharding sharding_{kShards};
  SimulatedClock clock_;
  std::unique_ptr<RedisClient> redis_;
  std::shared_ptr<const AuditKey> key_;
};

TEST_F(AuditLogRedisTest, ConcurrentAppendersOnTwoReplicasAreAllSealedOnceAndChainsVerify) {
  auto redis_b = Connect();
  ChainedAuditor replica_a(*redis_, clock_, sharding_, key_, nullptr);
  ChainedAuditor replica_b(*redis_b, clock_, sharding_, key_, nullptr);
  AuditSealerOptions oa = SealerOptions("replica-a"), ob = SealerOptions("replica-b");
  oa.run_in_background = ob.run_in_background = true;
  oa.interval = ob.interval = absl::Milliseconds(5);
  oa.batch = ob.batch = 37;  // several sealing steps per shard
  AuditSealer sealer_a(*redis_, clock_, key_, nullptr, oa);
  AuditSealer sealer_b(*redis_b, clock_, key_, nullptr, ob);

  constexpr int kThreads = 8, kCallsPerThread = 150, kRequests = 12;
  std::vector<std::string> requests;
  for (int i = 0; i < kRequests; ++i) requests.push_back(RequestId(i % kShards, i));
  std::atomic<int> failures{0};
  std::atomic<int> outstanding{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Auditor& auditor = t % 2 == 0 ? static_cast<Auditor&>(replica_a) : replica_b;
      for (int i = 0; i < kCallsPerThread; ++i) {
        // Every call touches two requests; calls are not awaited one by one, so batches
        // carry many entries.
        AuditRecord r = Call(requests[(t + i) % kRequests]);
        r.subjects.push_back({requests[(t * 7 + i) % kRequests], AccessKind::kChange, "x"});
        outstanding.fetch_add(1);
        auditor.Record(std::move(r), [&](absl::Status s) {
          if (!s.ok()) failures.fetch_add(1);
          outstanding.fetch_sub(1);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto deadline = Steady::now() + std::chrono::seconds(30);
  while (outstanding.load() > 0 && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(outstanding.load(), 0);
  ASSERT_EQ(failures.load(), 0);

  auto pending = [&] {
    int64_t n = 0;
    for (int s = 0; s < kShards; ++s) {
      auto r = RunRedisCommand(*redis_, {"XLEN", AuditKeys::Pending(s)});
      n += r.ok() ? r->integer : 1;
    }
    return n;
  };
  while (pending() > 0 && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(pending(), 0);

  // Every entry is in exactly one chain, once, and every chain verifies.
  std::set<std::string> ids;
  int64_t total = 0;
  for (const std::string& rq : requests) {
    AuditChainVerdict v = Verify(rq);
    EXPECT_TRUE(v.intact) << rq << ": " << v.problem;
    int64_t from = 0;
    for (;;) {
      auto page = ListAuditEntries(*redis_, sharding_, rq, from, 100);
      ASSERT_TRUE(page.ok()) << page.status();
      for (const AuditEntry& e : page->decoded) {
        EXPECT_EQ(e.request_id, rq);
        EXPECT_TRUE(ids.insert(e.entry_id).second) << "duplicate " << e.entry_id;
        ++total;
      }
      if (page->next_sequence == 0) break;
      from = page->next_sequence;
    }
    EXPECT_EQ(v.entries_checked, static_cast<int64_t>(ChainElements(rq).size()));
  }
  EXPECT_EQ(total, 2 * kThreads * kCallsPerThread);
}

TEST_F(AuditLogRedisTest, CallWithoutSubjectsNeedsNoChainEntry) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditRecord r = Call("");
  r.subjects.clear();
  EXPECT_TRUE(RecordAndWait(auditor, r).ok());
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(RunRedisCommand(*redis_, {"XLEN", AuditKeys::Pending(s)})->integer, 0);
  }
}

TEST_F(AuditLogRedisTest, UnreachableRedisFailsTheRecordSoTheCallIsNotAnswered) {
  AsyncRedisOptions o;
  o.url = *ParseRedisUrl(absl::StrCat("redis://127.0.0.1:", testing::FreePort(), "/0"));
  o.command_timeout = absl::Milliseconds(200);
  auto dead = NewAsyncRedisClient(o);
  ChainedAuditor auditor(*dead, clock_, sharding_, key_, nullptr);
  absl::Status s = RecordAndWait(auditor, Call(RequestId(1, 1)));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_F(AuditLogRedisTest, FullBacklogRefusesAppendsInsteadOfGrowingWithoutBound) {
  ChainedAuditorOptions options;
  options.max_pending = 2;
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr, options);
  const std::string rq = RequestId(2, 1);
  EXPECT_TRUE(RecordAndWait(auditor, Call(rq)).ok());
  EXPECT_TRUE(RecordAndWait(auditor, Call(rq)).ok());
  EXPECT_EQ(RecordAndWait(auditor, Call(rq)).code(), absl::StatusCode::kUnavailable);
}

TEST_F(AuditLogRedisTest, OnlyTheLeaseholderSealsAShard) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealer first(*redis_, clock_, key_, nullptr, SealerOptions("first"));
  AuditSealer second(*redis_, clock_, key_, nullptr, SealerOptions("second"));
  const std::string rq = RequestId(3, 1);
  RecordN(auditor, rq, 2);
  EXPECT_EQ(*first.SealOnce(), 2);
  RecordN(auditor, rq, 3);
  EXPECT_EQ(*second.SealOnce(), 0);  // the shards are first's
  EXPECT_EQ(*first.SealOnce(), 3);
  first.Stop();  // releases its leases
  RecordN(auditor, rq, 1);
  EXPECT_EQ(*second.SealOnce(), 1);
  AuditChainVerdict v = Verify(rq);
  EXPECT_TRUE(v.intact) << v.problem;
  EXPECT_EQ(v.head.sequence, 6);
}

// Rotation of the audit key (issue 21, item 1), as a rolling update runs it: a replica
// still on the old key A writes entries that a replica already rotated to B seals, old
// replicas keep sealing under A for a while, and every chain verifies with {A, B} and fails
// naming A without it. Entries stay in Redis as written: no re-MACing.
TEST_F(AuditLogRedisTest, ChainsVerifyAcrossAKeyRotationDuringARollingUpdate) {
  const std::string secret_a = "redis-test-audit-key-0123456789-abcdef";  // key_, "default"
  const std::string secret_b = "rotated-audit-key-B-0123456789-abcdef!!";
  auto rotated = std::make_shared<const AuditKey>(
      *AuditKey::FromKeySet("2026-12", {{"default", secret_a}, {"2026-12", secret_b}}));
  ChainedAuditor old_replica(*redis_, clock_, sharding_, key_, nullptr);
  ChainedAuditor new_replica(*redis_, clock_, sharding_, rotated, nullptr);
  const std::string rq = RequestId(2, 9);

  {
    AuditSealer old_sealer(*redis_, clock_, key_, nullptr, SealerOptions("old"));
    RecordN(old_replica, rq, 2);
    EXPECT_EQ(*old_sealer.SealOnce(), 2);  // sealed under A
  }                                        // its leases released: the rotated replica takes over
  AuditSealer new_sealer(*redis_, clock_, rotated, nullptr, SealerOptions("new"));
  RecordN(old_replica, rq, 1);  // MACed under A, sealed under B
  RecordN(new_replica, rq, 2);  // MACed and sealed under B
  EXPECT_EQ(*new_sealer.SealOnce(), 3);
  EXPECT_EQ(RunRedisCommand(*redis_, {"XLEN", AuditKeys::Rejected(2)})->integer, 0);

  auto with_both = VerifyAuditChain(*redis_, sharding_, *rotated, rq, std::nullopt);
  ASSERT_TRUE(with_both.ok()) << with_both.status();
  EXPECT_TRUE(with_both->intact) << with_both->problem;
  EXPECT_EQ(with_both->entries_checked, 5);
  EXPECT_EQ(with_both->head.chain_mac.substr(0, 8), "2026-12:");

  const AuditKey b_only = *AuditKey::FromKeySet("2026-12", {{"2026-12", secret_b}});
  auto without_a = VerifyAuditChain(*redis_, sharding_, b_only, rq, std::nullopt);
  ASSERT_TRUE(without_a.ok()) << without_a.status();
  EXPECT_FALSE(without_a->intact);
  EXPECT_EQ(without_a->first_bad_sequence, 1);
  EXPECT_NE(without_a->problem.find("audit key \"default\""), std::string::npos)
      << without_a->problem;
}

TEST_F(AuditLogRedisTest, EditedEntryInRedisIsDetected) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealer sealer(*redis_, clock_, key_, nullptr, SealerOptions("r"));
  const std::string rq = RequestId(1, 7);
  RecordN(auditor, rq, 4);
  ASSERT_EQ(*sealer.SealOnce(), 4);
  ASSERT_TRUE(Verify(rq).intact);

  // The attacker rewrites who read the request (same length, so the entry still parses).
  const std::string original = ChainElements(rq)[2];
  const std::string edited = absl::StrReplaceAll(original, {{"FR-PARIS-TJ", "FR-LYON-TGI"}});
  ASSERT_NE(edited, original);
  server_.Cli(absl::StrCat("LSET ", Q(ChainKey(rq)), " 2 ", Q(edited)));
  ASSERT_EQ(ChainElements(rq)[2], edited);

  AuditChainVerdict v = Verify(rq);
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_bad_sequence, 3);
  EXPECT_NE(v.problem.find("edited"), std::string::npos) << v.problem;
}

TEST_F(AuditLogRedisTest, ChainRecomputedWithoutTheKeyAndWrittenIntoRedisIsDetected) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealer sealer(*redis_, clock_, key_, nullptr, SealerOptions("r"));
  const std::string rq = RequestId(2, 9);
  RecordN(auditor, rq, 3);
  ASSERT_EQ(*sealer.SealOnce(), 3);

  const AuditKey guessed = *AuditKey::FromSecret("the-attackers-guess-of-the-audit-key!!");
  for (const bool plain_sha256 : {false, true}) {
    // The attacker drops the caller of entry 2 from the history, edits entry 1, and
    // recomputes every MAC and the chain with what they have.
    std::vector<std::string> forged;
    std::string previous;
    int64_t seq = 0;
    for (const std::string& element : ChainElements(rq)) {
      SealedAuditEntry s = *DecodeSealedEntry(element);
      AuditEntry e = *DecodeAuditEntry(s.entry);
      if (s.sequence == 2 && forged.size() == 1) continue;
      e.outcome = "NOT_FOUND";
      s.entry = EncodeAuditEntry(e);
      s.sequence = ++seq;
      if (plain_sha256) {
        s.entry_mac = Sha256Hex(absl::StrCat("entry\n", s.entry));
        s.chain_mac = Sha256Hex(absl::StrCat("chain\n", previous, "\n", seq, "\n", s.entry));
      } else {
        s.entry_mac = guessed.EntryMac(s.entry);
        s.chain_mac = guessed.ChainMac(previous, seq, s.entry);
      }
      previous = s.chain_mac;
      forged.push_back(EncodeSealedEntry(s));
    }
    std::string push = absl::StrCat("RPUSH ", Q(ChainKey(rq)));
    for (const auto& f : forged) absl::StrAppend(&push, " ", Q(f));
    server_.Cli(absl::StrCat("DEL ", Q(ChainKey(rq))));
    server_.Cli(push);
    server_.Cli(absl::StrCat("HSET ", Q(AuditKeys::Heads(AuditShardOf(sharding_, rq))), " ", Q(rq),
                             " ", Q(absl::StrCat(seq, " ", previous))));
    ASSERT_EQ(ChainElements(rq), forged);

    AuditChainVerdict v = Verify(rq);
    EXPECT_FALSE(v.intact) << (plain_sha256 ? "sha256" : "wrong key");
    EXPECT_EQ(v.first_bad_sequence, 1);
  }
}

TEST_F(AuditLogRedisTest, DeletedMiddleEntryIsDetected) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealer sealer(*redis_, clock_, key_, nullptr, SealerOptions("r"));
  const std::string rq = RequestId(0, 3);
  RecordN(auditor, rq, 5);
  ASSERT_EQ(*sealer.SealOnce(), 5);
  const std::string middle = ChainElements(rq)[2];
  EXPECT_EQ(server_.Cli(absl::StrCat("LREM ", Q(ChainKey(rq)), " 1 ", Q(middle))), "1\n");
  ASSERT_EQ(ChainElements(rq).size(), 4u);
  AuditChainVerdict v = Verify(rq);
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_bad_sequence, 3);
}

TEST_F(AuditLogRedisTest, TruncatedTailIsDetectedAgainstTheExportedHead) {
  char dir_template[] = "/tmp/rogatory-audit-export-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealerOptions o = SealerOptions("replica-1");
  o.export_dir = dir;
  AuditSealer sealer(*redis_, clock_, key_, nullptr, o);
  const std::string rq = RequestId(1, 5);
  RecordN(auditor, rq, 5);
  ASSERT_EQ(*sealer.SealOnce(), 5);
  ASSERT_TRUE(sealer.ExportNow().ok());

  // The exported line names the request's head; its batch HMAC verifies with the key.
  std::ifstream in(dir + "/audit-heads-replica-1.jsonl");
  std::stringstream text;
  text << in.rdbuf();
  const std::string line = text.str();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      line, m,
      std::regex(absl::StrCat("\\{\"request_id\":\"", rq,
                              "\",\"sequence\":([0-9]+),\"mac\":\"([0-9a-f]{64})\""))))
      << line;
  const AuditChainHead exported{std::stoll(m[1]), m[2]};
  EXPECT_EQ(exported.sequence, 5);
  std::smatch batch;
  ASSERT_TRUE(std::regex_search(
      line, batch,
      std::regex(
          "\"exported_at_us\":([0-9]+),.*\"heads\":(\\[.*\\]),\"batch_mac\":\"([0-9a-f]+)\"")));
  EXPECT_EQ(batch[3].str(),
            key_->Mac("export", absl::StrCat("replica-1\n", batch[1].str(), "\n", batch[2].str())));

  // The attacker removes the two newest entries and rewrites the head to match.
  server_.Cli(absl::StrCat("RPOP ", Q(ChainKey(rq)), " 2"));
  const SealedAuditEntry third = *DecodeSealedEntry(ChainElements(rq).back());
  server_.Cli(absl::StrCat("HSET ", Q(AuditKeys::Heads(AuditShardOf(sharding_, rq))), " ", Q(rq),
                           " ", Q(absl::StrCat(third.sequence, " ", third.chain_mac))));
  EXPECT_TRUE(Verify(rq).intact);  // undetectable from Redis alone: the documented residue
  AuditChainVerdict v = Verify(rq, exported);
  EXPECT_FALSE(v.intact);
  EXPECT_EQ(v.first_bad_sequence, 4);
  std::filesystem::remove_all(dir);
}

TEST_F(AuditLogRedisTest, ForgedPendingEntryIsRejectedNotChained) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealer sealer(*redis_, clock_, key_, nullptr, SealerOptions("r"));
  const std::string rq = RequestId(3, 4);
  RecordN(auditor, rq, 1);
  AuditEntry fake;
  fake.entry_id = "forged";
  fake.request_id = rq;
  fake.caller = "NOBODY";
  const std::string body = EncodeAuditEntry(fake);
  server_.Cli(absl::StrCat("XADD ", Q(AuditKeys::Pending(3)), " '*' r ", Q(rq), " m ",
                           Q(Sha256Hex(body)), " e ", Q(body)));
  RecordN(auditor, rq, 1);
  EXPECT_EQ(*sealer.SealOnce(), 3);
  AuditChainVerdict v = Verify(rq);
  EXPECT_TRUE(v.intact) << v.problem;
  EXPECT_EQ(v.entries_checked, 2);
  EXPECT_EQ(RunRedisCommand(*redis_, {"XLEN", AuditKeys::Rejected(3)})->integer, 1);
  EXPECT_EQ(RunRedisCommand(*redis_, {"XLEN", AuditKeys::Pending(3)})->integer, 0);
}

TEST_F(AuditLogRedisTest, RetentionErasesTheOldestBehindAnAnchorAndTheRestVerifies) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealerOptions o = SealerOptions("r");
  o.retention = absl::Hours(24);
  AuditSealer sealer(*redis_, clock_, key_, nullptr, o);
  const std::string rq = RequestId(2, 2);
  RecordN(auditor, rq, 3);
  ASSERT_EQ(*sealer.SealOnce(), 3);
  clock_.Advance(absl::Hours(20));
  RecordN(auditor, rq, 2);
  ASSERT_EQ(*sealer.SealOnce(), 2);
  EXPECT_EQ(*sealer.EraseExpired(), 0);
  clock_.Advance(absl::Hours(5));  // the first three are now 25 h old
  EXPECT_EQ(*sealer.EraseExpired(), 3);
  EXPECT_EQ(ChainElements(rq).size(), 2u);
  AuditChainVerdict v = Verify(rq);
  EXPECT_TRUE(v.intact) << v.problem;
  EXPECT_EQ(v.first_sequence, 4);
  EXPECT_EQ(v.entries_checked, 2);
  // The verdict names the anchor it verified from (issue 16, item 1).
  ASSERT_TRUE(v.anchor.has_value());
  EXPECT_EQ(v.anchor->sequence, 3);
  // New entries continue the chain after retention.
  RecordN(auditor, rq, 1);
  ASSERT_EQ(*sealer.SealOnce(), 1);
  v = Verify(rq);
  EXPECT_TRUE(v.intact) << v.problem;
  EXPECT_EQ(v.head.sequence, 6);
  // Everything erased: the anchor alone carries the chain on.
  clock_.Advance(absl::Hours(48));
  EXPECT_EQ(*sealer.EraseExpired(), 3);
  v = Verify(rq);
  EXPECT_TRUE(v.intact) << v.problem;
  EXPECT_EQ(v.head.sequence, 6);
  EXPECT_EQ(v.entries_checked, 0);
  ASSERT_TRUE(v.anchor.has_value());
  EXPECT_EQ(v.anchor->sequence, 6);
}

// Retention frees memory, so it must go on when Redis is full (maxmemory, noeviction): the
// sealer keeps renewing its lease then (the lease-and-read script runs when full), and the
// erasure runs under that lease.
TEST_F(AuditLogRedisTest, RetentionStillErasesWhenRedisIsFull) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealerOptions o = SealerOptions("r");
  o.retention = absl::Hours(1);
  AuditSealer sealer(*redis_, clock_, key_, nullptr, o);
  const std::string rq = RequestId(1, 9);
  RecordN(auditor, rq, 3);
  ASSERT_EQ(*sealer.SealOnce(), 3);

  ASSERT_TRUE(RunRedisCommand(*redis_, {"CONFIG", "SET", "maxmemory-policy", "noeviction"}).ok());
  ASSERT_TRUE(RunRedisCommand(*redis_, {"CONFIG", "SET", "maxmemory", "1"}).ok());
  auto refused = RunRedisCommand(*redis_, {"SET", "filler", "x"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_EQ(RecordAndWait(auditor, Call(rq)).code(), absl::StatusCode::kUnavailable);

  auto renewed = sealer.SealOnce();  // renews the lease; nothing new is pending
  EXPECT_TRUE(renewed.ok()) << renewed.status();
  clock_.Advance(absl::Hours(2));
  auto erased = sealer.EraseExpired();
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(*erased, 3);

  ASSERT_TRUE(RunRedisCommand(*redis_, {"CONFIG", "SET", "maxmemory", "0"}).ok());
  AuditChainVerdict v = Verify(rq);
  EXPECT_TRUE(v.intact) << v.problem;
  EXPECT_EQ(v.entries_checked, 0);
  ASSERT_TRUE(v.anchor.has_value());
  EXPECT_EQ(v.anchor->sequence, 3);
}

TEST_F(AuditLogRedisTest, RetentionLeavesATamperedChainUntouched) {
  ChainedAuditor auditor(*redis_, clock_, sharding_, key_, nullptr);
  AuditSealerOptions o = SealerOptions("r");
  o.retention = absl::Hours(1);
  AuditSealer sealer(*redis_, clock_, key_, nullptr, o);
  const std::string rq = RequestId(0, 8);
  RecordN(auditor, rq, 3);
  ASSERT_EQ(*sealer.SealOnce(), 3);
  const std::string first = ChainElements(rq)[0];
  server_.Cli(absl::StrCat("LSET ", Q(ChainKey(rq)), " 0 ",
                           Q(absl::StrReplaceAll(first, {{"case-review", "case-REVIEW"}}))));
  clock_.Advance(absl::Hours(2));
  EXPECT_EQ(*sealer.EraseExpired(), 0);  // erasing would launder the edit
  EXPECT_FALSE(Verify(rq).intact);
}

// Issue 19 item 1: an idle system's sealers cost Redis nothing beyond their safety net. Two
// replicas, safety net 5 s: once the first holds every shard, neither sends a command for
// 3 s (the old sealer: one lease-and-read script per shard every 200 ms on every replica).
TEST_F(AuditLogRedisTest, IdleSealersHolderAndNonHolderSendNothingBeyondTheirSafetyNet) {
  auto redis_b = Connect();
  AuditSealer sealer_a(*redis_, clock_, key_, nullptr,
                       WokenSealerOptions("replica-a", absl::Seconds(5)));
  const auto deadline = Steady::now() + std::chrono::seconds(5);
  while (!Holds(kShards - 1, "replica-a") && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(Holds(0, "replica-a"));
  ASSERT_TRUE(Holds(kShards - 1, "replica-a"));
  AuditSealer sealer_b(*redis_b, clock_, key_, nullptr,
                       WokenSealerOptions("replica-b", absl::Seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // b's first (failed) take
  testing::CommandCounter commands(*redis_);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_LE(commands.Total(), 1) << "idle sealers over 3 s";
  for (int shard = 0; shard < kShards; ++shard) EXPECT_TRUE(Holds(shard, "replica-a")) << shard;
}

// Issue 19 item 1: with a safety net of 60 s, entries appended by another process's auditor
// are sealed at once: the holder's blocking read wakes on the append.
TEST_F(AuditLogRedisTest, AppendedEntriesAreSealedPromptlyAlthoughTheSafetyNetIs60s) {
  AuditSealer sealer(*redis_, clock_, key_, nullptr,
                     WokenSealerOptions("replica-a", absl::Seconds(60)));
  const auto held_by = Steady::now() + std::chrono::seconds(5);
  while (!Holds(kShards - 1, "replica-a") && Steady::now() < held_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(Holds(kShards - 1, "replica-a"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // idle, blocked in its read
  auto other_process = Connect();
  ChainedAuditor auditor(*other_process, clock_, sharding_, key_, nullptr);
  for (int round = 1; round <= 3; ++round) {
    const std::string rq = RequestId(round % kShards, 100 + round);
    const auto start = Steady::now();
    ASSERT_TRUE(RecordAndWait(auditor, Call(rq)).ok());
    while (ChainElements(rq).empty() && Steady::now() - start < std::chrono::seconds(3)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto waited = Steady::now() - start;
    EXPECT_EQ(ChainElements(rq).size(), 1u) << rq;
    EXPECT_LT(waited, std::chrono::seconds(1)) << "round " << round;
    EXPECT_TRUE(Verify(rq).intact);
  }
}

// Issue 19 item 1: a replica that does not hold the lease sends nothing for the sealer until
// its safety net, and then takes over the shards the stopped holder released.
TEST_F(AuditLogRedisTest, NonHolderTakesOverAtItsSafetyNetAfterTheHolderStops) {
  auto redis_b = Connect();
  auto sealer_a = std::make_unique<AuditSealer>(*redis_, clock_, key_, nullptr,
                                                WokenSealerOptions("replica-a", absl::Seconds(5)));
  const auto held_by = Steady::now() + std::chrono::seconds(5);
  while (!Holds(kShards - 1, "replica-a") && Steady::now() < held_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(Holds(kShards - 1, "replica-a"));
  AuditSealer sealer_b(*redis_b, clock_, key_, nullptr,
                       WokenSealerOptions("replica-b", absl::Seconds(1)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto stop_start = Steady::now();
  sealer_a.reset();  // releases its leases
  EXPECT_LT(Steady::now() - stop_start, std::chrono::seconds(1)) << "stop waits for its read";
  const std::string rq = RequestId(2, 7);
  ChainedAuditor auditor(*redis_b, clock_, sharding_, key_, nullptr);
  ASSERT_TRUE(RecordAndWait(auditor, Call(rq)).ok());
  const auto start = Steady::now();
  while (ChainElements(rq).empty() && Steady::now() - start < std::chrono::seconds(4)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ChainElements(rq).size(), 1u);
  for (int shard = 0; shard < kShards; ++shard) EXPECT_TRUE(Holds(shard, "replica-b")) << shard;
}

}  // namespace
}  // namespace rogatory::common
