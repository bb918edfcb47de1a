#pragma once

#include "absl/time/time.h"
#include "request_store.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis.h"

namespace rogatory::intake {

// RequestStore on Redis. Every key of a request lives in the request's shard (its id names
// it), so each change is one Lua script in one Redis Cluster slot:
//   rg:{sN}:req:<id>              hash: pb (Request as submitted), status, instrument,
//                                 issuing_state, requested_state, created_ms, updated_ms,
//                                 etag (status, etag and updated_ms are authoritative)
//   rg:{sN}:hist:<id>             list of history events (serialized common.v1.Event)
//   rg:{sN}:idem:<scope>:<key>    hash: fp, id; expires after the idempotency TTL
//   rg:{sN}:idx:all               sorted set of ids by creation time (ms)
//   rg:{sN}:idx:status:<n>        the same, per status
//   rg:{sN}:idx:instrument:<n>    the same, per instrument
//   rg:{sN}:outbox:intake         intake's outbox (see common/event_sink.h)
// A new request with an idempotency key goes to the shard of (scope, key), so the record
// and the request are written together. Lists read every shard (bounded scans) and merge.
class RedisRequestStore final : public RequestStore {
 public:
  RedisRequestStore(common::RedisClient& redis, common::Sharding sharding,
                    absl::Duration idempotency_ttl)
      : redis_(redis), sharding_(sharding), idempotency_ttl_(idempotency_ttl) {}

  void Create(NewRequest request, Done<CreateOutcome> done) override;
  void Get(const std::string& id, Done<v1::Request> done) override;
  void List(const ListQuery& query, Done<ListPage> done) override;
  void RecordEvent(const common::v1::Event& event, const common::Dedupe& dedupe,
                   Done<common::EventHandler::Outcome> done) override;
  void History(const std::string& id, Done<std::vector<common::v1::Event>> done) override;

  // Most index entries one shard examines per List call: bounds the work of a page.
  static constexpr int kScanBudget = 1000;

 private:
  common::RedisClient& redis_;
  common::Sharding sharding_;
  absl::Duration idempotency_ttl_;
};

}  // namespace rogatory::intake
