#pragma once

#include "document_store.h"
#include "redis_request_store.h"

namespace rogatory::intake {

// DocumentStore on Redis, in the request's shard:
//   rg:{sN}:doc:<document id>:data   list of chunks (as uploaded, at most 1 MiB each);
//                                    expires after the staging TTL until committed
//   rg:{sN}:docs:<request id>        list of Document metadata (serialized), oldest first
// Commit is one Lua script with the request's change (RedisRequestStore::Mutate with a
// DocumentCommit).
class RedisDocumentStore final : public DocumentStore {
 public:
  RedisDocumentStore(common::RedisClient& redis, common::Sharding sharding,
                     RedisRequestStore& requests, absl::Duration staging_ttl = absl::Hours(1))
      : redis_(redis), sharding_(sharding), requests_(requests), staging_ttl_(staging_ttl) {}

  void Stage(const std::string& request_id, const std::string& document_id, std::string chunk,
             Done<bool> done) override;
  void Discard(const std::string& request_id, const std::string& document_id,
               Done<bool> done) override;
  void Commit(const v1::Document& document, Mutation change,
              Done<MutationOutcome> done) override;
  void List(const std::string& request_id, Done<std::vector<v1::Document>> done) override;
  void ReadChunk(const std::string& request_id, const std::string& document_id, int64_t index,
                 Done<std::optional<std::string>> done) override;

  static std::string DataKey(int shard, const std::string& document_id);
  static std::string ListKey(int shard, const std::string& request_id);

 private:
  common::RedisClient& redis_;
  common::Sharding sharding_;
  RedisRequestStore& requests_;
  absl::Duration staging_ttl_;
};

}  // namespace rogatory::intake
