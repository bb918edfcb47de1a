#include "redis_request_store.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/time_util.h"
#include "intake/lua_scripts.h"
#include "redis_document_store.h"
#include "retention.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::intake {
namespace {

using common::LuaScript;
using common::RedisReply;
using common::Sharding;

template <typename T>
using Done = RequestStore::Done<T>;

// The scripts (lua/*.lua; each file's header names its KEYS, ARGV and reply).
#define ROGATORY_INTAKE_SCRIPT(Name, constant)                             \
  const LuaScript& Name() {                                                \
    static const LuaScript* script = new LuaScript(std::string(constant)); \
    return *script;                                                        \
  }
ROGATORY_INTAKE_SCRIPT(CreateScript, lua::kCreateRequest)
ROGATORY_INTAKE_SCRIPT(ListPageScript, lua::kListPage)
ROGATORY_INTAKE_SCRIPT(LoadScript, lua::kLoadRequest)
ROGATORY_INTAKE_SCRIPT(HistoryRangeScript, lua::kHistoryRange)
ROGATORY_INTAKE_SCRIPT(GetRecordedScript, lua::kGetRecorded)
ROGATORY_INTAKE_SCRIPT(MutateScript, lua::kMutateRequest)
ROGATORY_INTAKE_SCRIPT(RetentionWorkScript, lua::kFindRetentionWork)
ROGATORY_INTAKE_SCRIPT(ErasePersonalScript, lua::kErasePersonalData)
ROGATORY_INTAKE_SCRIPT(EraseRequestScript, lua::kEraseRequest)
#undef ROGATORY_INTAKE_SCRIPT

// Runs a script and hands its reply, parsed by `parse`, to `done`.
template <typename T, typename Parse>
void EvalTyped(common::RedisClient& redis, const LuaScript& script, std::vector<std::string> keys,
               std::vector<std::string> args, Parse parse, Done<T> done) {
  redis.Eval(script, std::move(keys), std::move(args),
             [parse, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
               if (!reply.ok()) return done(reply.status());
               done(parse(*reply));
             });
}

// A reply of strings whose first names the outcome ({'applied'}, {'stale', version}...).
absl::StatusOr<std::vector<std::string>> Outcome(const RedisReply& reply, absl::string_view what) {
  auto strings = common::ReplyStrings(reply, what);
  if (!strings.ok()) return strings.status();
  if (strings->empty()) return absl::InternalError(absl::StrCat(what, ": empty reply"));
  return strings;
}

absl::Status Unexpected(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": unexpected reply"));
}

std::string ReqPrefix(int shard) { return absl::StrCat(Sharding::Prefix(shard), "req:"); }

// The fields of a stored request the scripts return: pb, then the fields that change after
// submission (status, etag, update time), which are authoritative over pb.
struct StoredFields {
  std::string pb;
  std::string status;
  std::string etag;
  std::string updated_ms;
  // The next deadline (serialized NextDeadline; '' = none): hash field `nd`, kept by
  // deadline events apart from pb, so that they neither change the etag nor are undone by a
  // change computed on an older snapshot.
  std::string nd;
};

// A stored request: its pb, overlaid with its authoritative hash fields.
absl::StatusOr<v1::Request> ParseStored(const StoredFields& f) {
  v1::Request r;
  if (!r.ParseFromString(f.pb)) return absl::DataLossError("stored request does not parse");
  int status = 0;
  int64_t updated_ms = 0;
  if (absl::SimpleAtoi(f.status, &status) && common::v1::RequestStatus_IsValid(status)) {
    r.set_status(static_cast<common::v1::RequestStatus>(status));
  }
  if (!f.etag.empty()) r.set_etag(f.etag);
  r.clear_next_deadline();
  if (!f.nd.empty() && !r.mutable_next_deadline()->ParseFromString(f.nd)) {
    return absl::DataLossError("stored next deadline does not parse");
  }
  if (absl::SimpleAtoi(f.updated_ms, &updated_ms)) {
    *r.mutable_update_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(updated_ms);
  }
  return r;
}

// Five strings of `strings` from `at`, as StoredFields.
StoredFields StoredAt(const std::vector<std::string>& strings, size_t at) {
  return StoredFields{strings[at], strings[at + 1], strings[at + 2], strings[at + 3],
                      strings[at + 4]};
}

absl::StatusOr<std::vector<common::v1::Event>> ParseEvents(const std::vector<std::string>& raw) {
  std::vector<common::v1::Event> events;
  events.reserve(raw.size());
  for (const std::string& e : raw) {
    common::v1::Event event;
    if (!event.ParseFromString(e)) {
      return absl::DataLossError("stored history event does not parse");
    }
    events.push_back(std::move(event));
  }
  return events;
}

absl::Status IdempotencyConflict() {
  return absl::AlreadyExistsError("request_id was already used with a different request");
}

absl::Status NoSuchRequest(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("no request with id ", id));
}

// ---- Typed calls: one per script, a struct of named fields in, a typed reply out. ----

// The worklist hash beside a party index: <p>idx:party:a:<authority> -> <p>wl:a:<authority>,
// <p>idx:party:s:<state> -> <p>wl:s:<state>. Field: request id; value: its worklist row
// (see create_request.lua), which holds every field a worklist filters and orders on, so a
// page's candidates are chosen from the rows alone.
std::string WorklistKeyOfParty(const std::string& p, const std::string& party_index) {
  return absl::StrCat(p, "wl:", party_index.substr(p.size() + sizeof("idx:party:") - 1));
}

// lua/create_request.lua
struct CreateCall {
  int shard = 0;
  std::string id;
  std::string request;  // serialized
  std::optional<Idempotency> idempotency;
  int status = 0;
  int instrument = 0;
  int urgency = 0;
  std::string issuing_state;
  std::string requested_state;
  std::string issuing_authority;
  std::string executing_authority;
  int64_t created_ms = 0;
  std::string etag;
  int64_t idempotency_ttl_ms = 0;
  std::string submitted;  // serialized first history event
  std::string gone_id;    // an earlier request of the key known to be gone
};
struct CreateReply {
  enum class Kind { kCreated, kReplayed, kConflict, kCollision };
  Kind kind = Kind::kCreated;
  std::string earlier_id;  // kReplayed: the request the key created
};

void RunCreate(common::RedisClient& redis, const CreateCall& c, Done<CreateReply> done) {
  const std::string p = Sharding::Prefix(c.shard);
  std::vector<std::string> keys = {
      absl::StrCat(p, "req:", c.id),
      absl::StrCat(p, "hist:", c.id),
      c.idempotency ? absl::StrCat(p, "idem:", c.idempotency->scope, ":", c.idempotency->request_id)
                    : absl::StrCat(p, "idem:-"),
      common::EventKeys::Outbox(c.shard, "intake"),
      RedisRequestStore::CountsKey(c.shard),
      absl::StrCat(p, "idx:all"),
      absl::StrCat(p, "idx:updated"),
      absl::StrCat(p, "idx:status:", c.status),
      absl::StrCat(p, "idx:instrument:", c.instrument),
      absl::StrCat(p, "idx:urgency:", c.urgency)};
  if (!c.issuing_state.empty())
    keys.push_back(absl::StrCat(p, "idx:issuing_state:", c.issuing_state));
  if (!c.requested_state.empty()) {
    keys.push_back(absl::StrCat(p, "idx:requested_state:", c.requested_state));
  }
  // The need-to-know party indexes (see common/access.h): idx:party:a:<authority id> holds
  // the requests an authority issued or that are addressed to it, idx:party:s:<state> those
  // whose issuing or requested state it is (a central authority's reach).
  std::set<std::string> parties;
  for (const std::string* a : {&c.issuing_authority, &c.executing_authority}) {
    if (!a->empty()) parties.insert(absl::StrCat(p, "idx:party:a:", *a));
  }
  for (const std::string* s : {&c.issuing_state, &c.requested_state}) {
    if (!s->empty()) parties.insert(absl::StrCat(p, "idx:party:s:", *s));
  }
  keys.insert(keys.end(), parties.begin(), parties.end());
  // The worklist hashes beside the party indexes (see WorklistKeyOf).
  for (const auto& k : parties) keys.push_back(WorklistKeyOfParty(p, k));
  std::vector<std::string> args = {c.id,
                                   c.request,
                                   c.idempotency ? c.idempotency->fingerprint : "",
                                   absl::StrCat(c.status),
                                   absl::StrCat(c.instrument),
                                   absl::StrCat(c.urgency),
                                   c.issuing_state,
                                   c.requested_state,
                                   c.issuing_authority,
                                   c.executing_authority,
                                   absl::StrCat(c.created_ms),
                                   c.etag,
                                   absl::StrCat(c.idempotency_ttl_ms),
                                   c.submitted,
                                   c.gone_id,
                                   absl::StrCat(parties.size())};
  EvalTyped<CreateReply>(
      redis, CreateScript(), std::move(keys), std::move(args),
      [](const RedisReply& reply) -> absl::StatusOr<CreateReply> {
        constexpr absl::string_view kWhat = "create_request";
        auto out = Outcome(reply, kWhat);
        if (!out.ok()) return out.status();
        const std::string& kind = (*out)[0];
        if (kind == "created") return CreateReply{CreateReply::Kind::kCreated, ""};
        if (kind == "conflict") return CreateReply{CreateReply::Kind::kConflict, ""};
        if (kind == "collision") return CreateReply{CreateReply::Kind::kCollision, ""};
        if (kind == "replayed" && out->size() == 2) {
          return CreateReply{CreateReply::Kind::kReplayed, (*out)[1]};
        }
        return Unexpected(kWhat);
      },
      std::move(done));
}

// lua/list_page.lua
struct ListPageCall {
  int shard = 0;
  std::vector<std::string> ids;  // the candidates, in index order
  int limit = 0;
  std::string status, instrument, issuing_state, requested_state, urgency;  // '' = any
  std::string created_from_ms, created_to_ms;                               // '' = any
  bool scoped = false;
  std::string scope_authority_id, scope_central_state;
};
struct ListPageReply {
  size_t examined = 0;                                   // candidates examined, in order
  std::vector<std::pair<size_t, StoredFields>> matches;  // position in ids (0-based), fields
};

void RunListPage(common::RedisClient& redis, const ListPageCall& c, Done<ListPageReply> done) {
  std::vector<std::string> keys;
  keys.reserve(c.ids.size());
  const std::string prefix = ReqPrefix(c.shard);
  for (const std::string& id : c.ids) keys.push_back(absl::StrCat(prefix, id));
  std::vector<std::string> args = {absl::StrCat(c.limit), c.status,
                                   c.instrument,          c.issuing_state,
                                   c.requested_state,     c.urgency,
                                   c.created_from_ms,     c.created_to_ms,
                                   c.scoped ? "1" : "",   c.scope_authority_id,
                                   c.scope_central_state};
  const size_t candidates = c.ids.size();
  EvalTyped<ListPageReply>(
      redis, ListPageScript(), std::move(keys), std::move(args),
      [candidates](const RedisReply& reply) -> absl::StatusOr<ListPageReply> {
        constexpr absl::string_view kWhat = "list_page";
        auto elements = common::ReplyArray(reply, kWhat);
        if (!elements.ok()) return elements.status();
        const std::vector<RedisReply>& e = **elements;
        if (e.empty() || (e.size() - 1) % 6 != 0) return Unexpected(kWhat);
        ListPageReply out;
        auto examined = common::ReplyInteger(e[0], kWhat);
        if (!examined.ok()) return examined.status();
        if (*examined < 0 || static_cast<size_t>(*examined) > candidates) return Unexpected(kWhat);
        out.examined = static_cast<size_t>(*examined);
        for (size_t i = 1; i < e.size(); i += 6) {
          auto position = common::ReplyInteger(e[i], kWhat);
          if (!position.ok()) return position.status();
          if (*position < 1 || static_cast<size_t>(*position) > candidates) {
            return Unexpected(kWhat);
          }
          StoredFields f;
          const std::pair<std::string*, int> parts[] = {
              {&f.pb, 1}, {&f.status, 2}, {&f.etag, 3}, {&f.updated_ms, 4}, {&f.nd, 5}};
          for (auto [field, k] : parts) {
            auto text = common::ReplyOptionalString(e[i + k], kWhat);
            if (!text.ok()) return text.status();
            *field = text->value_or("");
          }
          out.matches.emplace_back(static_cast<size_t>(*position) - 1, std::move(f));
        }
        return out;
      },
      std::move(done));
}

// lua/load_request.lua
struct LoadCall {
  int shard = 0;
  std::string id;
  std::optional<Idempotency> idempotency;
};
struct LoadReply {
  enum class Kind { kFound, kReplayed, kConflict, kMissing };
  Kind kind = Kind::kFound;
  StoredFields stored;  // kFound
  std::string result;   // kReplayed
};

std::string IdemKeyOf(int shard, const std::optional<Idempotency>& idem) {
  return idem ? absl::StrCat(Sharding::Prefix(shard), "idem:", idem->scope, ":", idem->request_id)
              : absl::StrCat(Sharding::Prefix(shard), "idem:-");
}

void RunLoad(common::RedisClient& redis, const LoadCall& c, Done<LoadReply> done) {
  EvalTyped<LoadReply>(
      redis, LoadScript(),
      {absl::StrCat(ReqPrefix(c.shard), c.id), IdemKeyOf(c.shard, c.idempotency)},
      {c.idempotency ? c.idempotency->fingerprint : ""},
      [](const RedisReply& reply) -> absl::StatusOr<LoadReply> {
        constexpr absl::string_view kWhat = "load_request";
        auto out = Outcome(reply, kWhat);
        if (!out.ok()) return out.status();
        const std::string& kind = (*out)[0];
        LoadReply r;
        if (kind == "missing") {
          r.kind = LoadReply::Kind::kMissing;
        } else if (kind == "conflict") {
          r.kind = LoadReply::Kind::kConflict;
        } else if (kind == "replayed" && out->size() == 2) {
          r.kind = LoadReply::Kind::kReplayed;
          r.result = (*out)[1];
        } else if (kind == "found" && out->size() == 6) {
          r.stored = StoredAt(*out, 1);
        } else {
          return Unexpected(kWhat);
        }
        return r;
      },
      std::move(done));
}

// lua/history_range.lua
struct HistoryRangeCall {
  int shard = 0;
  std::string id;
  int64_t first = 0;
  int64_t last = 0;
};
struct HistoryRangeReply {
  int64_t length = 0;
  std::vector<std::string> events;  // serialized
};

void RunHistoryRange(common::RedisClient& redis, const HistoryRangeCall& c,
                     Done<HistoryRangeReply> done) {
  EvalTyped<HistoryRangeReply>(
      redis, HistoryRangeScript(), {absl::StrCat(Sharding::Prefix(c.shard), "hist:", c.id)},
      {absl::StrCat(c.first), absl::StrCat(c.last)},
      [](const RedisReply& reply) -> absl::StatusOr<HistoryRangeReply> {
        constexpr absl::string_view kWhat = "history_range";
        auto elements = common::ReplyArray(reply, kWhat);
        if (!elements.ok()) return elements.status();
        if ((*elements)->size() != 2) return Unexpected(kWhat);
        HistoryRangeReply out;
        auto length = common::ReplyInteger((**elements)[0], kWhat);
        if (!length.ok()) return length.status();
        auto events = common::ReplyStrings((**elements)[1], kWhat);
        if (!events.ok()) return events.status();
        out.length = *length;
        out.events = *std::move(events);
        return out;
      },
      std::move(done));
}

// lua/get_recorded.lua
struct GetRecordedCall {
  int shard = 0;
  std::string id;
  const RecordedRead* read = nullptr;
};
struct GetRecordedReply {
  std::optional<StoredFields> stored;  // nullopt: no such request
  bool recorded = false;
};

void RunGetRecorded(common::RedisClient& redis, const GetRecordedCall& c,
                    Done<GetRecordedReply> done) {
  const RecordedRead& read = *c.read;
  EvalTyped<GetRecordedReply>(
      redis, GetRecordedScript(), {absl::StrCat(ReqPrefix(c.shard), c.id), read.entry.pending_key},
      {read.scope.all ? "1" : "", read.scope.authority_id, read.scope.central_state,
       absl::StrCat(read.entry.max_pending), read.entry.request_id, read.entry.mac,
       read.entry.entry},
      [](const RedisReply& reply) -> absl::StatusOr<GetRecordedReply> {
        constexpr absl::string_view kWhat = "get_recorded";
        auto elements = common::ReplyArray(reply, kWhat);
        if (!elements.ok()) return elements.status();
        GetRecordedReply out;
        if ((*elements)->empty()) return out;
        if ((*elements)->size() != 6) return Unexpected(kWhat);
        StoredFields f;
        const std::pair<std::string*, int> parts[] = {
            {&f.pb, 0}, {&f.status, 1}, {&f.etag, 2}, {&f.updated_ms, 3}, {&f.nd, 5}};
        for (auto [field, k] : parts) {
          auto text = common::ReplyOptionalString((**elements)[k], kWhat);
          if (!text.ok()) return text.status();
          *field = text->value_or("");
        }
        auto recorded = common::ReplyInteger((**elements)[4], kWhat);
        if (!recorded.ok()) return recorded.status();
        out.stored = std::move(f);
        out.recorded = *recorded == 1;
        return out;
      },
      std::move(done));
}

// lua/mutate_request.lua
struct MutateCall {
  int shard = 0;
  const Mutation* mutation = nullptr;
  // The indexed fields the change is computed on (a field missing here reads as '').
  std::map<std::string, std::string> before;
  int64_t idempotency_ttl_ms = 0;
};
struct MutateReply {
  enum class Kind {
    kApplied,
    kReplayed,
    kConflict,
    kDuplicate,
    kMissing,
    kStale,
    kMoved,
    kNoData,
    kQuota
  };
  Kind kind = Kind::kApplied;
  std::string result;                          // kReplayed
  std::string version;                         // kStale: the stored version
  std::map<std::string, std::string> current;  // kMoved: the checked fields as stored
  std::vector<std::string> quota;              // kQuota: {'quota', which, used}
};

// The party indexes (see RunCreate) of a request with these indexed fields.
std::set<std::string> PartyIndexes(const std::string& p,
                                   const std::map<std::string, std::string>& fields) {
  std::set<std::string> out;
  for (const char* f : {"issuing_authority", "executing_authority"}) {
    auto it = fields.find(f);
    if (it != fields.end() && !it->second.empty()) {
      out.insert(absl::StrCat(p, "idx:party:a:", it->second));
    }
  }
  for (const char* f : {"issuing_state", "requested_state"}) {
    auto it = fields.find(f);
    if (it != fields.end() && !it->second.empty()) {
      out.insert(absl::StrCat(p, "idx:party:s:", it->second));
    }
  }
  return out;
}

void RunMutate(common::RedisClient& redis, const MutateCall& c, Done<MutateReply> done) {
  const Mutation& m = *c.mutation;
  const std::string p = Sharding::Prefix(c.shard);
  std::vector<std::string> keys = {
      absl::StrCat(p, "req:", m.id),
      absl::StrCat(p, "hist:", m.id),
      common::EventKeys::Outbox(c.shard, "intake"),
      IdemKeyOf(c.shard, m.idempotency),
      m.dedupe ? m.dedupe->seen_key : absl::StrCat(p, "seen:-"),
      m.document ? m.document->data_key : absl::StrCat(p, "doc:-"),
      m.document ? m.document->list_key : absl::StrCat(p, "docs:-"),
      m.document ? m.document->usage_key : absl::StrCat(p, "docbytes:-"),
      RedisDocumentStore::AuthorityUsageKey(c.shard),
      absl::StrCat(p, "idx:updated"),
      absl::StrCat(p, "idx:closed"),
      RedisRequestStore::CountsKey(c.shard)};
  // Which index entries the change moves, from the fields it is computed on: each field
  // that changes leaves idx:<field>:<old> and enters idx:<field>:<new> (the party fields
  // feed the party indexes instead), as the fields are set in order.
  std::vector<std::string> checked;  // field, value pairs
  std::vector<std::string> leave, enter;
  bool status_moves = false;
  std::set<std::string> party_before, party_after;
  if (!m.fields.empty()) {
    std::map<std::string, std::string> now;
    auto believe = [&](const std::string& f) -> std::string& {
      auto it = now.find(f);
      if (it != now.end()) return it->second;
      auto known = c.before.find(f);
      std::string& slot = now[f];
      slot = known == c.before.end() ? "" : known->second;
      checked.push_back(f);
      checked.push_back(slot);
      return slot;
    };
    for (const char* f :
         {"issuing_authority", "executing_authority", "issuing_state", "requested_state"}) {
      believe(f);
    }
    party_before = PartyIndexes(p, now);
    for (const auto& [f, v] : m.fields) {
      if (f == "nd") continue;  // the next deadline: stored, neither checked nor indexed
      std::string& old = believe(f);
      if (old == v) continue;
      if (f == "status") status_moves = true;
      // The next due time has no index of its own: the worklist rows carry it.
      if (f != "issuing_authority" && f != "executing_authority" && f != "next_due_ms") {
        if (!old.empty()) leave.push_back(absl::StrCat(p, "idx:", f, ":", old));
        if (!v.empty()) enter.push_back(absl::StrCat(p, "idx:", f, ":", v));
      }
      old = v;
    }
    party_after = PartyIndexes(p, now);
  }
  std::vector<std::string> party_leave, party_enter;
  for (const auto& k : party_before) {
    if (!party_after.count(k)) party_leave.push_back(k);
  }
  for (const auto& k : party_after) {
    if (!party_before.count(k)) party_enter.push_back(k);
  }
  for (auto* list : {&leave, &enter, &party_leave, &party_enter}) {
    keys.insert(keys.end(), list->begin(), list->end());
  }
  // Any change of an indexed field refreshes the request's worklist rows (in the hashes of
  // the parties it has after the change) and drops them from the parties it leaves.
  for (const auto& k : party_leave) keys.push_back(WorklistKeyOfParty(p, k));
  for (const auto& k : party_after) keys.push_back(WorklistKeyOfParty(p, k));
  const DocumentCommit* d = m.document ? &*m.document : nullptr;
  std::vector<std::string> args = {m.expected_version ? absl::StrCat(*m.expected_version) : "",
                                   m.new_version ? absl::StrCat(*m.new_version) : "",
                                   absl::StrCat(m.updated_ms),
                                   m.request ? m.request->SerializeAsString() : "",
                                   m.idempotency ? m.idempotency->fingerprint : "",
                                   absl::StrCat(c.idempotency_ttl_ms),
                                   m.result,
                                   m.dedupe ? m.dedupe->retention_ms : "",
                                   m.id,
                                   d ? d->document : "",
                                   d ? d->authority : "",
                                   d ? absl::StrCat(d->size_bytes) : "0",
                                   d ? absl::StrCat(d->max_request_bytes) : "0",
                                   d ? absl::StrCat(d->max_authority_bytes) : "0",
                                   status_moves ? FinalStatusesText() : "",
                                   absl::StrCat(leave.size()),
                                   absl::StrCat(enter.size()),
                                   absl::StrCat(party_leave.size()),
                                   absl::StrCat(party_enter.size()),
                                   absl::StrCat(checked.size() / 2),
                                   absl::StrCat(m.fields.size()),
                                   absl::StrCat(m.history.size()),
                                   absl::StrCat(party_leave.size()),
                                   absl::StrCat(party_after.size()),
                                   d ? absl::StrCat(d->authority_bytes_elsewhere) : "0"};
  args.insert(args.end(), checked.begin(), checked.end());
  for (const auto& [field, value] : m.fields) {
    args.push_back(field);
    args.push_back(value);
  }
  for (const auto& e : m.history) args.push_back(e.SerializeAsString());
  for (const auto& e : m.outbox) args.push_back(e.SerializeAsString());
  EvalTyped<MutateReply>(
      redis, MutateScript(), std::move(keys), std::move(args),
      [](const RedisReply& reply) -> absl::StatusOr<MutateReply> {
        constexpr absl::string_view kWhat = "mutate_request";
        auto out = Outcome(reply, kWhat);
        if (!out.ok()) return out.status();
        const std::string& kind = (*out)[0];
        MutateReply r;
        if (kind == "applied") {
          r.kind = MutateReply::Kind::kApplied;
        } else if (kind == "duplicate") {
          r.kind = MutateReply::Kind::kDuplicate;
        } else if (kind == "replayed" && out->size() == 2) {
          r.kind = MutateReply::Kind::kReplayed;
          r.result = (*out)[1];
        } else if (kind == "conflict") {
          r.kind = MutateReply::Kind::kConflict;
        } else if (kind == "missing") {
          r.kind = MutateReply::Kind::kMissing;
        } else if (kind == "nodata") {
          r.kind = MutateReply::Kind::kNoData;
        } else if (kind == "stale" && out->size() == 2) {
          r.kind = MutateReply::Kind::kStale;
          r.version = (*out)[1];
        } else if (kind == "moved" && out->size() % 2 == 1) {
          r.kind = MutateReply::Kind::kMoved;
          for (size_t i = 1; i + 1 < out->size(); i += 2) r.current[(*out)[i]] = (*out)[i + 1];
        } else if (kind == "quota") {
          r.kind = MutateReply::Kind::kQuota;
          r.quota = *std::move(out);
        } else {
          return Unexpected(kWhat);
        }
        return r;
      },
      std::move(done));
}

// lua/find_retention_work.lua
struct RetentionWorkCall {
  int shard = 0;
  int64_t closed_before_ms = 0;
  int64_t tombstoned_before_ms = 0;
  int limit = 1;
};
struct RetentionWorkReply {
  std::vector<std::string> closed;
  std::vector<std::string> tombstoned;
  std::vector<std::string> unaudited;  // field, erased ms, ...
};

std::string UnauditedKey(int shard) {
  return absl::StrCat(Sharding::Prefix(shard), "retention:unaudited");
}

void RunFindRetentionWork(common::RedisClient& redis, const RetentionWorkCall& c,
                          Done<RetentionWorkReply> done) {
  const std::string p = Sharding::Prefix(c.shard);
  EvalTyped<RetentionWorkReply>(
      redis, RetentionWorkScript(),
      {absl::StrCat(p, "idx:closed"), absl::StrCat(p, "idx:tombstoned"), UnauditedKey(c.shard)},
      {absl::StrCat(c.closed_before_ms), absl::StrCat(c.tombstoned_before_ms),
       absl::StrCat(c.limit)},
      [](const RedisReply& reply) -> absl::StatusOr<RetentionWorkReply> {
        constexpr absl::string_view kWhat = "find_retention_work";
        auto elements = common::ReplyArray(reply, kWhat);
        if (!elements.ok()) return elements.status();
        if ((*elements)->size() != 3) return Unexpected(kWhat);
        RetentionWorkReply out;
        const std::pair<std::vector<std::string>*, int> parts[] = {
            {&out.closed, 0}, {&out.tombstoned, 1}, {&out.unaudited, 2}};
        for (auto [list, k] : parts) {
          auto strings = common::ReplyStrings((**elements)[k], kWhat);
          if (!strings.ok()) return strings.status();
          *list = *std::move(strings);
        }
        return out;
      },
      std::move(done));
}

// lua/erase_personal_data.lua
struct ErasePersonalCall {
  int shard = 0;
  const PersonalDataErasure* erasure = nullptr;
};
enum class EraseReply { kErased, kSkip, kStale, kMoved };

absl::StatusOr<EraseReply> ParseErase(const RedisReply& reply, absl::string_view what) {
  auto out = Outcome(reply, what);
  if (!out.ok()) return out.status();
  const std::string& kind = (*out)[0];
  if (kind == "erased") return EraseReply::kErased;
  if (kind == "skip") return EraseReply::kSkip;
  if (kind == "stale") return EraseReply::kStale;
  if (kind == "moved") return EraseReply::kMoved;
  return Unexpected(what);
}

void RunErasePersonal(common::RedisClient& redis, const ErasePersonalCall& c,
                      Done<EraseReply> done) {
  const PersonalDataErasure& e = *c.erasure;
  const std::string p = Sharding::Prefix(c.shard);
  std::vector<std::string> keys = {absl::StrCat(p, "req:", e.id),
                                   absl::StrCat(p, "hist:", e.id),
                                   RedisDocumentStore::ListKey(c.shard, e.id),
                                   common::EventKeys::Outbox(c.shard, "intake"),
                                   absl::StrCat(p, "idx:closed"),
                                   absl::StrCat(p, "idx:tombstoned"),
                                   UnauditedKey(c.shard),
                                   RedisDocumentStore::UsageKey(c.shard, e.id),
                                   RedisDocumentStore::AuthorityUsageKey(c.shard),
                                   absl::StrCat(p, "idx:updated")};
  for (const auto& d : e.document_ids) keys.push_back(RedisDocumentStore::DataKey(c.shard, d));
  EvalTyped<EraseReply>(
      redis, ErasePersonalScript(), std::move(keys),
      {absl::StrCat(e.expected_version), absl::StrCat(e.expected_version + 1),
       absl::StrCat(e.closed_before_ms), absl::StrCat(e.now_ms), e.tombstone.SerializeAsString(),
       e.erased.SerializeAsString(), e.id, absl::StrCat(e.document_ids.size())},
      [](const RedisReply& reply) { return ParseErase(reply, "erase_personal_data"); },
      std::move(done));
}

// lua/erase_request.lua
struct EraseRequestCall {
  int shard = 0;
  std::string id;
  int64_t tombstoned_before_ms = 0;
  int64_t now_ms = 0;
  // The tombstone's hash as read (HGETALL), which names its index entries.
  std::map<std::string, std::string> hash;
};

bool StoredField(const std::string& field) {
  return field == "pb" || field == "etag" || field == "created_ms" || field == "updated_ms" ||
         field == "erased_ms" || field == "nd";
}

void RunEraseRequest(common::RedisClient& redis, const EraseRequestCall& c, Done<EraseReply> done) {
  const std::string p = Sharding::Prefix(c.shard);
  std::vector<std::string> keys = {absl::StrCat(p, "req:", c.id),
                                   absl::StrCat(p, "hist:", c.id),
                                   RedisDocumentStore::ListKey(c.shard, c.id),
                                   absl::StrCat(p, "idx:tombstoned"),
                                   UnauditedKey(c.shard),
                                   RedisRequestStore::CountsKey(c.shard),
                                   absl::StrCat(p, "idx:all"),
                                   absl::StrCat(p, "idx:updated"),
                                   absl::StrCat(p, "idx:closed")};
  std::vector<std::string> args = {c.id, absl::StrCat(c.tombstoned_before_ms),
                                   absl::StrCat(c.now_ms)};
  // Every hash field but the stored ones names an index (idx:<field>:<value>, as the mutate
  // script keeps them), so the entries go whatever indexes a later change adds; the party
  // indexes go too.
  std::map<std::string, std::string> indexed;
  for (const auto& [field, value] : c.hash) {
    if (StoredField(field)) continue;
    args.push_back(field);
    args.push_back(value);
    indexed[field] = value;
    // The next due time has no index (the worklist rows carry it).
    if (!value.empty() && field != "next_due_ms") {
      keys.push_back(absl::StrCat(p, "idx:", field, ":", value));
    }
  }
  for (const auto& k : PartyIndexes(p, indexed)) keys.push_back(k);
  for (const auto& k : PartyIndexes(p, indexed)) keys.push_back(WorklistKeyOfParty(p, k));
  EvalTyped<EraseReply>(
      redis, EraseRequestScript(), std::move(keys), std::move(args),
      [](const RedisReply& reply) { return ParseErase(reply, "erase_request"); }, std::move(done));
}

// Create, Load, Mutate and EraseRequest retry a script whose keys were computed from data
// that changed in between ('moved', or an idempotency record naming a gone request) at most
// this many times, then answer ABORTED.
constexpr int kAttempts = 3;

}  // namespace

void RedisRequestStore::Create(NewRequest in, Done<CreateOutcome> done) {
  CreateAttempt(std::move(in), "", kAttempts, std::move(done));
}

void RedisRequestStore::CreateAttempt(NewRequest in, std::string gone_id, int attempts_left,
                                      Done<CreateOutcome> done) {
  auto shard = sharding_.ShardOf("rq", in.request.id());
  if (!shard.ok()) return done(shard.status());
  const v1::Request& r = in.request;
  CreateCall c;
  c.shard = *shard;
  c.id = r.id();
  c.request = r.SerializeAsString();
  c.idempotency = in.idempotency;
  c.status = static_cast<int>(r.status());
  c.instrument = static_cast<int>(r.content().instrument());
  c.urgency = static_cast<int>(r.content().urgency());
  c.issuing_state = r.content().issuing_authority().state();
  c.requested_state = r.content().requested_state();
  c.issuing_authority = r.content().issuing_authority().authority_id();
  c.executing_authority = r.executing_authority().authority_id();
  c.created_ms = CursorOf(r).create_ms;
  c.etag = r.etag();
  c.idempotency_ttl_ms = absl::ToInt64Milliseconds(idempotency_ttl_);
  c.submitted = in.submitted.SerializeAsString();
  c.gone_id = std::move(gone_id);
  RunCreate(redis_, c,
            [this, in = std::move(in), attempts_left,
             done = std::move(done)](absl::StatusOr<CreateReply> reply) mutable {
              if (!reply.ok()) return done(reply.status());
              switch (reply->kind) {
                case CreateReply::Kind::kCreated:
                  return done(CreateOutcome{std::move(in.request), false});
                case CreateReply::Kind::kConflict:
                  return done(IdempotencyConflict());
                case CreateReply::Kind::kCollision:
                  return done(absl::AbortedError("request id collision; retry"));
                case CreateReply::Kind::kReplayed:
                  break;
              }
              // The key's request lives in the same shard; the script cannot name it (its
              // id is data), so it is read here: a second round trip, on a replay only.
              const std::string earlier = reply->earlier_id;
              Get(earlier, [this, in = std::move(in), earlier, attempts_left,
                            done = std::move(done)](absl::StatusOr<v1::Request> found) mutable {
                if (found.ok()) return done(CreateOutcome{*std::move(found), true});
                if (!absl::IsNotFound(found.status())) return done(found.status());
                // Gone since: the key creates a new request, as if unused.
                if (attempts_left <= 1) {
                  return done(absl::AbortedError("request id collision; retry"));
                }
                CreateAttempt(std::move(in), earlier, attempts_left - 1, std::move(done));
              });
            });
}

void RedisRequestStore::Get(const std::string& id, Done<v1::Request> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command(
      {"HMGET", absl::StrCat(ReqPrefix(*shard), id), "pb", "status", "etag", "updated_ms", "nd"},
      [id, done](absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) return done(reply.status());
        constexpr absl::string_view kWhat = "HMGET request";
        auto elements = common::ReplyArray(*reply, kWhat);
        if (!elements.ok()) return done(elements.status());
        if ((*elements)->size() != 5) return done(Unexpected(kWhat));
        if ((**elements)[0].is_nil()) return done(NoSuchRequest(id));
        std::vector<std::string> strings;
        for (const auto& e : **elements) {
          auto text = common::ReplyOptionalString(e, kWhat);
          if (!text.ok()) return done(text.status());
          strings.push_back(text->value_or(""));
        }
        done(ParseStored(StoredAt(strings, 0)));
      });
}

// A list gathers the page from every shard, in rounds. The first round asks each shard for
// a share of the page (twice its even share, at least 4) rather than a whole page: requests
// spread over 16 shards, and a whole page from each read and shipped 16 pages (every one
// with its stored protobuf) to answer one. The page is what every shard is known to have
// been scanned past; when that is short of the page size, the shards not yet exhausted are
// asked again from where each stopped, for the rest, up to kListRounds rounds. A page still
// short then (sparse filters hitting the scan budget) is answered as is with a `next`
// cursor, as before.
struct RedisRequestStore::ShardPage {
  bool exhausted = true;
  std::optional<ListCursor> last;
  std::vector<v1::Request> requests;
};

struct RedisRequestStore::ListGather {
  ListGather(ListQuery q, Done<ListPage> d, int shards)
      : query(std::move(q)), done(std::move(d)), pages(shards) {}
  const ListQuery query;
  const Done<ListPage> done;
  absl::Mutex mu;
  int pending ABSL_GUARDED_BY(mu) = 0;
  int round = 0;  // touched only between rounds
  int need = 0;   // matches the round is for, over all its shards (between rounds)
  absl::Status error ABSL_GUARDED_BY(mu);
  // What each shard returned so far, in order, with where it stopped.
  std::vector<ShardPage> pages;
};

void RedisRequestStore::GetRecorded(const std::string& id, const RecordedRead& read,
                                    Done<ReadOutcome> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  RunGetRecorded(redis_, GetRecordedCall{*shard, id, &read},
                 [id, done](absl::StatusOr<GetRecordedReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   if (!reply->stored) return done(NoSuchRequest(id));
                   auto request = ParseStored(*reply->stored);
                   if (!request.ok()) return done(request.status());
                   done(ReadOutcome{*std::move(request), reply->recorded});
                 });
}

// A request as its worklist row tells it (see create_request.lua): enough for
// MatchesFilters and CursorOf, so candidates are chosen with the same rules as the
// in-memory store. nullopt when the row does not parse.
std::optional<v1::Request> RequestOfRow(const std::string& id, const std::string& row) {
  std::vector<std::string> f = absl::StrSplit(row, '\x1f');
  if (f.size() != 9) return std::nullopt;
  int status = 0, instrument = 0, urgency = 0;
  int64_t created_ms = 0, due_ms = 0;
  if (!absl::SimpleAtoi(f[0], &status) || !absl::SimpleAtoi(f[1], &instrument) ||
      !absl::SimpleAtoi(f[2], &urgency) || !absl::SimpleAtoi(f[7], &created_ms)) {
    return std::nullopt;
  }
  v1::Request r;
  r.set_id(id);
  r.set_status(static_cast<common::v1::RequestStatus>(status));
  auto* c = r.mutable_content();
  c->set_instrument(static_cast<common::v1::Instrument>(instrument));
  c->set_urgency(static_cast<common::v1::Urgency>(urgency));
  c->mutable_issuing_authority()->set_state(f[3]);
  c->set_requested_state(f[4]);
  c->mutable_issuing_authority()->set_authority_id(f[5]);
  if (!f[6].empty()) r.mutable_executing_authority()->set_authority_id(f[6]);
  *r.mutable_create_time() = google::protobuf::util::TimeUtil::MillisecondsToTimestamp(created_ms);
  if (!f[8].empty()) {
    if (!absl::SimpleAtoi(f[8], &due_ms)) return std::nullopt;
    *r.mutable_next_deadline()->mutable_due_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(due_ms);
  }
  return r;
}

// A caller's worklist page (a scoped list not ordered by update time) in two waves of
// commands, each wave sent to every shard at once: first every shard's worklist hash for
// the caller (HGETALL wl:a:<authority>, or wl:s:<state> for a central authority), from whose
// rows C++ filters, orders and cuts the page; then list_page.lua on each shard holding part
// of the page, which reads those requests' records (and checks the caller's reach again).
// A row's request that is gone or no longer matches (an erased one) is left out: the page is
// then shorter, and the cursor still follows the rows.
struct RedisRequestStore::WorklistGather {
  WorklistGather(ListQuery q, Done<ListPage> d, int shards)
      : query(std::move(q)), done(std::move(d)), rows(shards) {}
  const ListQuery query;
  const Done<ListPage> done;
  absl::Mutex mu;
  int pending ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
  std::vector<std::vector<std::pair<std::string, std::string>>> rows;  // per shard: id, row
  std::vector<ListCursor> page;                                  // the page's positions, in order
  std::map<std::string, v1::Request> found ABSL_GUARDED_BY(mu);  // by id
  std::optional<ListCursor> next;
};

void RedisRequestStore::ListWorklist(const ListQuery& query, Done<ListPage> done) {
  const int shards = sharding_.shard_count();
  auto gather = std::make_shared<WorklistGather>(query, std::move(done), shards);
  {
    absl::MutexLock lock(&gather->mu);
    gather->pending = shards;
  }
  const std::string party = query.scope->central_state.empty()
                                ? absl::StrCat("a:", query.scope->authority_id)
                                : absl::StrCat("s:", query.scope->central_state);
  for (int shard = 0; shard < shards; ++shard) {
    redis_.Command({"HGETALL", absl::StrCat(Sharding::Prefix(shard), "wl:", party)},
                   [this, gather, shard](absl::StatusOr<RedisReply> reply) {
                     constexpr absl::string_view kWhat = "HGETALL worklist";
                     absl::StatusOr<std::vector<std::string>> items =
                         reply.ok() ? common::ReplyStrings(*reply, kWhat)
                                    : absl::StatusOr<std::vector<std::string>>(reply.status());
                     bool last = false;
                     {
                       absl::MutexLock lock(&gather->mu);
                       if (!items.ok()) {
                         if (gather->error.ok()) gather->error = items.status();
                       } else {
                         for (size_t i = 0; i + 1 < items->size(); i += 2) {
                           gather->rows[shard].emplace_back((*items)[i], (*items)[i + 1]);
                         }
                       }
                       last = --gather->pending == 0;
                     }
                     if (last) WorklistRecords(gather);
                   });
  }
}

void RedisRequestStore::WorklistRecords(const std::shared_ptr<WorklistGather>& gather) {
  const ListQuery& query = gather->query;
  absl::Status error;
  {
    absl::MutexLock lock(&gather->mu);
    error = gather->error;
  }
  if (!error.ok()) return gather->done(error);
  // The candidates, from the rows alone.
  std::vector<std::pair<ListCursor, int>> candidates;  // position, shard
  for (size_t shard = 0; shard < gather->rows.size(); ++shard) {
    for (const auto& [id, row] : gather->rows[shard]) {
      std::optional<v1::Request> r = RequestOfRow(id, row);
      if (!r.has_value() || !MatchesFilters(query, *r)) continue;
      ListCursor at = CursorOf(*r, query);
      if (query.after.has_value() && !ComesBefore(*query.after, at)) continue;
      candidates.emplace_back(std::move(at), static_cast<int>(shard));
    }
  }
  const size_t want = static_cast<size_t>(query.page_size);
  auto before = [](const std::pair<ListCursor, int>& a, const std::pair<ListCursor, int>& b) {
    return ComesBefore(a.first, b.first);
  };
  if (candidates.size() > want) {
    std::partial_sort(candidates.begin(), candidates.begin() + want, candidates.end(), before);
    candidates.resize(want);
    gather->next = candidates.back().first;
  } else {
    std::sort(candidates.begin(), candidates.end(), before);
  }
  std::map<int, std::vector<std::string>> by_shard;
  for (const auto& [at, shard] : candidates) {
    gather->page.push_back(at);
    by_shard[shard].push_back(at.id);
  }
  if (by_shard.empty()) return WorklistDone(gather);
  {
    absl::MutexLock lock(&gather->mu);
    gather->pending = static_cast<int>(by_shard.size());
  }
  const bool scoped = !query.scope->all;
  for (auto& [shard, ids] : by_shard) {
    ListPageCall call;
    call.shard = shard;
    call.limit = static_cast<int>(ids.size());
    call.ids = std::move(ids);
    call.scoped = scoped;
    call.scope_authority_id = query.scope->authority_id;
    call.scope_central_state = query.scope->central_state;
    RunListPage(redis_, call, [this, gather](absl::StatusOr<ListPageReply> reply) {
      bool last = false;
      {
        absl::MutexLock lock(&gather->mu);
        if (!reply.ok()) {
          if (gather->error.ok()) gather->error = reply.status();
        } else {
          for (auto& [position, fields] : reply->matches) {
            auto r = ParseStored(fields);
            if (!r.ok()) {
              if (gather->error.ok()) gather->error = r.status();
              continue;
            }
            const std::string id = r->id();
            gather->found.emplace(id, *std::move(r));
          }
        }
        last = --gather->pending == 0;
      }
      if (last) WorklistDone(gather);
    });
  }
}

void RedisRequestStore::WorklistDone(const std::shared_ptr<WorklistGather>& gather) {
  ListPage out;
  absl::Status error;
  {
    absl::MutexLock lock(&gather->mu);
    error = gather->error;
    for (const ListCursor& at : gather->page) {
      auto it = gather->found.find(at.id);
      // The record decides: a row out of step with it (an erased request) is left out.
      if (it == gather->found.end() || !MatchesFilters(gather->query, it->second)) continue;
      out.requests.push_back(std::move(it->second));
    }
  }
  if (!error.ok()) return gather->done(error);
  out.next = gather->next;
  gather->done(std::move(out));
}

void RedisRequestStore::List(const ListQuery& query, Done<ListPage> done) {
  if (query.scope.has_value() && !query.scope->all && !query.by_update) {
    return ListWorklist(query, std::move(done));
  }
  // Every request, or a list by update time: the shards' indexes, which have no next due
  // order (the filters that are not Lua's are checked in C++ on the rows read).
  if (query.by_next_due) {
    return done(absl::InvalidArgumentError(
        "order_by: the next due order is offered on a caller's own worklist, not on lists of "
        "every request or by update time"));
  }
  const int shards = sharding_.shard_count();
  auto gather = std::make_shared<ListGather>(query, std::move(done), shards);
  std::vector<int> all(shards);
  for (int i = 0; i < shards; ++i) all[i] = i;
  const int share =
      std::min(query.page_size, std::max(4, 2 * ((query.page_size + shards - 1) / shards)));
  gather->need = query.page_size;
  ListRound(gather, all, share);
}

// A round in two steps. First every shard's candidates from its index (one command a shard,
// all sent at once). Then list_page.lua on each shard with candidates, which reads their
// hashes (declared in KEYS: their ids are data, so the script cannot name them) and keeps
// the matches. The index is the most selective one that serves the filters; when it serves
// them all, every entry matches (indexes change with their hash in one step), so a few more
// candidates than `limit` suffice, and only the round's first `need` candidates over all
// shards can make the page: the others' hashes are not read (a shard none of whose
// candidates is among them runs no script). Else the shard's scan budget is read.
struct RedisRequestStore::RoundShard {
  int shard = 0;
  ListPageCall call;
  std::vector<ListCursor> candidates;  // newest first, after the shard's cursor
  bool index_ends = false;             // the index has nothing past them
};

void RedisRequestStore::ListRound(const std::shared_ptr<ListGather>& gather,
                                  const std::vector<int>& shards, int limit) {
  const ListQuery& query = gather->query;
  auto reads = std::make_shared<std::vector<RoundShard>>(shards.size());
  auto outstanding = std::make_shared<std::atomic<int>>(static_cast<int>(shards.size()));
  auto failed = std::make_shared<absl::Mutex>();
  auto error = std::make_shared<absl::Status>();
  bool all_served = false;
  for (size_t slot = 0; slot < shards.size(); ++slot) {
    const int shard = shards[slot];
    const std::string p = Sharding::Prefix(shard);
    const bool scoped = query.scope.has_value() && !query.scope->all;
    ListPageCall call;
    call.shard = shard;
    call.limit = limit;
    call.status = query.status != 0 ? absl::StrCat(static_cast<int>(query.status)) : "";
    call.instrument = query.instrument != 0 ? absl::StrCat(static_cast<int>(query.instrument)) : "";
    call.issuing_state = query.issuing_state;
    call.requested_state = query.requested_state;
    call.urgency = query.urgency != 0 ? absl::StrCat(static_cast<int>(query.urgency)) : "";
    call.created_from_ms = query.created_from_ms ? absl::StrCat(*query.created_from_ms) : "";
    call.created_to_ms = query.created_to_ms ? absl::StrCat(*query.created_to_ms) : "";
    call.scoped = scoped;
    call.scope_authority_id = scoped ? query.scope->authority_id : "";
    call.scope_central_state = scoped ? query.scope->central_state : "";
    // The most selective index that serves the filters; the scan checks the others. Lists
    // by update walk the update-time index. A scoped list walks the caller's party index (a
    // central authority's: its state's, which holds the requests of the authorities of that
    // state too). `served` blanks, in a copy, the filter the index serves.
    std::string index = absl::StrCat(p, "idx:all");
    ListPageCall served = call;
    if (query.by_update) {
      index = absl::StrCat(p, "idx:updated");
    } else if (scoped) {
      index = query.scope->central_state.empty()
                  ? absl::StrCat(p, "idx:party:a:", query.scope->authority_id)
                  : absl::StrCat(p, "idx:party:s:", query.scope->central_state);
      served.scoped = false;
    } else if (query.status != 0) {
      index = absl::StrCat(p, "idx:status:", call.status);
      served.status.clear();
    } else if (query.instrument != 0) {
      index = absl::StrCat(p, "idx:instrument:", call.instrument);
      served.instrument.clear();
    } else if (!query.requested_state.empty()) {
      index = absl::StrCat(p, "idx:requested_state:", query.requested_state);
      served.requested_state.clear();
    } else if (!query.issuing_state.empty()) {
      index = absl::StrCat(p, "idx:issuing_state:", query.issuing_state);
      served.issuing_state.clear();
    } else if (query.urgency != 0) {
      index = absl::StrCat(p, "idx:urgency:", call.urgency);
      served.urgency.clear();
    }
    std::string max = "+inf", min = "-inf";
    if (!query.by_update && query.created_to_ms) max = absl::StrCat(*query.created_to_ms - 1);
    if (!query.by_update && query.created_from_ms) {
      min = absl::StrCat(*query.created_from_ms);
      served.created_from_ms.clear();
    }
    if (!query.by_update && query.created_to_ms) served.created_to_ms.clear();
    all_served = served.status.empty() && served.instrument.empty() &&
                 served.issuing_state.empty() && served.requested_state.empty() &&
                 served.urgency.empty() && served.created_from_ms.empty() &&
                 served.created_to_ms.empty() && !served.scoped;
    std::optional<ListCursor> after;
    {
      absl::MutexLock lock(&gather->mu);
      after = gather->pages[shard].last.has_value() ? gather->pages[shard].last : query.after;
    }
    if (after) max = absl::StrCat(after->create_ms);
    // Entries at the cursor's own time with ids at or after the cursor's come first and are
    // skipped; a few more are read for them.
    const int want = all_served ? std::min(kScanBudget, limit + 2) : kScanBudget;
    const int read = want + (after ? kCursorTies : 0);
    (*reads)[slot].shard = shard;
    (*reads)[slot].call = std::move(call);
    redis_.Command(
        {"ZREVRANGEBYSCORE", index, max, min, "WITHSCORES", "LIMIT", "0", absl::StrCat(read)},
        [this, gather, reads, outstanding, failed, error, slot, after, want, read,
         all_served](absl::StatusOr<RedisReply> reply) {
          constexpr absl::string_view kWhat = "ZREVRANGEBYSCORE list index";
          absl::StatusOr<std::vector<std::string>> items =
              reply.ok() ? common::ReplyStrings(*reply, kWhat)
                         : absl::StatusOr<std::vector<std::string>>(reply.status());
          absl::Status status = items.status();
          RoundShard& r = (*reads)[slot];
          bool dropped = false;  // read past `want`: left for the next round
          for (size_t i = 0; status.ok() && i + 1 < items->size(); i += 2) {
            ListCursor at;
            at.id = (*items)[i];
            double score = 0;
            if (!absl::SimpleAtoi((*items)[i + 1], &at.create_ms)) {
              if (!absl::SimpleAtod((*items)[i + 1], &score)) {
                status = Unexpected(kWhat);
                break;
              }
              at.create_ms = static_cast<int64_t>(score);
            }
            if (after && at.create_ms == after->create_ms && at.id >= after->id) continue;
            if (static_cast<int>(r.candidates.size()) < want) {
              r.candidates.push_back(std::move(at));
            } else {
              dropped = true;
            }
          }
          if (status.ok()) r.index_ends = static_cast<int>(items->size() / 2) < read && !dropped;
          if (!status.ok()) {
            absl::MutexLock lock(failed.get());
            if (error->ok()) *error = status;
          }
          if (outstanding->fetch_sub(1) != 1) return;
          absl::Status first_error;
          {
            absl::MutexLock lock(failed.get());
            first_error = *error;
          }
          ListRows(gather, std::move(*reads), all_served, std::move(first_error));
        });
  }
}

void RedisRequestStore::ListRows(const std::shared_ptr<ListGather>& gather,
                                 std::vector<RoundShard> reads, bool all_served,
                                 absl::Status error) {
  {
    absl::MutexLock lock(&gather->mu);
    gather->pending = static_cast<int>(reads.size());
  }
  if (!error.ok()) {
    for (const RoundShard& r : reads) ListShardDone(gather, r.shard, error, ShardPage{});
    return;
  }
  // The cutoff: the round's `need`-th candidate over all shards, when there are more.
  std::optional<ListCursor> cutoff;
  if (all_served && gather->need > 0) {
    std::vector<const ListCursor*> all;
    for (const RoundShard& r : reads) {
      for (const ListCursor& c : r.candidates) all.push_back(&c);
    }
    const size_t need = static_cast<size_t>(gather->need);
    if (all.size() > need) {
      std::nth_element(
          all.begin(), all.begin() + (need - 1), all.end(),
          [](const ListCursor* a, const ListCursor* b) { return ComesBefore(*a, *b); });
      cutoff = *all[need - 1];
    }
  }
  for (RoundShard& r : reads) {
    const int shard = r.shard;
    std::vector<ListCursor> candidates = std::move(r.candidates);
    bool cut = false;  // candidates past the cutoff left for a later round
    if (cutoff.has_value()) {
      size_t kept = 0;
      while (kept < candidates.size() && !ComesBefore(*cutoff, candidates[kept])) ++kept;
      cut = kept < candidates.size();
      candidates.resize(kept);
    }
    if (candidates.empty()) {
      ShardPage page;
      page.exhausted = r.index_ends && !cut;
      // Nothing of this shard comes before the cutoff: it is known up to there (unless it
      // was known further already).
      if (cut) {
        absl::MutexLock lock(&gather->mu);
        const std::optional<ListCursor>& prior = gather->pages[shard].last;
        if (!prior.has_value() || ComesBefore(*prior, *cutoff)) page.last = cutoff;
      }
      ListShardDone(gather, shard, absl::OkStatus(), std::move(page));
      continue;
    }
    ListPageCall call = std::move(r.call);
    call.ids.reserve(candidates.size());
    for (const auto& c : candidates) call.ids.push_back(c.id);
    if (all_served) call.limit = std::max(call.limit, static_cast<int>(call.ids.size()));
    const bool all_read = r.index_ends && !cut;
    RunListPage(redis_, call,
                [this, gather, shard, candidates = std::move(candidates), all_read, cut,
                 cutoff](absl::StatusOr<ListPageReply> page_reply) {
                  ShardPage page;
                  if (!page_reply.ok()) {
                    return ListShardDone(gather, shard, page_reply.status(), ShardPage{});
                  }
                  for (auto& [position, fields] : page_reply->matches) {
                    auto r = ParseStored(fields);
                    if (!r.ok()) return ListShardDone(gather, shard, r.status(), ShardPage{});
                    // The worklist filters list_page.lua does not know (statuses, open,
                    // side, counterpart, next due before): checked here.
                    if (!MatchesFilters(gather->query, *r)) continue;
                    page.requests.push_back(*std::move(r));
                  }
                  const size_t examined = page_reply->examined;
                  page.exhausted = all_read && examined == candidates.size();
                  if (examined > 0) page.last = candidates[examined - 1];
                  // Examined up to the cutoff, where its next candidate lies beyond.
                  if (cut && examined == candidates.size()) page.last = cutoff;
                  ListShardDone(gather, shard, absl::OkStatus(), std::move(page));
                });
  }
}

void RedisRequestStore::ListShardDone(const std::shared_ptr<ListGather>& gather, int shard,
                                      absl::Status error, ShardPage page) {
  bool last = false;
  {
    absl::MutexLock lock(&gather->mu);
    if (!error.ok() && gather->error.ok()) gather->error = error;
    ShardPage& kept = gather->pages[shard];
    if (error.ok()) {
      kept.exhausted = page.exhausted;
      if (page.last.has_value()) kept.last = page.last;
      for (auto& r : page.requests) kept.requests.push_back(std::move(r));
    }
    last = --gather->pending == 0;
  }
  if (last) ListEvaluate(gather);
}

void RedisRequestStore::ListEvaluate(const std::shared_ptr<ListGather>& gather) {
  const ListQuery& query = gather->query;
  absl::Status error;
  {
    absl::MutexLock lock(&gather->mu);
    error = gather->error;
  }
  if (!error.ok()) return gather->done(error);
  // Only positions every unfinished shard has scanned past are known completely.
  std::optional<ListCursor> boundary;
  std::vector<int> unfinished;
  std::vector<const v1::Request*> known;
  for (size_t shard = 0; shard < gather->pages.size(); ++shard) {
    const ShardPage& page = gather->pages[shard];
    if (!page.exhausted && page.last.has_value()) {
      unfinished.push_back(static_cast<int>(shard));
      if (!boundary.has_value() || ComesBefore(*page.last, *boundary)) boundary = page.last;
    }
  }
  const bool by_update = query.by_update;
  for (const ShardPage& page : gather->pages) {
    for (const v1::Request& r : page.requests) {
      if (!boundary.has_value() || !ComesBefore(*boundary, CursorOf(r, by_update))) {
        known.push_back(&r);
      }
    }
  }
  const size_t want = static_cast<size_t>(query.page_size);
  if (known.size() < want && !unfinished.empty() && ++gather->round < kListRounds) {
    gather->need = static_cast<int>(want - known.size());
    return ListRound(gather, unfinished, static_cast<int>(want - known.size()));
  }
  std::sort(known.begin(), known.end(), [by_update](const v1::Request* a, const v1::Request* b) {
    return ComesBefore(CursorOf(*a, by_update), CursorOf(*b, by_update));
  });
  ListPage out;
  if (known.size() > want) {
    known.resize(want);
    out.next = CursorOf(*known.back(), by_update);
  } else {
    out.next = boundary;
  }
  out.requests.reserve(known.size());
  for (const v1::Request* r : known) out.requests.push_back(*r);
  gather->done(std::move(out));
}

void RedisRequestStore::History(const std::string& id, Done<std::vector<common::v1::Event>> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command({"LRANGE", absl::StrCat(Sharding::Prefix(*shard), "hist:", id), "0", "-1"},
                 [id, done](absl::StatusOr<RedisReply> reply) {
                   if (!reply.ok()) return done(reply.status());
                   auto raw = common::ReplyStrings(*reply, "LRANGE history");
                   if (!raw.ok()) return done(raw.status());
                   if (raw->empty()) return done(NoSuchRequest(id));
                   done(ParseEvents(*raw));
                 });
}

void RedisRequestStore::HistoryRange(const std::string& id, int64_t offset, int limit,
                                     Done<HistoryPage> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  RunHistoryRange(redis_, HistoryRangeCall{*shard, id, offset, offset + std::max(limit, 1) - 1},
                  [id, done](absl::StatusOr<HistoryRangeReply> reply) {
                    if (!reply.ok()) return done(reply.status());
                    if (reply->length == 0) return done(NoSuchRequest(id));
                    auto events = ParseEvents(reply->events);
                    if (!events.ok()) return done(events.status());
                    done(HistoryPage{*std::move(events), reply->length});
                  });
}

void RedisRequestStore::Load(const std::string& id, const std::optional<Idempotency>& idem,
                             Done<Snapshot> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  RunLoad(redis_, LoadCall{*shard, id, idem}, [id, done](absl::StatusOr<LoadReply> reply) {
    if (!reply.ok()) return done(reply.status());
    Snapshot snap;
    switch (reply->kind) {
      case LoadReply::Kind::kMissing:
        return done(NoSuchRequest(id));
      case LoadReply::Kind::kConflict:
        return done(IdempotencyConflict());
      case LoadReply::Kind::kReplayed:
        snap.replay = std::move(reply->result);
        return done(std::move(snap));
      case LoadReply::Kind::kFound:
        break;
    }
    auto r = ParseStored(reply->stored);
    if (!r.ok()) return done(r.status());
    snap.request = *std::move(r);
    if (!absl::SimpleAtoi(snap.request.etag(), &snap.version)) {
      return done(absl::DataLossError("stored version is not a number"));
    }
    done(std::move(snap));
  });
}

void RedisRequestStore::Mutate(Mutation m, Done<MutationOutcome> done) {
  std::map<std::string, std::string> before(m.fields_before.begin(), m.fields_before.end());
  MutateAttempt(std::make_shared<const Mutation>(std::move(m)), std::move(before), kAttempts,
                std::move(done));
}

void RedisRequestStore::MutateAttempt(std::shared_ptr<const Mutation> m,
                                      std::map<std::string, std::string> before, int attempts_left,
                                      Done<MutationOutcome> done) {
  auto shard = sharding_.ShardOf("rq", m->id);
  if (!shard.ok()) return done(shard.status());
  MutateCall call{*shard, m.get(), std::move(before), absl::ToInt64Milliseconds(idempotency_ttl_)};
  RunMutate(
      redis_, call,
      [this, m, attempts_left, done = std::move(done)](absl::StatusOr<MutateReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        MutationOutcome out;
        switch (reply->kind) {
          case MutateReply::Kind::kApplied:
            return done(out);
          case MutateReply::Kind::kDuplicate:
            out.kind = MutationOutcome::Kind::kDuplicate;
            return done(out);
          case MutateReply::Kind::kReplayed:
            out.kind = MutationOutcome::Kind::kReplayed;
            out.result = std::move(reply->result);
            return done(out);
          case MutateReply::Kind::kConflict:
            return done(IdempotencyConflict());
          case MutateReply::Kind::kMissing:
            return done(NoSuchRequest(m->id));
          case MutateReply::Kind::kNoData:
            return done(absl::AbortedError(
                "the uploaded bytes expired before the upload completed; upload again"));
          case MutateReply::Kind::kStale:
            return done(StaleVersion(reply->version));
          case MutateReply::Kind::kQuota:
            if (!m->document) return done(Unexpected("mutate_request"));
            return done(QuotaReplyToStatus(
                reply->quota,
                DocumentQuota{m->document->authority, m->document->max_request_bytes,
                              m->document->max_authority_bytes},
                m->document->size_bytes));
          case MutateReply::Kind::kMoved:
            break;
        }
        // The indexed fields differ from those the change was computed on (a caller
        // that passed none, or a record older than a field): again, with the stored
        // values the script returned.
        if (attempts_left <= 1) {
          return done(absl::AbortedError("the request changed while it was written; retry"));
        }
        MutateAttempt(m, std::move(reply->current), attempts_left - 1, std::move(done));
      });
}

void RedisRequestStore::FindRetentionWork(int64_t closed_before_ms, int64_t tombstoned_before_ms,
                                          int limit, Done<RetentionWork> done) {
  struct Gather {
    absl::Mutex mu;
    int pending = 0;
    absl::Status error;
    RetentionWork work;
  };
  auto gather = std::make_shared<Gather>();
  gather->pending = sharding_.shard_count();
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) {
    RunFindRetentionWork(
        redis_,
        RetentionWorkCall{shard, closed_before_ms, tombstoned_before_ms, std::max(limit, 1)},
        [gather, done](absl::StatusOr<RetentionWorkReply> reply) {
          bool last = false;
          {
            absl::MutexLock lock(&gather->mu);
            if (!reply.ok()) {
              if (gather->error.ok()) gather->error = reply.status();
            } else {
              for (auto& id : reply->closed) gather->work.personal.push_back(std::move(id));
              for (auto& id : reply->tombstoned) gather->work.whole.push_back(std::move(id));
              const auto& pending = reply->unaudited;
              for (size_t k = 0; k + 1 < pending.size(); k += 2) {
                const std::string& field = pending[k];
                PendingErasureAudit a;
                int64_t at = 0;
                if (field.size() < 3 || field[1] != ':' || (field[0] != '1' && field[0] != '2') ||
                    !absl::SimpleAtoi(pending[k + 1], &at)) {
                  continue;
                }
                a.step = field[0] == '1' ? ErasureStep::kPersonalData : ErasureStep::kRequest;
                a.id = field.substr(2);
                a.erased_ms = at;
                gather->work.unaudited.push_back(std::move(a));
              }
            }
            last = --gather->pending == 0;
          }
          if (!last) return;
          if (!gather->error.ok()) return done(gather->error);
          done(std::move(gather->work));
        });
  }
}

void RedisRequestStore::ErasePersonalData(PersonalDataErasure e, Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", e.id);
  if (!shard.ok()) return done(shard.status());
  auto erasure = std::make_shared<const PersonalDataErasure>(std::move(e));
  RunErasePersonal(redis_, ErasePersonalCall{*shard, erasure.get()},
                   [erasure, done](absl::StatusOr<EraseReply> reply) {
                     if (!reply.ok()) return done(reply.status());
                     if (*reply == EraseReply::kErased) return done(true);
                     if (*reply == EraseReply::kSkip) return done(false);
                     done(absl::AbortedError("the request changed while its erasure was computed"));
                   });
}

void RedisRequestStore::EraseRequest(const std::string& id, int64_t tombstoned_before_ms,
                                     int64_t now_ms, Done<bool> done) {
  EraseRequestAttempt(id, tombstoned_before_ms, now_ms, kAttempts, std::move(done));
}

// Reads the tombstone's hash (its fields name its index entries, which the script must be
// given), then erases it; a hash changed in between answers 'moved', and it reads again.
void RedisRequestStore::EraseRequestAttempt(const std::string& id, int64_t tombstoned_before_ms,
                                            int64_t now_ms, int attempts_left, Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command(
      {"HGETALL", absl::StrCat(ReqPrefix(*shard), id)},
      [this, shard = *shard, id, tombstoned_before_ms, now_ms, attempts_left,
       done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        auto hash = common::ReplyFields(*reply, "HGETALL request");
        if (!hash.ok()) return done(hash.status());
        RunEraseRequest(
            redis_, EraseRequestCall{shard, id, tombstoned_before_ms, now_ms, *std::move(hash)},
            [this, id, tombstoned_before_ms, now_ms, attempts_left,
             done = std::move(done)](absl::StatusOr<EraseReply> erased) mutable {
              if (!erased.ok()) return done(erased.status());
              if (*erased == EraseReply::kErased) return done(true);
              if (*erased != EraseReply::kMoved) return done(false);
              if (attempts_left <= 1) {
                return done(absl::AbortedError("the request changed while it was erased; retry"));
              }
              EraseRequestAttempt(id, tombstoned_before_ms, now_ms, attempts_left - 1,
                                  std::move(done));
            });
      });
}

void RedisRequestStore::ErasureAudited(const PendingErasureAudit& audit, Done<bool> done) {
  auto shard = sharding_.ShardOf("rq", audit.id);
  if (!shard.ok()) return done(shard.status());
  redis_.Command(
      {"HDEL", UnauditedKey(*shard), absl::StrCat(static_cast<int>(audit.step), ":", audit.id)},
      [done](absl::StatusOr<RedisReply> reply) {
        if (!reply.ok()) return done(reply.status());
        auto removed = common::ReplyInteger(*reply, "HDEL retention:unaudited");
        if (!removed.ok()) return done(removed.status());
        done(*removed == 1);
      });
}

}  // namespace rogatory::intake
