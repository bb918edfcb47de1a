#include "rogatory/common/audit_log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "audit_scripts.h"
#include "fenced_lease.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "redis_connection.h"
#include "rogatory/common/await.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::common {
namespace {

std::string ShardKey(int shard, absl::string_view suffix) {
  return absl::StrCat(Sharding::Prefix(shard), "audit:", suffix);
}

std::string JsonHead(absl::string_view request_id, const AuditChainHead& head, int64_t time_us) {
  return absl::StrCat("{\"request_id\":", JsonQuote(request_id), ",\"sequence\":", head.sequence,
                      ",\"mac\":", JsonQuote(head.chain_mac), ",\"sealed_at_us\":", time_us, "}");
}

}  // namespace

std::string AuditKeys::Pending(int shard) { return ShardKey(shard, "pending"); }
std::string AuditKeys::Chain(int shard, absl::string_view request_id) {
  return ShardKey(shard, absl::StrCat("chain:", request_id));
}
std::string AuditKeys::Heads(int shard) { return ShardKey(shard, "heads"); }
std::string AuditKeys::Anchors(int shard) { return ShardKey(shard, "anchors"); }
std::string AuditKeys::Oldest(int shard) { return ShardKey(shard, "oldest"); }
std::string AuditKeys::Rejected(int shard) { return ShardKey(shard, "rejected"); }
std::string AuditKeys::Lease(int shard) { return ShardKey(shard, "lease"); }
std::string AuditKeys::Fence(int shard) { return ShardKey(shard, "fence"); }

int AuditShardOf(const Sharding& sharding, absl::string_view request_id) {
  auto shard = sharding.ShardOf("rq", request_id);
  if (shard.ok()) return *shard;
  return sharding.ShardFor(request_id);
}

std::vector<AuditEntry> AuditEntriesOf(const AuditRecord& record, absl::Time now) {
  std::vector<AuditEntry> entries;
  absl::flat_hash_set<std::string> seen;
  const std::string roles = absl::StrJoin(record.caller.roles, ",");
  const std::string outcome = absl::StatusCodeToString(record.code);
  auto key = [](const AuditSubject& s) {
    return absl::StrCat(s.request_id, "\n", AccessKindName(s.kind), "\n", s.detail);
  };
  // Subjects a store already recorded (and their repeats) get no second entry.
  for (const AuditSubject& s : record.subjects) {
    if (s.recorded) seen.insert(key(s));
  }
  for (const AuditSubject& s : record.subjects) {
    if (s.request_id.empty()) continue;
    const absl::string_view kind = AccessKindName(s.kind);
    if (!seen.insert(key(s)).second) continue;
    AuditEntry e;
    e.entry_id = NewUlid(now);
    e.time_us = absl::ToUnixMicros(now);
    e.request_id = s.request_id;
    e.method = record.method;
    e.caller = record.caller.authority_id;
    e.caller_state = record.caller.state;
    e.caller_roles = roles;
    e.caller_is_service = record.caller.is_service;
    e.kind = std::string(kind);
    e.detail = s.detail;
    e.justification = record.justification;
    e.outcome = outcome;
    e.trace_id = record.trace_id;
    entries.push_back(std::move(e));
  }
  return entries;
}

AuditRecord ServiceAuditRecord(absl::string_view service, absl::string_view method,
                               std::string request_id, AccessKind kind, std::string detail,
                               std::string trace_id, absl::StatusCode code) {
  AuditRecord r;
  r.method = std::string(method);
  r.caller.authority_id = std::string(service);
  r.caller.roles = {"service"};
  r.caller.is_service = true;
  r.trace_id = std::move(trace_id);
  r.code = code;
  r.subjects.push_back({std::move(request_id), kind, std::move(detail)});
  return r;
}

absl::Status RecordAndWait(Auditor& auditor, AuditRecord record) {
  return AwaitCallback<absl::Status>(
      [&](auto done) { auditor.Record(std::move(record), std::move(done)); });
}

std::shared_ptr<const AuditKey> DevelopmentAuditKey() {
  static const auto* key = new std::shared_ptr<const AuditKey>(std::make_shared<AuditKey>(
      *AuditKey::FromSecret("rogatory-development-audit-key-NOT-FOR-PRODUCTION-0001")));
  return *key;
}

// ---------------------------------------------------------------------------------------
// ChainedAuditor

struct ChainedAuditor::Completion {
  Completion(int n, std::function<void(absl::Status)> d) : remaining(n), done(std::move(d)) {}
  void Finish(const absl::Status& s) {
    {
      absl::MutexLock lock(&mu);
      if (!s.ok() && status.ok()) status = s;
    }
    if (remaining.fetch_sub(1) == 1) {
      absl::Status final_status;
      {
        absl::MutexLock lock(&mu);
        final_status = status;
      }
      done(final_status);
    }
  }
  std::atomic<int> remaining;
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  std::function<void(absl::Status)> done;
};

struct ChainedAuditor::Queued {
  std::string request_id;
  std::string mac;
  std::string entry;
  std::shared_ptr<Completion> completion;
};

struct ChainedAuditor::ShardQueue {
  absl::Mutex mu;
  std::vector<Queued> queued ABSL_GUARDED_BY(mu);
  bool in_flight ABSL_GUARDED_BY(mu) = false;
};

struct ChainedAuditor::Counters {
  prometheus::Counter* appended = nullptr;
  prometheus::Counter* failed = nullptr;
  prometheus::Counter* batches = nullptr;
};

ChainedAuditor::ChainedAuditor(RedisClient& redis, const Clock& clock, const Sharding& sharding,
                               std::shared_ptr<const AuditKey> key, Metrics* metrics,
                               ChainedAuditorOptions options)
    : redis_(redis),
      clock_(clock),
      sharding_(sharding),
      key_(std::move(key)),
      options_(options),
      counters_(std::make_unique<Counters>()) {
  for (int i = 0; i < sharding_.shard_count(); ++i) {
    shards_.push_back(std::make_unique<ShardQueue>());
  }
  if (metrics != nullptr) {
    auto& entries = prometheus::BuildCounter()
                        .Name("rogatory_audit_entries_appended_total")
                        .Help("Audit entries appended to the pending streams, by result.")
                        .Register(metrics->registry());
    counters_->appended = &entries.Add({{"result", "ok"}});
    counters_->failed = &entries.Add({{"result", "failed"}});
    counters_->batches = &prometheus::BuildCounter()
                              .Name("rogatory_audit_append_batches_total")
                              .Help("Append scripts run (entries per batch = entries / batches).")
                              .Register(metrics->registry())
                              .Add({});
  }
}

ChainedAuditor::~ChainedAuditor() {
  // Callbacks of batches in flight refer to this object: wait for them.
  for (auto& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    shard->mu.Await(absl::Condition(
        +[](bool* in_flight) { return !*in_flight; }, &shard->in_flight));
  }
}

std::optional<PreparedAuditEntry> ChainedAuditor::Prepare(const AuditRecord& record) {
  std::vector<AuditEntry> entries = AuditEntriesOf(record, clock_.Now());
  if (entries.size() != 1) return std::nullopt;
  PreparedAuditEntry out;
  out.request_id = entries[0].request_id;
  out.pending_key = AuditKeys::Pending(AuditShardOf(sharding_, out.request_id));
  out.entry = EncodeAuditEntry(entries[0]);
  out.mac = key_->EntryMac(out.entry);
  out.max_pending = options_.max_pending;
  return out;
}

void ChainedAuditor::Record(AuditRecord record, std::function<void(absl::Status)> done) {
  std::vector<AuditEntry> entries = AuditEntriesOf(record, clock_.Now());
  if (entries.empty()) {
    // Nothing about a request: a log line is the whole record.
    Log::Info("audit", {{"method", record.method},
                        {"caller", record.caller.authority_id},
                        {"code", absl::StatusCodeToString(record.code)},
                        {"trace_id", record.trace_id},
                        {"duration_ms", absl::ToDoubleMilliseconds(record.duration)}});
    done(absl::OkStatus());
    return;
  }
  auto completion = std::make_shared<Completion>(static_cast<int>(entries.size()), std::move(done));
  std::vector<int> touched;
  for (const AuditEntry& e : entries) {
    const int shard = AuditShardOf(sharding_, e.request_id);
    std::string encoded = EncodeAuditEntry(e);
    std::string mac = key_->EntryMac(encoded);
    {
      ShardQueue& q = *shards_[shard];
      absl::MutexLock lock(&q.mu);
      q.queued.push_back({e.request_id, std::move(mac), std::move(encoded), completion});
    }
    touched.push_back(shard);
  }
  for (int shard : touched) Flush(shard);
}

// Group commit: at most one append script per shard in flight; whatever queued meanwhile
// goes in the next one, sent from the previous one's callback.
void ChainedAuditor::Flush(int shard) {
  std::vector<Queued> batch;
  {
    ShardQueue& q = *shards_[shard];
    absl::MutexLock lock(&q.mu);
    if (q.in_flight || q.queued.empty()) return;
    q.in_flight = true;
    batch = TakeBatch(q.queued, options_.max_batch);
  }
  SendBatch(shard, std::move(batch));
}

std::vector<ChainedAuditor::Queued> ChainedAuditor::TakeBatch(std::vector<Queued>& queued,
                                                              int max_batch) {
  const size_t n = std::min(queued.size(), static_cast<size_t>(max_batch));
  std::vector<Queued> batch(std::make_move_iterator(queued.begin()),
                            std::make_move_iterator(queued.begin() + n));
  queued.erase(queued.begin(), queued.begin() + n);
  return batch;
}

// Runs with the shard marked in flight; the callback sends the next batch, or clears the
// mark when nothing is queued.
void ChainedAuditor::SendBatch(int shard, std::vector<Queued> batch) {
  internal::PendingAppend call;
  call.pending_key = AuditKeys::Pending(shard);
  call.max_pending = options_.max_pending;
  call.entries.reserve(batch.size());
  for (const Queued& e : batch) call.entries.push_back({e.request_id, e.mac, e.entry});
  auto shared_batch = std::make_shared<std::vector<Queued>>(std::move(batch));
  internal::AppendPending(
      redis_, std::move(call),
      [this, shard, shared_batch](absl::StatusOr<internal::AppendOutcome> r) {
        absl::Status status;
        if (!r.ok()) {
          status =
              absl::UnavailableError(absl::StrCat("audit log unavailable: ", r.status().message()));
        } else if (*r == internal::AppendOutcome::kBacklogFull) {
          status = absl::UnavailableError("audit log backlog full: no sealer running");
        }
        if (counters_->batches != nullptr) {
          counters_->batches->Increment();
          (status.ok() ? counters_->appended : counters_->failed)
              ->Increment(static_cast<double>(shared_batch->size()));
        }
        std::vector<Queued> next;
        {
          ShardQueue& q = *shards_[shard];
          absl::MutexLock lock(&q.mu);
          if (q.queued.empty()) {
            q.in_flight = false;
          } else {
            next = TakeBatch(q.queued, options_.max_batch);
          }
        }
        // `this` may be destroyed once the mark is cleared: nothing below uses it
        // unless a next batch keeps the shard in flight.
        const bool more = !next.empty();
        for (Queued& e : *shared_batch) e.completion->Finish(status);
        if (more) SendBatch(shard, std::move(next));
      });
}

// ---------------------------------------------------------------------------------------
// AuditSealer

namespace {

// The sealer's own blocking connection (issue 19): `XREAD BLOCK` on the pending streams of
// the shards the replica holds, so any process's append wakes the holder. Its own Redis
// connection (TLS, ACL user and password as the wake URL says), driven by the sealer's
// thread; Interrupt (from Stop) makes a blocked read return at once.
class PendingWaiter {
 public:
  explicit PendingWaiter(RedisUrl url) : conn_(std::move(url), absl::Seconds(2)) {}

  // Blocks until one of `keys` holds an entry, or `timeout`. Returns the indexes of the keys
  // that hold entries (none: timed out).
  absl::StatusOr<std::vector<int>> Wait(const std::vector<std::string>& keys,
                                        absl::Duration timeout) {
    const int64_t block_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout));
    std::vector<std::string> args = {"XREAD",  "COUNT", "1", "BLOCK", absl::StrCat(block_ms),
                                     "STREAMS"};
    for (const std::string& k : keys) args.push_back(k);
    for (size_t i = 0; i < keys.size(); ++i) args.push_back("0-0");
    // A reply later than the block means Redis went away: give up on it then.
    auto reply = conn_.Command(args, timeout + absl::Seconds(5));
    if (absl::IsCancelled(reply.status())) return absl::CancelledError("sealer stopping");
    if (!reply.ok()) {
      return absl::UnavailableError(absl::StrCat("audit sealer wait: ", reply.status().message()));
    }
    std::vector<int> woken;
    for (const RedisReply& stream : reply->elements) {
      if (stream.type != RedisReply::Type::kArray || stream.elements.empty()) continue;
      const std::string& name = stream.elements[0].str;
      for (size_t k = 0; k < keys.size(); ++k) {
        if (keys[k] == name) woken.push_back(static_cast<int>(k));
      }
    }
    return woken;
  }

  // Makes a blocked or later Wait return CANCELLED. Any thread.
  void Interrupt() { conn_.Interrupt(); }

 private:
  internal::BlockingRedisConnection conn_;
};

}  // namespace

struct AuditSealer::Impl {
  Impl(RedisClient& r, const Clock& c, std::shared_ptr<const AuditKey> k, Metrics* metrics,
       AuditSealerOptions o)
      : redis(r),
        clock(c),
        key(std::move(k)),
        options(std::move(o)),
        tokens(options.shard_count, 0) {
    if (options.wake_url.has_value() && options.run_in_background) {
      waiter = std::make_unique<PendingWaiter>(*options.wake_url);
    }
    if (metrics != nullptr) {
      auto& sealed_family = prometheus::BuildCounter()
                                .Name("rogatory_audit_entries_sealed_total")
                                .Help("Audit entries chained by this replica's sealer.")
                                .Register(metrics->registry());
      sealed = &sealed_family.Add({});
      rejected = &prometheus::BuildCounter()
                      .Name("rogatory_audit_entries_rejected_total")
                      .Help("Pending audit entries whose own HMAC did not verify (forged).")
                      .Register(metrics->registry())
                      .Add({});
      erased = &prometheus::BuildCounter()
                    .Name("rogatory_audit_entries_erased_total")
                    .Help("Audit entries erased by audit retention.")
                    .Register(metrics->registry())
                    .Add({});
      exported = &prometheus::BuildCounter()
                      .Name("rogatory_audit_heads_exported_total")
                      .Help("Chain heads exported by this replica.")
                      .Register(metrics->registry())
                      .Add({});
      seal_errors = &prometheus::BuildCounter()
                         .Name("rogatory_audit_seal_errors_total")
                         .Help("Sealing steps that failed (Redis errors, lost leases).")
                         .Register(metrics->registry())
                         .Add({});
    }
  }

  absl::StatusOr<int64_t> SealShard(int shard);
  absl::Status Export();
  absl::StatusOr<int64_t> EraseShard(int shard, int64_t cutoff_us);
  absl::StatusOr<int64_t> EraseRequest(int shard, int64_t token, const std::string& rid,
                                       int64_t cutoff_us);
  void Release();
  void Loop();
  // Seals a shard until its pending stream is drained (8 steps at most: every shard gets
  // its turn). Adds what it sealed to `total`; false on a failure, kept in `failure`.
  bool DrainShard(int shard, int64_t& total, absl::Status& failure)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu);

  RedisClient& redis;
  const Clock& clock;
  std::shared_ptr<const AuditKey> key;
  AuditSealerOptions options;

  absl::Mutex work_mu;  // one sealing/erasing/exporting pass at a time
  std::vector<int64_t> tokens ABSL_GUARDED_BY(work_mu);

  absl::Mutex export_mu;
  std::map<std::string, std::string> to_export ABSL_GUARDED_BY(export_mu);  // rid -> JSON

  absl::Mutex stop_mu;
  bool stop ABSL_GUARDED_BY(stop_mu) = false;
  std::thread thread;
  std::unique_ptr<PendingWaiter> waiter;  // null: polls every interval

  prometheus::Counter* sealed = nullptr;
  prometheus::Counter* rejected = nullptr;
  prometheus::Counter* erased = nullptr;
  prometheus::Counter* exported = nullptr;
  prometheus::Counter* seal_errors = nullptr;
};

absl::StatusOr<int64_t> AuditSealer::Impl::SealShard(int shard) {
  auto r = internal::TakeSealerLeaseAndRead(
      redis,
      {AuditKeys::Lease(shard), AuditKeys::Fence(shard), AuditKeys::Pending(shard),
       AuditKeys::Heads(shard), options.replica_id, options.lease, tokens[shard], options.batch});
  if (!r.ok()) {
    tokens[shard] = 0;
    return r.status();
  }
  const int64_t token = r->token;
  tokens[shard] = token;
  if (token == 0 || r->entries.empty()) return 0;

  absl::flat_hash_map<std::string, AuditChainHead> head_of;
  for (const auto& [rid, encoded] : r->heads) {
    AuditChainHead head;
    if (encoded.has_value()) {
      auto decoded = DecodeChainHead(*encoded);
      if (!decoded.ok()) {
        Log::Error("audit chain head in redis is malformed; sealing of the shard stopped",
                   {{"shard", shard}});
        return absl::DataLossError("malformed audit chain head");
      }
      head = *decoded;
    }
    head_of[rid] = head;
  }

  struct Group {
    std::vector<PendingAuditEntry> entries;
    int64_t first_time_us = 0;
  };
  std::vector<std::string> order;  // request ids in order of first appearance
  absl::flat_hash_map<std::string, Group> groups;
  internal::Seal seal;
  seal.lease_key = AuditKeys::Lease(shard);
  seal.pending_key = AuditKeys::Pending(shard);
  seal.heads_key = AuditKeys::Heads(shard);
  seal.oldest_key = AuditKeys::Oldest(shard);
  seal.rejected_key = AuditKeys::Rejected(shard);
  seal.token = token;
  std::vector<std::pair<std::string, std::string>>& rejects = seal.rejects;
  const size_t read = r->entries.size();
  for (internal::PendingEntry& e : r->entries) {
    seal.pending_ids.push_back(e.id);
    const std::string& id = e.id;
    if (!e.request_id.has_value() || !e.mac.has_value() || !e.entry.has_value()) {
      rejects.push_back({id, "incomplete pending entry"});
      continue;
    }
    // The key that MACed it, which may be an older one of the set (a replica that ran
    // before a rotation).
    auto expected_mac = key->EntryMacWithKeyOf(*e.mac, *e.entry);
    if (!expected_mac.ok()) {
      rejects.push_back({id, "entry HMAC made with an audit key this sealer does not hold"});
      continue;
    }
    if (*e.mac != *expected_mac) {
      rejects.push_back({id, "entry HMAC does not verify"});
      continue;
    }
    auto decoded = DecodeAuditEntry(*e.entry);
    if (!decoded.ok() || decoded->request_id != *e.request_id) {
      rejects.push_back({id, "entry does not match its request"});
      continue;
    }
    auto [it, inserted] = groups.try_emplace(*e.request_id);
    if (inserted) {
      order.push_back(*e.request_id);
      it->second.first_time_us = decoded->time_us;
    }
    it->second.entries.push_back({*std::move(e.entry), *std::move(e.mac)});
  }

  std::vector<std::pair<std::string, AuditChainHead>> new_heads;
  for (const std::string& rid : order) {
    const Group& g = groups[rid];
    const AuditChainHead prev = head_of[rid];
    std::vector<SealedAuditEntry> sealed_entries = SealAfter(*key, prev, g.entries);
    const AuditChainHead head{sealed_entries.back().sequence, sealed_entries.back().chain_mac};
    internal::SealedRequest request;
    request.request_id = rid;
    request.chain_key = AuditKeys::Chain(shard, rid);
    request.previous_sequence = prev.sequence;
    request.new_head = EncodeChainHead(head);
    request.first_time_us = g.first_time_us;
    for (const SealedAuditEntry& s : sealed_entries) {
      request.sealed_entries.push_back(EncodeSealedEntry(s));
    }
    seal.requests.push_back(std::move(request));
    new_heads.push_back({rid, head});
  }
  const size_t rejected_count = rejects.size();

  auto outcome = internal::SealPending(redis, std::move(seal));
  if (!outcome.ok()) return outcome.status();
  if (*outcome == internal::SealOutcome::kLeaseLost) {
    tokens[shard] = 0;
    return absl::AbortedError("audit sealer lease lost");
  }
  if (*outcome != internal::SealOutcome::kSealed) {
    return absl::AbortedError("audit chain head moved");
  }
  if (rejected_count > 0) {
    Log::Error("pending audit entries failed their HMAC check and were not chained",
               {{"shard", shard}, {"count", static_cast<int64_t>(rejected_count)}});
    if (rejected != nullptr) rejected->Increment(static_cast<double>(rejected_count));
  }
  const int64_t now_us = absl::ToUnixMicros(clock.Now());
  {
    absl::MutexLock lock(&export_mu);
    for (const auto& [rid, head] : new_heads) to_export[rid] = JsonHead(rid, head, now_us);
  }
  const int64_t count = static_cast<int64_t>(read - rejected_count);
  if (sealed != nullptr) sealed->Increment(static_cast<double>(count));
  return static_cast<int64_t>(read);
}

absl::StatusOr<int64_t> AuditSealer::Impl::EraseRequest(int shard, int64_t token,
                                                        const std::string& rid, int64_t cutoff_us) {
  constexpr int kPage = 200;
  auto page = internal::ReadChain(redis, {AuditKeys::Chain(shard, rid), AuditKeys::Heads(shard),
                                          AuditKeys::Anchors(shard), rid, 0, kPage});
  if (!page.ok()) return page.status();
  const std::vector<std::string>& elements = page->elements;
  if (elements.empty()) {
    (void)RunRedisCommand(redis, {"ZREM", AuditKeys::Oldest(shard), rid});
    return 0;
  }
  std::optional<AuditAnchor> anchor;
  if (page->anchor.has_value()) {
    auto a = DecodeAnchor(*page->anchor);
    if (!a.ok()) return a.status();
    anchor = *a;
  }
  // Only what verifies is erased behind an anchor: erasing must never launder tampering.
  AuditChainVerifier verifier(*key, rid, anchor);
  size_t k = 0;
  std::optional<SealedAuditEntry> last;
  int64_t next_score = 0;
  for (const std::string& element : elements) {
    auto sealed_entry = DecodeSealedEntry(element);
    if (!sealed_entry.ok()) break;
    auto entry = DecodeAuditEntry(sealed_entry->entry);
    if (!entry.ok()) break;
    next_score = entry->time_us;
    if (entry->time_us >= cutoff_us) break;
    if (!verifier.Add(element)) {
      Log::Error("audit chain fails verification; retention left it untouched", {{"shard", shard}});
      return 0;
    }
    last = *sealed_entry;
    ++k;
  }
  if (k == 0) {
    (void)RunRedisCommand(redis,
                          {"ZADD", AuditKeys::Oldest(shard), "XX", absl::StrCat(next_score), rid});
    return 0;
  }
  AuditAnchor a;
  a.sequence = last->sequence;
  a.chain_mac = last->chain_mac;
  a.erased_before_us = cutoff_us;
  a.mac = key->AnchorMac(rid, a.sequence, a.chain_mac, a.erased_before_us);
  auto erased = internal::EraseChainFront(
      redis, {AuditKeys::Lease(shard), AuditKeys::Chain(shard, rid), AuditKeys::Anchors(shard),
              AuditKeys::Oldest(shard), token, static_cast<int64_t>(k), elements[k - 1], rid,
              EncodeAnchor(a), next_score});
  if (!erased.ok()) return erased.status();
  if (erased->outcome != internal::ChainErased::Outcome::kErased) {
    return absl::AbortedError("audit chain changed during erasure");
  }
  return erased->count;
}

absl::StatusOr<int64_t> AuditSealer::Impl::EraseShard(int shard, int64_t cutoff_us) {
  const int64_t token = tokens[shard];
  if (token == 0) return 0;
  int64_t total = 0;
  // Bounded per pass; the next pass goes on.
  for (int round = 0; round < 20; ++round) {
    auto due = RunRedisCommand(redis, {"ZRANGEBYSCORE", AuditKeys::Oldest(shard), "-inf",
                                       absl::StrCat("(", cutoff_us), "LIMIT", "0", "50"});
    if (!due.ok()) return due.status();
    auto rids = ReplyStrings(*due, "audit retention due");
    if (!rids.ok()) return rids.status();
    if (rids->empty()) break;
    int64_t erased_now = 0;
    for (const std::string& rid : *rids) {
      auto n = EraseRequest(shard, token, rid, cutoff_us);
      if (!n.ok()) return n.status();
      erased_now += *n;
    }
    total += erased_now;
    if (erased_now == 0) break;
  }
  return total;
}

void AuditSealer::Impl::Release() {
  absl::MutexLock lock(&work_mu);
  for (int shard = 0; shard < options.shard_count; ++shard) {
    if (tokens[shard] == 0) continue;
    (void)internal::ReleaseFencedLease(
        redis, {AuditKeys::Lease(shard), options.replica_id, tokens[shard]});
    tokens[shard] = 0;
  }
}

AuditSealer::AuditSealer(RedisClient& redis, const Clock& clock,
                         std::shared_ptr<const AuditKey> key, Metrics* metrics,
                         AuditSealerOptions options)
    : impl_(std::make_unique<Impl>(redis, clock, std::move(key), metrics, std::move(options))) {
  if (impl_->options.run_in_background) {
    impl_->thread = std::thread([this] { impl_->Loop(); });
  }
}

AuditSealer::~AuditSealer() { Stop(); }

void AuditSealer::Stop() {
  {
    absl::MutexLock lock(&impl_->stop_mu);
    if (impl_->stop) return;
    impl_->stop = true;
  }
  if (impl_->waiter != nullptr) impl_->waiter->Interrupt();
  if (impl_->thread.joinable()) impl_->thread.join();
  (void)ExportNow();
  impl_->Release();
}

bool AuditSealer::Impl::DrainShard(int shard, int64_t& total, absl::Status& failure) {
  for (int round = 0; round < 8; ++round) {
    auto n = SealShard(shard);
    if (!n.ok()) {
      failure = n.status();
      if (seal_errors != nullptr) seal_errors->Increment();
      return false;
    }
    total += *n;
    if (*n < options.batch) break;
  }
  return true;
}

// Issue 19: a pass over every shard runs at start and then every `interval` only (the
// safety net: lease renewal, take-over, what a lost wake-up left); between passes the holder
// blocks in XREAD on its shards' pending streams and seals the shards that got entries. A
// replica holding no shard sleeps until its next pass, and in a pass tries shard 0 first:
// while another replica holds that one it touches no other shard.
void AuditSealer::Impl::Loop() {
  MonotonicTime next_export = clock.MonotonicNow() + options.export_interval;
  MonotonicTime next_retention = clock.MonotonicNow();
  MonotonicTime next_warning = clock.MonotonicNow();
  MonotonicTime next_full = clock.MonotonicNow();
  std::vector<int> woken;  // shards the wait reported; empty: a full pass
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu);
      if (stop) return;
    }
    int64_t total = 0;
    absl::Status failure;
    const MonotonicTime pass_start = clock.MonotonicNow();
    const bool full = woken.empty() || pass_start >= next_full;
    std::vector<int> held;
    {
      absl::MutexLock lock(&work_mu);
      if (full) {
        next_full = pass_start + options.interval;
        for (int shard = 0; shard < options.shard_count; ++shard) {
          const bool ok = DrainShard(shard, total, failure);
          // Shard 0 held elsewhere: that replica holds the others too, or takes them.
          if (shard == 0 && ok && tokens[0] == 0 && waiter != nullptr) break;
        }
      } else {
        for (int shard : woken) DrainShard(shard, total, failure);
      }
      for (int shard = 0; shard < options.shard_count; ++shard) {
        if (tokens[shard] != 0) held.push_back(shard);
      }
    }
    woken.clear();
    if (!failure.ok() && clock.MonotonicNow() >= next_warning) {
      Log::Warn("audit sealing failed; pending entries wait",
                {{"error", std::string(failure.message())}});
      next_warning = clock.MonotonicNow() + absl::Seconds(10);
    }
    const MonotonicTime now = clock.MonotonicNow();
    if (now >= next_export) {
      (void)Export();  // failures are logged; the heads go with the next change
      next_export = now + options.export_interval;
    }
    if (options.retention > absl::ZeroDuration() && now >= next_retention) {
      const int64_t cutoff_us = absl::ToUnixMicros(clock.Now() - options.retention);
      absl::MutexLock lock(&work_mu);
      for (int shard = 0; shard < options.shard_count; ++shard) {
        auto n = EraseShard(shard, cutoff_us);
        if (n.ok() && *n > 0 && erased != nullptr) erased->Increment(static_cast<double>(*n));
      }
      next_retention = now + options.retention_interval;
    }
    // A woken pass that sealed nothing (a failure, a lost lease) waits for the safety net
    // rather than spinning on the entries it could not seal.
    if (waiter != nullptr && !held.empty() && (full || total > 0)) {
      std::vector<std::string> keys;
      for (int shard : held) keys.push_back(AuditKeys::Pending(shard));
      auto r = waiter->Wait(keys, std::max(absl::Milliseconds(1), next_full - now));
      if (r.ok()) {
        for (int i : *r) woken.push_back(held[i]);
        continue;  // none woken: the wait reached the safety net, a full pass follows
      }
      if (absl::IsCancelled(r.status())) return;
      if (clock.MonotonicNow() >= next_warning) {
        Log::Warn("audit sealer cannot wait for appends; it polls",
                  {{"error", std::string(r.status().message())}});
        next_warning = clock.MonotonicNow() + absl::Seconds(10);
      }
    } else if (waiter == nullptr && total > 0) {
      continue;  // more may be waiting
    }
    absl::MutexLock lock(&stop_mu);
    stop_mu.AwaitWithTimeout(absl::Condition(&stop),
                             std::max(absl::Milliseconds(1), next_full - clock.MonotonicNow()));
  }
}

absl::StatusOr<int64_t> AuditSealer::SealOnce() {
  absl::MutexLock lock(&impl_->work_mu);
  int64_t total = 0;
  absl::Status failure;
  for (int shard = 0; shard < impl_->options.shard_count; ++shard) {
    for (;;) {
      auto n = impl_->SealShard(shard);
      if (!n.ok()) {
        failure = n.status();
        break;
      }
      total += *n;
      if (*n < impl_->options.batch) break;
    }
  }
  if (!failure.ok()) return failure;
  return total;
}

absl::Status AuditSealer::ExportNow() { return impl_->Export(); }

absl::Status AuditSealer::Impl::Export() {
  std::map<std::string, std::string> batch;
  {
    absl::MutexLock lock(&export_mu);
    batch.swap(to_export);
  }
  if (batch.empty()) return absl::OkStatus();
  const AuditSealerOptions& o = options;
  const int64_t now_us = absl::ToUnixMicros(clock.Now());
  constexpr size_t kPerLine = 500;
  std::vector<std::string> heads;
  for (auto& [rid, json] : batch) heads.push_back(std::move(json));
  absl::Status result;
  for (size_t start = 0; start < heads.size(); start += kPerLine) {
    const size_t end = std::min(heads.size(), start + kPerLine);
    const std::string heads_json =
        absl::StrCat("[", absl::StrJoin(heads.begin() + start, heads.begin() + end, ","), "]");
    const std::string batch_mac =
        key->Mac("export", absl::StrCat(o.replica_id, "\n", now_us, "\n", heads_json));
    if (!o.export_dir.empty()) {
      std::string safe_replica = o.replica_id;
      for (char& c : safe_replica) {
        if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
      }
      const std::string path = absl::StrCat(o.export_dir, "/audit-heads-", safe_replica, ".jsonl");
      const std::string line =
          absl::StrCat("{\"kind\":\"audit chain heads\",\"replica\":", JsonQuote(o.replica_id),
                       ",\"exported_at_us\":", now_us, ",\"key\":", JsonQuote(key->Fingerprint()),
                       ",\"heads\":", heads_json, ",\"batch_mac\":", JsonQuote(batch_mac), "}\n");
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
      bool written = fd >= 0 &&
                     ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                     ::fsync(fd) == 0;
      if (fd >= 0) ::close(fd);
      if (!written) {
        Log::Error("cannot write audit chain heads export", {{"path", path}});
        result = absl::UnavailableError("cannot write the audit head export");
      }
      Log::Info("audit chain heads", {{"replica", o.replica_id},
                                      {"count", static_cast<int64_t>(end - start)},
                                      {"exported_at_us", now_us},
                                      {"batch_mac", batch_mac},
                                      {"file", path}});
    } else {
      Log::Info("audit chain heads", {{"replica", o.replica_id},
                                      {"count", static_cast<int64_t>(end - start)},
                                      {"exported_at_us", now_us},
                                      {"key", key->Fingerprint()},
                                      {"heads", heads_json},
                                      {"batch_mac", batch_mac}});
    }
    if (exported != nullptr) exported->Increment(static_cast<double>(end - start));
  }
  return result;
}

absl::StatusOr<int64_t> AuditSealer::EraseExpired() {
  if (impl_->options.retention <= absl::ZeroDuration()) return 0;
  const int64_t cutoff_us = absl::ToUnixMicros(impl_->clock.Now() - impl_->options.retention);
  absl::MutexLock lock(&impl_->work_mu);
  int64_t total = 0;
  for (int shard = 0; shard < impl_->options.shard_count; ++shard) {
    auto n = impl_->EraseShard(shard, cutoff_us);
    if (!n.ok()) return n.status();
    total += *n;
  }
  if (impl_->erased != nullptr) impl_->erased->Increment(static_cast<double>(total));
  return total;
}

// ---------------------------------------------------------------------------------------
// Reading

namespace {

struct ChainPage {
  std::optional<AuditChainHead> head;
  std::optional<AuditAnchor> anchor;
  std::vector<std::string> elements;
};

absl::StatusOr<ChainPage> ReadChainPage(RedisClient& redis, int shard,
                                        const std::string& request_id, int64_t from, int count) {
  auto r = internal::ReadChain(redis, {AuditKeys::Chain(shard, request_id), AuditKeys::Heads(shard),
                                       AuditKeys::Anchors(shard), request_id, from, count});
  if (!r.ok()) return r.status();
  ChainPage page;
  if (r->head.has_value()) {
    auto head = DecodeChainHead(*r->head);
    if (head.ok())
      page.head = *head;
    else
      page.head = AuditChainHead{-1, ""};  // malformed: never matches
  }
  if (r->anchor.has_value()) {
    auto anchor = DecodeAnchor(*r->anchor);
    page.anchor = anchor.ok() ? *anchor : AuditAnchor{-1, "", 0, ""};
  }
  page.elements = std::move(r->elements);
  return page;
}

}  // namespace

absl::StatusOr<AuditChainVerdict> VerifyAuditChain(RedisClient& redis, const Sharding& sharding,
                                                   const AuditKey& key,
                                                   const std::string& request_id,
                                                   std::optional<AuditChainHead> expected) {
  constexpr int kPage = 500;
  const int shard = AuditShardOf(sharding, request_id);
  auto first = ReadChainPage(redis, shard, request_id, 0, kPage);
  if (!first.ok()) return first.status();
  const std::optional<AuditChainHead> head = first->head;
  AuditChainVerifier verifier(key, request_id, first->anchor, expected);
  ChainPage page = *std::move(first);
  bool any = false;
  for (;;) {
    bool stop = page.elements.size() < static_cast<size_t>(kPage);
    int64_t next = 0;
    for (const std::string& element : page.elements) {
      auto sealed = DecodeSealedEntry(element);
      // Entries sealed after the head was read are beyond this verification.
      if (sealed.ok() && head.has_value() && sealed->sequence > head->sequence &&
          head->sequence >= 0) {
        stop = true;
        break;
      }
      any = true;
      if (!verifier.Add(element)) {
        stop = true;
        break;
      }
      if (sealed.ok()) next = sealed->sequence + 1;
    }
    if (stop || next == 0) break;
    auto more = ReadChainPage(redis, shard, request_id, next, kPage);
    if (!more.ok()) return more.status();
    page = *std::move(more);
  }
  AuditChainVerdict verdict = verifier.Finish(head);
  if (verdict.intact && !head.has_value() && any) {
    verdict.intact = false;
    verdict.first_bad_sequence = verdict.head.sequence;
    verdict.problem = "the chain has entries but no recorded head";
  }
  return verdict;
}

absl::StatusOr<AuditEntryPage> ListAuditEntries(RedisClient& redis, const Sharding& sharding,
                                                const std::string& request_id, int64_t from,
                                                int page_size) {
  const int shard = AuditShardOf(sharding, request_id);
  auto page = ReadChainPage(redis, shard, request_id, from < 1 ? 0 : from, page_size);
  if (!page.ok()) return page.status();
  AuditEntryPage out;
  for (const std::string& element : page->elements) {
    auto sealed = DecodeSealedEntry(element);
    if (!sealed.ok()) return absl::DataLossError("an audit entry is malformed; verify the chain");
    auto entry = DecodeAuditEntry(sealed->entry);
    if (!entry.ok()) return absl::DataLossError("an audit entry is malformed; verify the chain");
    out.entries.push_back(*std::move(sealed));
    out.decoded.push_back(*std::move(entry));
  }
  if (out.entries.size() == static_cast<size_t>(page_size)) {
    out.next_sequence = out.entries.back().sequence + 1;
  }
  return out;
}

}  // namespace rogatory::common
