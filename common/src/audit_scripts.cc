#include "audit_scripts.h"

#include "absl/strings/str_cat.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"
#include "script_call.h"

namespace rogatory::common::internal {
namespace {

constexpr char kAppendWhat[] = "audit append";
constexpr char kLeaseWhat[] = "audit lease and read";
constexpr char kSealWhat[] = "audit seal";
constexpr char kReadWhat[] = "audit read chain";
constexpr char kEraseWhat[] = "audit erase";

absl::Status UnexpectedShape(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": Redis answered an array of another shape"));
}

// A pending entry: [id, [field, value...]]; nullopt for one of another shape (skipped, as
// the sealer always did: it is neither chained nor deleted).
absl::StatusOr<std::optional<PendingEntry>> ReadPendingEntry(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2) {
    return std::optional<PendingEntry>();
  }
  PendingEntry entry;
  ASSIGN_OR_RETURN(entry.id, ReplyString(reply.elements[0], kLeaseWhat));
  ASSIGN_OR_RETURN(auto fields, ReplyFields(reply.elements[1], kLeaseWhat));
  auto take = [&fields](const char* name) -> std::optional<std::string> {
    auto it = fields.find(name);
    if (it == fields.end()) return std::nullopt;
    return std::move(it->second);
  };
  entry.request_id = take("r");
  entry.mac = take("m");
  entry.entry = take("e");
  return std::optional<PendingEntry>(std::move(entry));
}

}  // namespace

void AppendPending(RedisClient& redis, PendingAppend call,
                   std::function<void(absl::StatusOr<AppendOutcome>)> done) {
  std::vector<std::string> args;
  args.reserve(1 + 3 * call.entries.size());
  args.push_back(absl::StrCat(call.max_pending));
  for (PendingAppend::Entry& e : call.entries) {
    args.push_back(std::move(e.request_id));
    args.push_back(std::move(e.mac));
    args.push_back(std::move(e.entry));
  }
  EvalTyped<AppendOutcome>(
      redis, EmbeddedScript<&lua::kAuditAppend>(), {std::move(call.pending_key)}, std::move(args),
      [](const RedisReply& reply) -> absl::StatusOr<AppendOutcome> {
        ASSIGN_OR_RETURN(const int64_t n, ReplyInteger(reply, kAppendWhat));
        return n < 0 ? AppendOutcome::kBacklogFull : AppendOutcome::kAppended;
      },
      std::move(done));
}

absl::StatusOr<SealerBatch> TakeSealerLeaseAndRead(RedisClient& redis,
                                                   const SealerLeaseAndRead& call) {
  return RunTyped<SealerBatch>(
      redis, EmbeddedScript<&lua::kAuditLeaseAndRead>(),
      {call.lease_key, call.fence_key, call.pending_key, call.heads_key},
      {call.owner, absl::StrCat(absl::ToInt64Milliseconds(call.ttl)),
       call.held_token == 0 ? "" : absl::StrCat(call.held_token), absl::StrCat(call.count)},
      [](const RedisReply& reply) -> absl::StatusOr<SealerBatch> {
        ASSIGN_OR_RETURN(const std::vector<RedisReply>* parts, ReplyArray(reply, kLeaseWhat));
        if (parts->empty()) return UnexpectedShape(kLeaseWhat);
        SealerBatch batch;
        ASSIGN_OR_RETURN(batch.token, ReplyInteger((*parts)[0], kLeaseWhat));
        if (batch.token == 0 || parts->size() < 4) return batch;
        ASSIGN_OR_RETURN(const std::vector<RedisReply>* entries,
                         ReplyArray((*parts)[1], kLeaseWhat));
        for (const RedisReply& e : *entries) {
          ASSIGN_OR_RETURN(std::optional<PendingEntry> entry, ReadPendingEntry(e));
          if (entry.has_value()) batch.entries.push_back(*std::move(entry));
        }
        ASSIGN_OR_RETURN(std::vector<std::string> rids, ReplyStrings((*parts)[2], kLeaseWhat));
        ASSIGN_OR_RETURN(const std::vector<RedisReply>* heads, ReplyArray((*parts)[3], kLeaseWhat));
        for (size_t i = 0; i < rids.size() && i < heads->size(); ++i) {
          ASSIGN_OR_RETURN(std::optional<std::string> head,
                           ReplyOptionalString((*heads)[i], kLeaseWhat));
          batch.heads.emplace_back(std::move(rids[i]), std::move(head));
        }
        return batch;
      });
}

absl::StatusOr<SealOutcome> SealPending(RedisClient& redis, Seal call) {
  std::vector<std::string> keys = {std::move(call.lease_key), std::move(call.pending_key),
                                   std::move(call.heads_key), std::move(call.oldest_key),
                                   std::move(call.rejected_key)};
  std::vector<std::string> args = {absl::StrCat(call.token), absl::StrCat(call.requests.size()),
                                   absl::StrCat(call.rejects.size())};
  for (SealedRequest& r : call.requests) {
    keys.push_back(std::move(r.chain_key));
    args.push_back(std::move(r.request_id));
    args.push_back(absl::StrCat(r.previous_sequence));
    args.push_back(std::move(r.new_head));
    args.push_back(absl::StrCat(r.first_time_us));
    args.push_back(absl::StrCat(r.sealed_entries.size()));
    for (std::string& s : r.sealed_entries) args.push_back(std::move(s));
  }
  for (auto& [id, reason] : call.rejects) {
    args.push_back(std::move(id));
    args.push_back(std::move(reason));
  }
  for (std::string& id : call.pending_ids) args.push_back(std::move(id));
  return RunTyped<SealOutcome>(redis, EmbeddedScript<&lua::kAuditSeal>(), std::move(keys),
                               std::move(args),
                               [](const RedisReply& reply) -> absl::StatusOr<SealOutcome> {
                                 ASSIGN_OR_RETURN(const int64_t n, ReplyInteger(reply, kSealWhat));
                                 if (n == -1) return SealOutcome::kLeaseLost;
                                 return n == 1 ? SealOutcome::kSealed : SealOutcome::kHeadMoved;
                               });
}

absl::StatusOr<ChainPageRead> ReadChain(RedisClient& redis, const ChainRead& call) {
  return RunTyped<ChainPageRead>(
      redis, EmbeddedScript<&lua::kAuditReadChain>(),
      {call.chain_key, call.heads_key, call.anchors_key},
      {call.request_id, absl::StrCat(call.from), absl::StrCat(call.count)},
      [](const RedisReply& reply) -> absl::StatusOr<ChainPageRead> {
        ASSIGN_OR_RETURN(const std::vector<RedisReply>* parts, ReplyArray(reply, kReadWhat));
        if (parts->size() != 3) return UnexpectedShape(kReadWhat);
        ChainPageRead page;
        ASSIGN_OR_RETURN(page.head, ReplyOptionalString((*parts)[0], kReadWhat));
        ASSIGN_OR_RETURN(page.anchor, ReplyOptionalString((*parts)[1], kReadWhat));
        ASSIGN_OR_RETURN(page.elements, ReplyStrings((*parts)[2], kReadWhat));
        return page;
      });
}

absl::StatusOr<ChainErased> EraseChainFront(RedisClient& redis, const ChainErase& call) {
  return RunTyped<ChainErased>(
      redis, EmbeddedScript<&lua::kAuditErase>(),
      {call.lease_key, call.chain_key, call.anchors_key, call.oldest_key},
      {absl::StrCat(call.token), absl::StrCat(call.count), call.last_erased, call.request_id,
       call.anchor, absl::StrCat(call.next_time_us)},
      [](const RedisReply& reply) -> absl::StatusOr<ChainErased> {
        ASSIGN_OR_RETURN(const int64_t n, ReplyInteger(reply, kEraseWhat));
        if (n == -1) return ChainErased{ChainErased::Outcome::kLeaseLost, 0};
        if (n < 0) return ChainErased{ChainErased::Outcome::kChainChanged, 0};
        return ChainErased{ChainErased::Outcome::kErased, n};
      });
}

}  // namespace rogatory::common::internal
