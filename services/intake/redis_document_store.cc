#include "redis_document_store.h"

#include <functional>
#include <memory>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "intake/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"

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

std::string RedisDocumentStore::AuthorityUsageKey(int shard) {
  return absl::StrCat(common::Sharding::Prefix(shard), "docbytes:authority");
}

void RedisDocumentStore::UsageElsewhere(int shard, const DocumentQuota& quota, Done<int64_t> done) {
  const int shards = sharding_.shard_count();
  if (quota.max_authority_bytes == 0 || shards <= 1) return done(int64_t{0});
  struct Join {
    std::mutex mu;
    int pending = 0;
    int64_t sum = 0;
    absl::Status status;
    Done<int64_t> done;
  };
  auto join = std::make_shared<Join>();
  join->pending = shards - 1;
  join->done = std::move(done);
  for (int other = 0; other < shards; ++other) {
    if (other == shard) continue;
    redis_.Command({"HGET", AuthorityUsageKey(other), quota.authority},
                   [join](absl::StatusOr<RedisReply> reply) {
                     absl::Status status;
                     int64_t bytes = 0;
                     if (!reply.ok()) {
                       status = reply.status();
                     } else {
                       auto text = common::ReplyOptionalString(*reply, "HGET authority usage");
                       if (!text.ok()) {
                         status = text.status();
                       } else if (text->has_value() && !absl::SimpleAtoi(**text, &bytes)) {
                         status = absl::DataLossError("stored authority usage is not a number");
                       }
                     }
                     bool last = false;
                     {
                       std::lock_guard<std::mutex> lock(join->mu);
                       join->sum += bytes;
                       if (join->status.ok() && !status.ok()) join->status = status;
                       last = --join->pending == 0;
                     }
                     if (!last) return;
                     if (!join->status.ok()) return join->done(join->status);
                     join->done(join->sum);
                   });
  }
}

std::string RedisDocumentStore::UploadKey(int shard, const std::string& document_id) {
  return absl::StrCat(common::Sharding::Prefix(shard), "upload:", document_id);
}

absl::Status QuotaReplyToStatus(const std::vector<std::string>& reply, const DocumentQuota& quota,
                                int64_t adding) {
  int64_t used = 0;
  if (reply.size() != 3 || reply[0] != "quota" || !absl::SimpleAtoi(reply[2], &used)) {
    return absl::InternalError("unexpected quota reply");
  }
  const bool request = reply[1] == "request";
  return DocumentQuotaExceeded(
      request, used, request ? quota.max_request_bytes : quota.max_authority_bytes, adding);
}

namespace {

// lua/stage_document_chunk.lua
struct StageCall {
  int shard = 0;
  std::string request_id;
  std::string document_id;
  std::string chunk;
  int64_t staging_ttl_ms = 0;
  int64_t staged_bytes = 0;  // the document's bytes so far, this chunk included
  DocumentQuota quota;
  int64_t authority_elsewhere = 0;  // the authority's bytes in the other shards
};
struct StageReply {
  bool staged = false;
  std::vector<std::string> refusal;  // !staged: {'quota', which, used}
};

void RunStage(common::RedisClient& redis, StageCall c,
              std::function<void(absl::StatusOr<StageReply>)> done) {
  static const common::LuaScript* script =
      new common::LuaScript(std::string(lua::kStageDocumentChunk));
  redis.Eval(*script,
             {RedisDocumentStore::DataKey(c.shard, c.document_id),
              RedisDocumentStore::UsageKey(c.shard, c.request_id),
              RedisDocumentStore::AuthorityUsageKey(c.shard)},
             {std::move(c.chunk), absl::StrCat(c.staging_ttl_ms), c.quota.authority,
              absl::StrCat(c.staged_bytes), absl::StrCat(c.quota.max_request_bytes),
              absl::StrCat(c.quota.max_authority_bytes), absl::StrCat(c.authority_elsewhere)},
             [done = std::move(done)](absl::StatusOr<RedisReply> reply) {
               if (!reply.ok()) return done(reply.status());
               constexpr absl::string_view kWhat = "stage_document_chunk";
               auto out = common::ReplyStrings(*reply, kWhat);
               if (!out.ok()) return done(out.status());
               if (out->size() == 1 && (*out)[0] == "staged") return done(StageReply{true, {}});
               if (!out->empty() && (*out)[0] == "quota") {
                 return done(StageReply{false, *std::move(out)});
               }
               done(absl::InternalError(absl::StrCat(kWhat, ": unexpected reply")));
             });
}

}  // namespace

void RedisDocumentStore::Stage(const std::string& request_id, const std::string& document_id,
                               std::string chunk, int64_t staged_bytes, const DocumentQuota& quota,
                               Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  StageCall call{*shard,
                 request_id,
                 document_id,
                 std::move(chunk),
                 absl::ToInt64Milliseconds(staging_ttl_),
                 staged_bytes,
                 quota};
  UsageElsewhere(*shard, quota,
                 [this, call = std::move(call), done](absl::StatusOr<int64_t> elsewhere) mutable {
                   if (!elsewhere.ok()) return done(elsewhere.status());
                   call.authority_elsewhere = *elsewhere;
                   const DocumentQuota quota = call.quota;
                   const int64_t staged_bytes = call.staged_bytes;
                   RunStage(
                       redis_, std::move(call),
                       [done, quota, staged_bytes](absl::StatusOr<StageReply> reply) {
                         if (!reply.ok()) return done(reply.status());
                         if (!reply->staged)
                           return done(QuotaReplyToStatus(reply->refusal, quota, staged_bytes));
                         done(true);
                       });
                 });
}

void RedisDocumentStore::Discard(const std::string& request_id, const std::string& document_id,
                                 Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"DEL", DataKey(*shard, document_id), UploadKey(*shard, document_id)},
                 [done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   done(true);
                 });
}

void RedisDocumentStore::Commit(const v1::Document& document, Mutation change,
                                const DocumentQuota& quota, Done<MutationOutcome> done) {
  auto shard = sharding_.ShardOf("rq", document.request_id());
  if (!shard.ok()) return done(shard.status());
  change.document =
      DocumentCommit{DataKey(*shard, document.id()), ListKey(*shard, document.request_id()),
                     document.SerializeAsString(),   UsageKey(*shard, document.request_id()),
                     AuthorityUsageKey(*shard),      quota.authority,
                     document.size_bytes(),          quota.max_request_bytes,
                     quota.max_authority_bytes};
  UsageElsewhere(*shard, quota,
                 [this, change = std::move(change),
                  done = std::move(done)](absl::StatusOr<int64_t> elsewhere) mutable {
                   if (!elsewhere.ok()) return done(elsewhere.status());
                   change.document->authority_bytes_elsewhere = *elsewhere;
                   requests_.Mutate(std::move(change), std::move(done));
                 });
}

void RedisDocumentStore::List(const std::string& request_id, Done<std::vector<v1::Document>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"LRANGE", ListKey(*shard, request_id), "0", absl::StrCat(kMaxDocuments - 1)},
                 [done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   auto raw = common::ReplyStrings(*reply, "LRANGE documents");
                   if (!raw.ok()) return done(raw.status());
                   std::vector<v1::Document> out;
                   for (const std::string& e : *raw) {
                     v1::Document d;
                     if (!d.ParseFromString(e)) {
                       return done(absl::DataLossError("stored document does not parse"));
                     }
                     out.push_back(std::move(d));
                   }
                   done(std::move(out));
                 });
}

namespace {

absl::Status NoSuchUpload() {
  return absl::NotFoundError(
      "no such upload: it expired (upload-idle-timeout passed without a call), was committed "
      "or discarded, or another authority started it; start the upload again");
}

absl::Status InvalidField(const std::string& field, const std::string& why) {
  common::FieldViolations v;
  v.Add(field, why);
  return v.ToStatus();
}

const common::LuaScript& StartUploadScript() {
  static const common::LuaScript* script =
      new common::LuaScript(std::string(lua::kStartDocumentUpload));
  return *script;
}
const common::LuaScript& StageAtScript() {
  static const common::LuaScript* script =
      new common::LuaScript(std::string(lua::kStageUploadChunk));
  return *script;
}
const common::LuaScript& ClaimScript() {
  static const common::LuaScript* script =
      new common::LuaScript(std::string(lua::kClaimDocumentUpload));
  return *script;
}

// lua/stage_upload_chunk.lua with its keys and arguments.
void RunStageAt(common::RedisClient& redis, std::vector<std::string> keys,
                std::vector<std::string> args, const UploadBounds& bounds, int64_t offset,
                int64_t adding, DocumentStore::Done<int64_t> done);

}  // namespace

void RedisDocumentStore::StartUpload(const UploadSession& upload, absl::Duration idle,
                                     Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", upload.document.request_id());
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(StartUploadScript(), {UploadKey(*shard, upload.document.id())},
              {upload.owner, upload.document.request_id(), upload.document.SerializeAsString(),
               upload.idempotency ? upload.idempotency->request_id : "",
               upload.idempotency ? upload.idempotency->fingerprint : "",
               absl::StrCat(absl::ToInt64Milliseconds(idle))},
              [done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto out = common::ReplyStrings(*reply, "start_document_upload");
                if (!out.ok()) return done(out.status());
                if (out->size() != 1 || (*out)[0] != "started") {
                  return done(absl::InternalError("start_document_upload: unexpected reply"));
                }
                done(true);
              });
}

void RedisDocumentStore::StageAt(const std::string& request_id, const std::string& document_id,
                                 const std::string& owner, int64_t offset, std::string chunk,
                                 absl::Duration idle, const UploadBounds& bounds,
                                 Done<int64_t> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  const int64_t adding = static_cast<int64_t>(chunk.size());
  std::vector<std::string> keys = {UploadKey(*shard, document_id), DataKey(*shard, document_id),
                                   UsageKey(*shard, request_id), AuthorityUsageKey(*shard)};
  std::vector<std::string> args = {owner,
                                   absl::StrCat(offset),
                                   std::move(chunk),
                                   absl::StrCat(absl::ToInt64Milliseconds(idle)),
                                   absl::StrCat(bounds.max_document_bytes),
                                   absl::StrCat(bounds.quota.max_request_bytes),
                                   absl::StrCat(bounds.quota.max_authority_bytes)};
  UsageElsewhere(*shard, bounds.quota,
                 [this, keys = std::move(keys), args = std::move(args), done, bounds, offset,
                  adding](absl::StatusOr<int64_t> elsewhere) mutable {
                   if (!elsewhere.ok()) return done(elsewhere.status());
                   args.push_back(absl::StrCat(*elsewhere));
                   RunStageAt(redis_, std::move(keys), std::move(args), bounds, offset, adding,
                              std::move(done));
                 });
}

namespace {

void RunStageAt(common::RedisClient& redis, std::vector<std::string> keys,
                std::vector<std::string> args, const UploadBounds& bounds, int64_t offset,
                int64_t adding, DocumentStore::Done<int64_t> done) {
  redis.Eval(
      StageAtScript(), std::move(keys), std::move(args),
      [done, bounds, offset, adding](absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) return done(reply.status());
        constexpr absl::string_view kWhat = "stage_upload_chunk";
        auto out = common::ReplyStrings(*reply, kWhat);
        if (!out.ok()) return done(out.status());
        int64_t received = 0;
        const std::string kind = out->empty() ? "" : (*out)[0];
        if (kind == "missing") return done(NoSuchUpload());
        if (kind == "quota") return done(QuotaReplyToStatus(*out, bounds.quota, offset + adding));
        if (out->size() != 2 || !absl::SimpleAtoi((*out)[1], &received)) {
          return done(absl::InternalError(absl::StrCat(kWhat, ": unexpected reply")));
        }
        if (kind == "staged") return done(received);
        if (kind == "offset") {
          return done(InvalidField(
              "offset", absl::StrCat("must be ", received,
                                     ", the bytes received so far (or the last chunk's offset "
                                     "to resend it unchanged); chunks go in order without gaps "
                                     "or overlaps")));
        }
        if (kind == "toolarge") {
          return done(InvalidField("chunk", absl::StrCat("the document exceeds the limit of ",
                                                         bounds.max_document_bytes, " bytes")));
        }
        done(absl::InternalError(absl::StrCat(kWhat, ": unexpected reply")));
      });
}

}  // namespace

void RedisDocumentStore::GetUpload(const std::string& request_id, const std::string& document_id,
                                   const std::string& owner, Done<UploadSession> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"HGETALL", UploadKey(*shard, document_id)},
                 [done, owner](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   auto f = common::ReplyFields(*reply, "HGETALL upload");
                   if (!f.ok()) return done(f.status());
                   if (f->empty() || (*f)["owner"] != owner) return done(NoSuchUpload());
                   UploadSession u;
                   u.owner = owner;
                   if (!u.document.ParseFromString((*f)["doc"]) ||
                       !absl::SimpleAtoi((*f)["size"], &u.received_bytes)) {
                     return done(absl::DataLossError("stored upload does not parse"));
                   }
                   if (!(*f)["ikey"].empty())
                     u.idempotency = Idempotency{owner, (*f)["ikey"], (*f)["ifp"]};
                   done(std::move(u));
                 });
}

void RedisDocumentStore::ClaimUpload(const std::string& request_id, const std::string& document_id,
                                     const std::string& owner, int64_t received_bytes,
                                     Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Eval(ClaimScript(), {UploadKey(*shard, document_id)},
              {owner, absl::StrCat(received_bytes)}, [done](absl::StatusOr<RedisReply> reply) {
                if (!reply.ok()) return done(reply.status());
                auto out = common::ReplyStrings(*reply, "claim_document_upload");
                if (!out.ok()) return done(out.status());
                const std::string kind = out->empty() ? "" : (*out)[0];
                if (kind == "claimed") return done(true);
                if (kind == "missing") return done(NoSuchUpload());
                if (kind == "changed") {
                  return done(absl::AbortedError(
                      "a chunk arrived while the upload was being committed; commit again"));
                }
                done(absl::InternalError("claim_document_upload: unexpected reply"));
              });
}

void RedisDocumentStore::ReadStagedChunk(const std::string& request_id,
                                         const std::string& document_id, int64_t index,
                                         Done<std::optional<std::string>> done) {
  // Staged and committed chunks share the key: committing only makes it stop expiring.
  ReadChunk(request_id, document_id, index, std::move(done));
}

void RedisDocumentStore::ReadChunk(const std::string& request_id, const std::string& document_id,
                                   int64_t index, Done<std::optional<std::string>> done) {
  auto shard = sharding_.ShardOf("rq", request_id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"LINDEX", DataKey(*shard, document_id), absl::StrCat(index)},
                 [done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   done(common::ReplyOptionalString(*reply, "LINDEX document chunk"));
                 });
}

}  // namespace rogatory::intake
