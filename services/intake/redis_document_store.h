#pragma once

#include "document_store.h"
#include "redis_request_store.h"

namespace rogatory::intake {

// DocumentStore on Redis, in the request's shard:
//   rg:{sN}:doc:<document id>:data   list of chunks (as uploaded, at most 1 MiB each);
//                                    expires after the staging TTL until committed
//   rg:{sN}:docs:<request id>        list of Document metadata (serialized), oldest first
//   rg:{sN}:docbytes:<request id>    hash: total -> bytes of the request's committed
//                                    documents, a:<authority> -> the part each uploaded
//   rg:{sN}:docbytes:authority       hash: authority id -> bytes of the committed documents
//                                    it uploaded to requests of this shard (DocumentQuota)
//   rg:{sN}:upload:<document id>     hash: a chunked upload's state (UploadSession; see
//                                    lua/start_document_upload.lua), expiring when idle
// Staging is lua/stage_document_chunk.lua; commit is one Lua script with the request's change
// (RedisRequestStore::Mutate with a DocumentCommit), which checks and charges the quotas;
// retention's erasure script gives the bytes back. Every script stays in the request's shard,
// so in one slot of a Redis Cluster (issue 18): each shard counts an authority's bytes of its
// own requests, and the quota is over the sum. Before a staging or commit script, one wave of
// HGETs (one per other shard, sent together) reads the authority's bytes in the other shards;
// the script adds its own shard's count and checks the bound atomically for that shard. The
// race this leaves: uploads by one authority committed at the same moment in different shards
// each see the other's shard before the other's commit, so both may pass, and the authority
// may end over its quota by at most one document's bytes per concurrent commit. No wave is
// sent when the authority has no bound.
class RedisDocumentStore final : public DocumentStore {
 public:
  RedisDocumentStore(common::RedisClient& redis, common::Sharding sharding,
                     RedisRequestStore& requests, absl::Duration staging_ttl = absl::Hours(1))
      : redis_(redis), sharding_(sharding), requests_(requests), staging_ttl_(staging_ttl) {}

  void Stage(const std::string& request_id, const std::string& document_id, std::string chunk,
             int64_t staged_bytes, const DocumentQuota& quota, Done<bool> done) override;
  void Discard(const std::string& request_id, const std::string& document_id,
               Done<bool> done) override;
  void Commit(const v1::Document& document, Mutation change, const DocumentQuota& quota,
              Done<MutationOutcome> done) override;
  void List(const std::string& request_id, Done<std::vector<v1::Document>> done) override;
  void ReadChunk(const std::string& request_id, const std::string& document_id, int64_t index,
                 Done<std::optional<std::string>> done) override;
  void StartUpload(const UploadSession& upload, absl::Duration idle, Done<bool> done) override;
  void StageAt(const std::string& request_id, const std::string& document_id,
               const std::string& owner, int64_t offset, std::string chunk, absl::Duration idle,
               const UploadBounds& bounds, Done<int64_t> done) override;
  void GetUpload(const std::string& request_id, const std::string& document_id,
                 const std::string& owner, Done<UploadSession> done) override;
  void ClaimUpload(const std::string& request_id, const std::string& document_id,
                   const std::string& owner, int64_t received_bytes, Done<bool> done) override;
  void ReadStagedChunk(const std::string& request_id, const std::string& document_id, int64_t index,
                       Done<std::optional<std::string>> done) override;

  static std::string DataKey(int shard, const std::string& document_id);
  static std::string ListKey(int shard, const std::string& request_id);
  static std::string UsageKey(int shard, const std::string& request_id);
  static std::string AuthorityUsageKey(int shard);
  static std::string UploadKey(int shard, const std::string& document_id);

 private:
  // The bytes of `quota.authority`'s committed documents in every shard but `shard`: 0 at
  // once when the authority has no bound, else one HGET per other shard, sent together.
  void UsageElsewhere(int shard, const DocumentQuota& quota, Done<int64_t> done);

  common::RedisClient& redis_;
  common::Sharding sharding_;
  RedisRequestStore& requests_;
  absl::Duration staging_ttl_;
};

// RESOURCE_EXHAUSTED from a quota refusal {'quota', which, used} of the staging or commit
// script (common/src/lua/lib/document_quota.lua, which both include).
absl::Status QuotaReplyToStatus(const std::vector<std::string>& reply, const DocumentQuota& quota,
                                int64_t adding);

}  // namespace rogatory::intake
