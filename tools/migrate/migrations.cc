#include "migrations.h"

#include <functional>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis_reply.h"

namespace rogatory::migrate {
namespace {

// Calls `each` with every hash key matching `pattern` (one shard's: "rg:{sN}:..."), SCAN
// page by page; stops at the first error.
absl::Status ForEachHash(common::RedisClient& redis, const std::string& pattern,
                         const std::function<absl::Status(const std::string& key)>& each) {
  std::string cursor = "0";
  do {
    auto page = common::RunRedisCommand(
        redis, {"SCAN", cursor, "MATCH", pattern, "COUNT", "500", "TYPE", "hash"});
    if (!page.ok()) return page.status();
    auto parts = common::ReplyArray(*page, "SCAN");
    if (!parts.ok()) return parts.status();
    if ((*parts)->size() != 2) return absl::InternalError("SCAN: unexpected reply");
    auto next = common::ReplyString((**parts)[0], "SCAN");
    if (!next.ok()) return next.status();
    cursor = *next;
    auto keys = common::ReplyStrings((**parts)[1], "SCAN");
    if (!keys.ok()) return keys.status();
    for (const std::string& key : *keys) {
      if (absl::Status done = each(key); !done.ok()) return done;
    }
  } while (cursor != "0");
  return absl::OkStatus();
}

// Calls `each` with the id and key of every request hash of `shard` (rg:{sN}:req:<id>; not
// the other keys under req:).
absl::Status ForEachRequestHash(
    common::RedisClient& redis, int shard,
    const std::function<absl::Status(const std::string& id, const std::string& key)>& each) {
  const std::string req = absl::StrCat(common::Sharding::Prefix(shard), "req:");
  return ForEachHash(redis, absl::StrCat(req, "*"), [&](const std::string& key) {
    const std::string id = key.substr(req.size());
    if (id.empty() || absl::StrContains(id, ':')) return absl::OkStatus();
    return each(id, key);
  });
}

// HMGET's values, '' for a missing field.
absl::StatusOr<std::vector<std::string>> HashValues(common::RedisClient& redis,
                                                    std::vector<std::string> hmget) {
  auto reply = common::RunRedisCommand(redis, std::move(hmget));
  if (!reply.ok()) return reply.status();
  auto values = common::ReplyArray(*reply, "HMGET");
  if (!values.ok()) return values.status();
  std::vector<std::string> v;
  for (const auto& e : **values) {
    auto text = common::ReplyOptionalString(e, "HMGET");
    if (!text.ok()) return text.status();
    v.push_back(text->value_or(""));
  }
  return v;
}

// 0 -> 1: data written before layouts were recorded has layout 1's keys; recording it is
// the whole step, once Apply has checked the data fits the shard count.
absl::Status RecordUnversionedData(common::RedisClient&, int) { return absl::OkStatus(); }

// 1 -> 2 (issue 20): intake's worklist rows. Layout 2 keeps, beside each need-to-know party
// index idx:party:a:<authority> / idx:party:s:<state>, a hash wl:a:<authority> /
// wl:s:<state> whose field is a request id and value its worklist row (see intake's
// create_request.lua: status, instrument, urgency, issuing state, requested state, issuing
// authority, executing authority, created ms, next due ms, separated by \x1f). Layout 1
// has none: this writes every request's rows from its hash, shard by shard (SCAN of
// req:*). Idempotent: a row is the function of its hash. Tombstones (erased_ms) get none.
// Requests of layout 1 have no next due time (intake did not track it): '' until their next
// deadline event.
absl::Status WriteWorklistRows(common::RedisClient& redis, int shards) {
  static const char* const kFields[] = {"status",
                                        "instrument",
                                        "urgency",
                                        "issuing_state",
                                        "requested_state",
                                        "issuing_authority",
                                        "executing_authority",
                                        "created_ms",
                                        "next_due_ms"};
  for (int shard = 0; shard < shards; ++shard) {
    const std::string p = common::Sharding::Prefix(shard);
    auto written =
        ForEachRequestHash(redis, shard, [&](const std::string& id, const std::string& key) {
          std::vector<std::string> hmget = {"HMGET", key};
          for (const char* f : kFields) hmget.push_back(f);
          hmget.push_back("erased_ms");
          hmget.push_back("pb");
          auto v = HashValues(redis, std::move(hmget));
          if (!v.ok()) return v.status();
          if (v->size() != 11 || (*v)[10].empty() || !(*v)[9].empty()) {
            return absl::OkStatus();  // no pb, or erased
          }
          const std::string row =
              absl::StrJoin(std::vector<std::string>(v->begin(), v->begin() + 9), "\x1f");
          std::set<std::string> parties;
          for (int i : {5, 6}) {
            if (!(*v)[i].empty()) parties.insert(absl::StrCat(p, "wl:a:", (*v)[i]));
          }
          for (int i : {3, 4}) {
            if (!(*v)[i].empty()) parties.insert(absl::StrCat(p, "wl:s:", (*v)[i]));
          }
          for (const std::string& wl : parties) {
            auto set = common::RunRedisCommand(redis, {"HSET", wl, id, row});
            if (!set.ok()) return set.status();
          }
          return absl::OkStatus();
        });
    if (!written.ok()) return written;
  }
  return absl::OkStatus();
}

// 2 -> 3 (issue 19): intake's request counts. Layout 3 keeps per shard a hash
// rg:{sN}:counts, field "<instrument>:<status>" (their numbers) -> how many request hashes
// (tombstones included: they leave the indexes only when erased) have them, which the
// scripts that create, change and erase requests keep and the requests gauge reads. Layout 2
// has none: this counts every request hash of each shard (SCAN of req:*) and writes the
// shard's hash whole. Idempotent: the hash is the function of the requests.
absl::Status WriteRequestCounts(common::RedisClient& redis, int shards) {
  for (int shard = 0; shard < shards; ++shard) {
    const std::string p = common::Sharding::Prefix(shard);
    std::map<std::string, int64_t> counts;
    auto counted =
        ForEachRequestHash(redis, shard, [&](const std::string&, const std::string& key) {
          auto v = HashValues(redis, {"HMGET", key, "instrument", "status"});
          if (!v.ok()) return v.status();
          if (v->size() == 2 && !(*v)[0].empty() && !(*v)[1].empty()) {
            ++counts[absl::StrCat((*v)[0], ":", (*v)[1])];
          }
          return absl::OkStatus();
        });
    if (!counted.ok()) return counted;
    const std::string key = absl::StrCat(p, "counts");
    if (auto del = common::RunRedisCommand(redis, {"DEL", key}); !del.ok()) return del.status();
    if (counts.empty()) continue;
    std::vector<std::string> hset = {"HSET", key};
    for (const auto& [field, n] : counts) {
      hset.push_back(field);
      hset.push_back(absl::StrCat(n));
    }
    if (auto set = common::RunRedisCommand(redis, hset); !set.ok()) return set.status();
  }
  return absl::OkStatus();
}

// 3 -> 4 (issue 18): intake's per-authority document usage moves into the request shards. The
// previous layout kept one hash rg:docbytes:authority (authority id -> bytes of its committed
// documents, over every shard), outside the shards' slots, which a Redis Cluster refuses
// beside a shard's keys in one script. This layout keeps rg:{sN}:docbytes:authority per
// shard: the authority's bytes committed to requests of that shard. Each shard's hash is the
// sum of the a:<authority> fields of the shard's per-request usage hashes
// rg:{sN}:docbytes:<request id> (charged by the commit script, removed by retention's erasure
// with the bytes they gave back), so it is rewritten from them; then the old hash goes.
// Idempotent: a shard's hash is a function of its request hashes.
absl::Status SplitAuthorityDocumentUsage(common::RedisClient& redis, int shards) {
  for (int shard = 0; shard < shards; ++shard) {
    const std::string prefix = absl::StrCat(common::Sharding::Prefix(shard), "docbytes:");
    const std::string per_shard = absl::StrCat(prefix, "authority");
    std::map<std::string, int64_t> bytes;  // authority -> bytes in this shard
    auto summed = ForEachHash(redis, absl::StrCat(prefix, "*"), [&](const std::string& key) {
      if (key == per_shard) return absl::OkStatus();
      auto reply = common::RunRedisCommand(redis, {"HGETALL", key});
      if (!reply.ok()) return reply.status();
      auto fields = common::ReplyFields(*reply, "HGETALL");
      if (!fields.ok()) return fields.status();
      for (const auto& [field, value] : *fields) {
        if (!absl::StartsWith(field, "a:")) continue;
        int64_t n = 0;
        if (!absl::SimpleAtoi(value, &n)) {
          return absl::DataLossError(absl::StrCat(key, " ", field, " is not a number"));
        }
        bytes[field.substr(2)] += n;
      }
      return absl::OkStatus();
    });
    if (!summed.ok()) return summed;
    auto del = common::RunRedisCommand(redis, {"DEL", per_shard});
    if (!del.ok()) return del.status();
    std::vector<std::string> hset = {"HSET", per_shard};
    for (const auto& [authority, n] : bytes) {
      if (n <= 0) continue;
      hset.push_back(authority);
      hset.push_back(absl::StrCat(n));
    }
    if (hset.size() > 2) {
      auto set = common::RunRedisCommand(redis, hset);
      if (!set.ok()) return set.status();
    }
  }
  auto del = common::RunRedisCommand(redis, {"DEL", "rg:docbytes:authority"});
  return del.ok() ? absl::OkStatus() : del.status();
}

}  // namespace

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration>* migrations = new std::vector<Migration>{
      {0, "record the layout of data written before layouts were recorded", RecordUnversionedData},
      {1, "write intake's worklist rows (wl:a:<authority>, wl:s:<state>) for every request",
       WriteWorklistRows},
      {2, "write intake's request counts (counts: <instrument>:<status> -> requests) per shard",
       WriteRequestCounts},
      {3,
       "split intake's per-authority document usage into the shards (rg:{sN}:docbytes:authority)",
       SplitAuthorityDocumentUsage},
  };
  return *migrations;
}

absl::StatusOr<MigrationReport> Apply(common::RedisClient& redis, int shards, bool dry_run,
                                      absl::Time now) {
  MigrationReport report;
  auto recorded = common::ReadDataLayout(redis);
  if (!recorded.ok()) return recorded.status();
  report.before = *recorded;
  int version = 0;
  if (recorded->has_value()) {
    const common::DataLayout& found = **recorded;
    if (found.version > common::kDataLayoutVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis holds data of layout version ", found.version, ", newer than this build's ",
          common::kDataLayoutVersion, ": run the release that wrote it"));
    }
    if (found.shards != shards) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis holds data spread over ", found.shards, " shards but --redis-shards is ", shards,
          ": moving data between shard counts is not supported; keep redis-shards=", found.shards));
    }
    version = found.version;
  } else {
    auto highest = common::HighestShardInUse(redis);
    if (!highest.ok()) return highest.status();
    if (highest->has_value() && **highest >= shards) {
      return absl::FailedPreconditionError(absl::StrCat(
          "Redis holds request data in shard ", **highest, ", so it was written with more than ",
          shards, " shards: name the shard count it was written with (--redis-shards)"));
    }
  }
  for (const Migration& m : Migrations()) {
    if (m.from < version) continue;
    if (m.from != version) break;
    report.steps.push_back(absl::StrCat(m.from, " -> ", m.from + 1, ": ", m.what));
    if (!dry_run) {
      if (absl::Status s = m.run(redis, shards); !s.ok()) return s;
      if (absl::Status s =
              common::WriteDataLayout(redis, {m.from + 1, shards}, "rogatory-migrate", now);
          !s.ok()) {
        return s;
      }
    }
    version = m.from + 1;
  }
  if (version != common::kDataLayoutVersion) {
    return absl::InternalError(absl::StrCat("no migration leads from layout version ", version,
                                            " to ", common::kDataLayoutVersion));
  }
  report.after = {version, shards};
  return report;
}

}  // namespace rogatory::migrate
