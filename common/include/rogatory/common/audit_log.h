#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rogatory/common/audit_chain.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/metrics.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"

// The Redis-backed, tamper-evident audit log (Directive 2016/680 Art 25).
//
// Call path (ChainedAuditor::Record): each request a call touched becomes one AuditEntry,
// authenticated at once with its own HMAC (the key never enters Redis), and appended to its
// shard's PENDING stream. Appends are group-committed: per shard at most one script is in
// flight, and every entry queued meanwhile goes in the next one, so under load many calls
// share one round trip. The call is answered once its batch is in Redis.
//
// Sealing (AuditSealer, background): one replica at a time per shard (a lease with a
// fencing token the sealing script checks) reads pending entries, re-checks each entry's
// own HMAC (an entry forged into the pending stream is moved to a rejected stream, never
// chained), chains them per request (AuditKey::ChainMac) and appends them to the request's
// chain list with its new head, in one script. Sealed heads are exported periodically (a
// JSON line per batch in `export_dir`, and a log line "audit chain heads"), each batch
// HMAC'd by the exporting replica, so truncating a chain's newest entries is detected
// against an exported head.
//
// Residual window: an entry is pending (authenticated by its own HMAC but not yet chained)
// for about one seal interval; someone able to write to Redis can DELETE pending entries
// in that window without detection (they cannot forge or edit them). Entries sealed after
// the last export can be truncated (with the head rewritten) undetected until the next
// export covers them.
//
// Keys (shard N of the request's id):
//   rg:{sN}:audit:pending        stream  fields r (request id), m (entry mac), e (entry)
//   rg:{sN}:audit:chain:<id>     list    EncodeSealedEntry, oldest first (append-only)
//   rg:{sN}:audit:heads          hash    request id -> "seq mac"
//   rg:{sN}:audit:anchors        hash    request id -> EncodeAnchor (after retention)
//   rg:{sN}:audit:oldest         zset    request id -> time (us) of its oldest kept entry
//   rg:{sN}:audit:rejected       stream  pending entries whose HMAC did not verify
//   rg:{sN}:audit:lease, :fence  the sealer lease and its fencing counter

namespace rogatory::common {

struct AuditKeys {
  static std::string Pending(int shard);
  static std::string Chain(int shard, absl::string_view request_id);
  static std::string Heads(int shard);
  static std::string Anchors(int shard);
  static std::string Oldest(int shard);
  static std::string Rejected(int shard);
  static std::string Lease(int shard);
  static std::string Fence(int shard);
};

// The shard of a request's audit chain: the one its id names ("rq-<shard>-<ulid>"), else a
// hash of the id (ids of other kinds).
int AuditShardOf(const Sharding& sharding, absl::string_view request_id);

// The entries a call's record makes: one per touched subject (duplicates of the same
// request, kind and detail collapsed; subjects already recorded by a store, and their
// repeats, left out), each with a new entry id and `now`.
std::vector<AuditEntry> AuditEntriesOf(const AuditRecord& record, absl::Time now);

struct ChainedAuditorOptions {
  int max_batch = 512;  // entries per append script
  // Appends are refused (UNAVAILABLE) while a shard's pending stream holds this many
  // entries (no sealer running): the backlog must not exhaust Redis' memory.
  int64_t max_pending = 1'000'000;
};

// Auditor writing chained entries for calls that touched requests, and a JSON log line
// for calls that touched none. Thread-safe.
class ChainedAuditor final : public Auditor {
 public:
  ChainedAuditor(RedisClient& redis, const Clock& clock, const Sharding& sharding,
                 std::shared_ptr<const AuditKey> key, Metrics* metrics,
                 ChainedAuditorOptions options = {});
  ~ChainedAuditor() override;

  void Record(AuditRecord record, std::function<void(absl::Status)> done) override;
  // The one entry of a single-subject record, for a store's own script (the pending stream
  // of the request's shard, like Record's appends).
  std::optional<PreparedAuditEntry> Prepare(const AuditRecord& record) override;

 private:
  struct Completion;
  struct Queued;
  struct ShardQueue;
  struct Counters;
  void Flush(int shard);
  void SendBatch(int shard, std::vector<Queued> batch);
  static std::vector<Queued> TakeBatch(std::vector<Queued>& queued, int max_batch);

  RedisClient& redis_;
  const Clock& clock_;
  const Sharding& sharding_;
  std::shared_ptr<const AuditKey> key_;
  ChainedAuditorOptions options_;
  std::vector<std::unique_ptr<ShardQueue>> shards_;
  std::unique_ptr<Counters> counters_;
};

struct AuditSealerOptions {
  std::string replica_id;  // unique per process
  int shard_count = 16;
  absl::Duration lease = absl::Seconds(10);
  // The safety net: every `interval` a replica tries to take (or renews) the shards' leases
  // and seals what is pending. A replica that does not hold shard 0's lease tries that one
  // only: one command per interval. Must stay below `lease`.
  absl::Duration interval = absl::Seconds(5);
  // Where Redis is, for the sealer's own blocking connection (issue 19): between passes the
  // holder waits in `XREAD BLOCK` on the pending streams of the shards it holds, so an append
  // by any process wakes it at once and an idle holder sends nothing until its safety net.
  // Unset: it polls every `interval`.
  std::optional<RedisUrl> wake_url;
  int batch = 500;         // pending entries per sealing step
  std::string export_dir;  // where head batches are appended; empty: log lines only
  absl::Duration export_interval = absl::Seconds(10);
  // Audit entries older than this are erased (oldest first, leaving an anchor); zero keeps
  // them forever.
  absl::Duration retention = absl::ZeroDuration();
  absl::Duration retention_interval = absl::Minutes(1);
  bool run_in_background = true;  // false: tests drive SealOnce / ExportNow / EraseExpired
};

// Seals pending entries into chains, exports heads and applies audit retention, on one
// background thread (blocking Redis calls are fine there). Thread-safe.
class AuditSealer {
 public:
  AuditSealer(RedisClient& redis, const Clock& clock, std::shared_ptr<const AuditKey> key,
              Metrics* metrics, AuditSealerOptions options);
  // Stops, exports what is buffered and releases this replica's leases.
  ~AuditSealer();
  AuditSealer(const AuditSealer&) = delete;
  AuditSealer& operator=(const AuditSealer&) = delete;

  // Seals every shard whose lease this replica holds or can take, until their pending
  // streams are empty. Returns the number of entries sealed.
  absl::StatusOr<int64_t> SealOnce();
  // Writes the heads sealed since the last export.
  absl::Status ExportNow();
  // Erases entries older than the retention from every shard this replica holds. Returns
  // the number erased.
  absl::StatusOr<int64_t> EraseExpired();

  // Stops the background thread (idempotent); the destructor calls it.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A request's chain as read for verification or listing. Blocking: for background threads,
// worker pools and tests, never gRPC callback threads or Redis callbacks.
absl::StatusOr<AuditChainVerdict> VerifyAuditChain(RedisClient& redis, const Sharding& sharding,
                                                   const AuditKey& key,
                                                   const std::string& request_id,
                                                   std::optional<AuditChainHead> expected);

struct AuditEntryPage {
  std::vector<SealedAuditEntry> entries;  // oldest first
  std::vector<AuditEntry> decoded;        // the same entries, decoded
  int64_t next_sequence = 0;              // 0 when there are no more
};
// Sealed entries of a request from sequence `from` (1 or less: the oldest kept).
absl::StatusOr<AuditEntryPage> ListAuditEntries(RedisClient& redis, const Sharding& sharding,
                                                const std::string& request_id, int64_t from,
                                                int page_size);

// A record of background work a service does on a request (a delivery, an erasure), with
// the service itself as caller: authority id `service` ("rogatory-notification"),
// is_service, role "service".
AuditRecord ServiceAuditRecord(absl::string_view service, absl::string_view method,
                               std::string request_id, AccessKind kind, std::string detail,
                               std::string trace_id, absl::StatusCode code = absl::StatusCode::kOk);
// Records and waits until the record is durable (or failed). Blocking: for background
// threads only, never gRPC callback threads or Redis callbacks.
absl::Status RecordAndWait(Auditor& auditor, AuditRecord record);

// A development key for runs without --audit-key-file (refused in production).
std::shared_ptr<const AuditKey> DevelopmentAuditKey();

}  // namespace rogatory::common
