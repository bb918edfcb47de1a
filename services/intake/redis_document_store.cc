#include "redis_document_store.h"

#include "absl/strings/str_cat.h"

namespace rogatory::intake {

using common::RedisReply;

std::string RedisDocumentStore::DataKey(int shard, const std::string& document_id) {
  return absl::StrCat(common::Sharding::Prefix(shard), "doc:", document_id, ":data");
}

std::string RedisDocumentStore::ListKey(int shard, const std::string& request_id) {
  return absl::StrCat(common::Sharding::Prefix(shard), "docs:", request_id);
}

void RedisDocumentStore::Stage(const std::string& request_id, const std::string& document_id,
                               std::string chunk, Done<bool> done) {
  static const common::LuaScript* script = new common::LuaScript(R"lua(
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
)lua");
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(*script, {DataKey(*shard, document_id)},
              {std::move(chunk), absl::StrCat(absl::ToInt64Milliseconds(staging_ttl_))},
              [done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                done(true);
              });
}

void RedisDocumentStore::Discard(const std::string& request_id, const std::string& document_id,
                                 Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"DEL", DataKey(*shard, document_id)},
                 [done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   done(true);
                 });
}

void RedisDocumentStore::Commit(const v1::Document& document, Mutation change,
                                Done<MutationOutcome> done) {
  auto shard = sharding_.ShardOf("rq", document.request_id());
  if (!shard.ok()) return done(shard.status());
  change.document = DocumentCommit{DataKey(*shard, document.id()),
                                   ListKey(*shard, document.request_id()),
                                   document.SerializeAsString()};
  requests_.Mutate(std::move(change), std::move(done));
}

void RedisDocumentStore::List(const std::string& request_id,
                              Done<std::vector<v1::Document>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"LRANGE", ListKey(*shard, request_id), "0",
                  absl::StrCat(kMaxDocuments - 1)},
                 [done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   std::vector<v1::Document> out;
                   for (const RedisReply& e : reply->elements) {
                     v1::Document d;
                     if (!d.ParseFromString(e.str)) {
                       return done(absl::DataLossError("stored document does not parse"));
                     }
                     out.push_back(std::move(d));
                   }
                   done(std::move(out));
                 });
}

void RedisDocumentStore::ReadChunk(const std::string& request_id, const std::string& document_id,
                                   int64_t index, Done<std::optional<std::string>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"LINDEX", DataKey(*shard, document_id), absl::StrCat(index)},
                 [done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   if (reply->is_nil()) return done(std::optional<std::string>());
                   done(std::optional<std::string>(std::move(reply->str)));
                 });
}

}  // namespace rogatory::intake
