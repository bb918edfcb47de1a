#pragma once

// The audit log's Redis scripts (lua/audit_*.lua), one typed call each (issue 17, item 2).
// Internal to common: audit_log.cc is their only caller. The calls build each script's
// KEYS and ARGV from named fields and read its reply with redis_reply.h; a reply of another
// shape than the script's header promises is INTERNAL. The key names themselves are
// AuditKeys' (audit_log.h): every key a script touches is one of the fields here. The
// sealer's lease is common's fenced lease (fenced_lease.h), released with
// ReleaseFencedLease.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rogatory/common/redis.h"

namespace rogatory::common::internal {

// lua/audit_append.lua: appends entries to a shard's pending stream unless it holds
// `max_pending` entries already (then none).
struct PendingAppend {
  struct Entry {
    std::string request_id;
    std::string mac;    // the entry's own HMAC
    std::string entry;  // EncodeAuditEntry
  };
  std::string pending_key;
  int64_t max_pending = 0;
  std::vector<Entry> entries;
};
enum class AppendOutcome { kAppended, kBacklogFull };
// `done` runs once, on the client's thread.
void AppendPending(RedisClient& redis, PendingAppend call,
                   std::function<void(absl::StatusOr<AppendOutcome>)> done);

// lua/audit_lease_and_read.lua: takes or renews a shard's sealer lease (renewing only under
// `held_token`), then reads up to `count` pending entries and their requests' heads.
struct SealerLeaseAndRead {
  std::string lease_key;
  std::string fence_key;
  std::string pending_key;
  std::string heads_key;
  std::string owner;  // the replica
  absl::Duration ttl;
  int64_t held_token = 0;  // 0: none
  int count = 0;
};
struct PendingEntry {
  std::string id;  // the stream id
  // The entry's fields; absent when the entry lacks one (it is rejected, never chained).
  std::optional<std::string> request_id;
  std::optional<std::string> mac;
  std::optional<std::string> entry;
};
struct SealerBatch {
  int64_t token = 0;                  // 0: another replica holds the lease (nothing read)
  std::vector<PendingEntry> entries;  // oldest first
  // Each request of `entries` once, with its head as stored ("sequence mac"), if any.
  std::vector<std::pair<std::string, std::optional<std::string>>> heads;
};
absl::StatusOr<SealerBatch> TakeSealerLeaseAndRead(RedisClient& redis,
                                                   const SealerLeaseAndRead& call);

// lua/audit_seal.lua: chains sealed entries and removes the pending ones, all or nothing,
// if the lease is still held under `token` and no request's head moved since it was read.
struct SealedRequest {
  std::string request_id;
  std::string chain_key;
  int64_t previous_sequence = 0;  // of the head read (0: none)
  std::string new_head;           // EncodeChainHead
  int64_t first_time_us = 0;      // time of its first entry: its score in the oldest index
  std::vector<std::string> sealed_entries;  // EncodeSealedEntry, in chain order
};
struct Seal {
  std::string lease_key;
  std::string pending_key;
  std::string heads_key;
  std::string oldest_key;
  std::string rejected_key;
  int64_t token = 0;
  std::vector<SealedRequest> requests;
  std::vector<std::pair<std::string, std::string>> rejects;  // pending id, reason
  std::vector<std::string> pending_ids;                      // to delete from pending
};
enum class SealOutcome { kSealed, kLeaseLost, kHeadMoved };
absl::StatusOr<SealOutcome> SealPending(RedisClient& redis, Seal call);

// lua/audit_read_chain.lua: a request's head, anchor and up to `count` chain elements from
// sequence `from` (0: the oldest kept), in one atomic read.
struct ChainRead {
  std::string chain_key;
  std::string heads_key;
  std::string anchors_key;
  std::string request_id;
  int64_t from = 0;
  int count = 0;
};
struct ChainPageRead {
  std::optional<std::string> head;    // as stored ("sequence mac")
  std::optional<std::string> anchor;  // EncodeAnchor
  std::vector<std::string> elements;  // EncodeSealedEntry
};
absl::StatusOr<ChainPageRead> ReadChain(RedisClient& redis, const ChainRead& call);

// lua/audit_erase.lua: erases a chain's first `count` elements behind `anchor`, if the
// lease is still held under `token` and the count-th element is still `last_erased`.
struct ChainErase {
  std::string lease_key;
  std::string chain_key;
  std::string anchors_key;
  std::string oldest_key;
  int64_t token = 0;
  int64_t count = 0;
  std::string last_erased;
  std::string request_id;
  std::string anchor;        // EncodeAnchor
  int64_t next_time_us = 0;  // time of the oldest entry kept
};
struct ChainErased {
  enum class Outcome { kErased, kLeaseLost, kChainChanged };
  Outcome outcome = Outcome::kErased;
  int64_t count = 0;  // erased
};
absl::StatusOr<ChainErased> EraseChainFront(RedisClient& redis, const ChainErase& call);

}  // namespace rogatory::common::internal
