#include "redis_document_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rogatory::intake {

using common::RedisReply;

std::string RedisDocumentStore::DataKey(int shard, const std::string& document_id) {
  return absl::StrCat(common::Sharding::Prefix(shard), "doc:", document_id, ":data");
}

std::string RedisDocumentStore::ListKey(int shard, const std::string& request_id) {
  return absl::StrCat(common::Sharding::Prefix(shard), "docs:", request_id);
}

std::string RedisDocumentStore::UsageKey(int shard, const std::string& request_id) {
  return absl::StrCat(common::Sharding::Prefix(shard), "docbytes:", request_id);
}

std::string RedisDocumentStore::AuthorityUsageKey() { return "rg:docbytes:authority"; }

// Defines over_quota(request usage key, authority usage key, at) for a script whose ARGV
// holds, from `at`: authority, bytes to add, request bound, authority bound ('0': none).
// Returns {'quota', 'request'|'authority', used} when the bytes would pass a bound, else nil.
const char kDocumentQuotaLua[] = R"lua(
local function over_quota(rkey, akey, at)
  local adding = tonumber(ARGV[at + 1])
  local used = tonumber(redis.call('HGET', rkey, 'total') or '0')
  if ARGV[at + 2] ~= '0' and used + adding > tonumber(ARGV[at + 2]) then
    return {'quota', 'request', tostring(used)}
  end
  used = tonumber(redis.call('HGET', akey, ARGV[at]) or '0')
  if ARGV[at + 3] ~= '0' and used + adding > tonumber(ARGV[at + 3]) then
    return {'quota', 'authority', tostring(used)}
  end
  return nil
end
)lua";

absl::Status QuotaReplyToStatus(const common::RedisReply& reply, const DocumentQuota& quota,
                                int64_t adding) {
  int64_t used = 0;
  if (reply.elements.size() != 3 || !absl::SimpleAtoi(reply.elements[2].str, &used)) {
    return absl::InternalError("unexpected quota reply");
  }
  const bool request = reply.elements[1].str == "request";
  return DocumentQuotaExceeded(
      request, used, request ? quota.max_request_bytes : quota.max_authority_bytes, adding);
}

void RedisDocumentStore::Stage(const std::string& request_id, const std::string& document_id,
                               std::string chunk, int64_t staged_bytes, const DocumentQuota& quota,
                               Done<bool> done) {
  // KEYS: data, request usage, authority usage. ARGV: chunk, staging ttl, then the quota
  // check's from 3. Refused whole when Redis is full: it only grows memory.
  static const common::LuaScript* script =
      new common::LuaScript(absl::StrCat(common::kScriptRefusedWhenFull, kDocumentQuotaLua, R"lua(
local over = over_quota(KEYS[2], KEYS[3], 3)
if over then return over end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'staged'}
)lua"));
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(*script,
              {DataKey(*shard, document_id), UsageKey(*shard, request_id), AuthorityUsageKey()},
              {std::move(chunk), absl::StrCat(absl::ToInt64Milliseconds(staging_ttl_)),
               quota.authority, absl::StrCat(staged_bytes), absl::StrCat(quota.max_request_bytes),
               absl::StrCat(quota.max_authority_bytes)},
              [done, quota, staged_bytes](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                if (!reply->elements.empty() && reply->elements[0].str == "quota") {
                  return done(QuotaReplyToStatus(*reply, quota, staged_bytes));
                }
                done(true);
              });
}

void RedisDocumentStore::Discard(const std::string& request_id, const std::string& document_id,
                                 Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"DEL", DataKey(*shard, document_id)}, [done](absl::StatusOr<RedisReply> reply) {
    if (!reply.ok()) return done(reply.status());
    done(true);
  });
}

void RedisDocumentStore::Commit(const v1::Document& document, Mutation change,
                                const DocumentQuota& quota, Done<MutationOutcome> done) {
  auto shard = sharding_.ShardOf("rq", document.request_id());
  if (!shard.ok()) return done(shard.status());
  change.document = DocumentCommit{DataKey(*shard, document.id()),
                                   ListKey(*shard, document.request_id()),
                                   document.SerializeAsString(),
                                   UsageKey(*shard, document.request_id()),
                                   AuthorityUsageKey(),
                                   quota.authority,
                                   document.size_bytes(),
                                   quota.max_request_bytes,
                                   quota.max_authority_bytes};
  requests_.Mutate(std::move(change), std::move(done));
}

void RedisDocumentStore::List(const std::string& request_id, Done<std::vector<v1::Document>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"LRANGE", ListKey(*shard, request_id), "0", absl::StrCat(kMaxDocuments - 1)},
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
