#include "in_memory_request_store.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "retention.h"

namespace rogatory::intake {

void InMemoryRequestStore::Create(NewRequest in, Done<CreateOutcome> done) {
  absl::StatusOr<CreateOutcome> result = CreateLocked(std::move(in));
  done(std::move(result));
}

absl::StatusOr<CreateOutcome> InMemoryRequestStore::CreateLocked(NewRequest in) {
  absl::MutexLock lock(&mu_);
  std::optional<std::pair<std::string, std::string>> key;
  if (in.idempotency.has_value()) {
    key = std::make_pair(in.idempotency->scope, in.idempotency->request_id);
    if (auto it = idempotency_.find(*key); it != idempotency_.end()) {
      if (it->second.fingerprint != in.idempotency->fingerprint) {
        return absl::AlreadyExistsError("request_id was already used with a different request");
      }
      // As in Redis: a record whose request was since erased no longer replays.
      if (auto r = requests_.find(it->second.request_id); r != requests_.end()) {
        return CreateOutcome{r->second, true};
      }
    }
  }
  const std::string id = in.request.id();
  if (requests_.contains(id)) return absl::AbortedError("request id collision; retry");
  requests_[id] = in.request;
  outbox_.push_back(in.submitted);
  history_[id].push_back(std::move(in.submitted));
  if (key.has_value()) idempotency_[*key] = {in.idempotency->fingerprint, id, ""};
  return CreateOutcome{std::move(in.request), false};
}

void InMemoryRequestStore::Get(const std::string& id, Done<v1::Request> done) {
  absl::StatusOr<v1::Request> result;
  {
    absl::MutexLock lock(&mu_);
    auto it = requests_.find(id);
    if (it == requests_.end()) {
      result = absl::NotFoundError(absl::StrCat("no request with id ", id));
    } else {
      result = it->second;
    }
  }
  done(std::move(result));
}

void InMemoryRequestStore::List(const ListQuery& query, Done<ListPage> done) {
  std::vector<v1::Request> matches;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : requests_) {
      if (!MatchesFilters(query, r)) continue;
      if (query.after.has_value() && !ComesBefore(*query.after, CursorOf(r, query))) {
        continue;
      }
      matches.push_back(r);
    }
  }
  std::sort(matches.begin(), matches.end(), [&](const v1::Request& a, const v1::Request& b) {
    return ComesBefore(CursorOf(a, query), CursorOf(b, query));
  });
  ListPage page;
  const size_t n = std::min(matches.size(), static_cast<size_t>(query.page_size));
  page.requests.assign(matches.begin(), matches.begin() + n);
  if (matches.size() > n) page.next = CursorOf(page.requests.back(), query);
  done(std::move(page));
}

void InMemoryRequestStore::History(const std::string& id,
                                   Done<std::vector<common::v1::Event>> done) {
  absl::StatusOr<std::vector<common::v1::Event>> result;
  {
    absl::MutexLock lock(&mu_);
    auto it = history_.find(id);
    if (it == history_.end()) {
      result = absl::NotFoundError(absl::StrCat("no request with id ", id));
    } else {
      result = it->second;
    }
  }
  done(std::move(result));
}

void InMemoryRequestStore::HistoryRange(const std::string& id, int64_t offset, int limit,
                                        Done<HistoryPage> done) {
  absl::StatusOr<HistoryPage> result;
  {
    absl::MutexLock lock(&mu_);
    auto it = history_.find(id);
    if (it == history_.end()) {
      result = absl::NotFoundError(absl::StrCat("no request with id ", id));
    } else {
      HistoryPage page;
      page.total = static_cast<int64_t>(it->second.size());
      for (int64_t i = offset; i < page.total && i < offset + limit; ++i) {
        page.events.push_back(it->second[i]);
      }
      result = std::move(page);
    }
  }
  done(std::move(result));
}

void InMemoryRequestStore::Load(const std::string& id,
                                const std::optional<Idempotency>& idempotency,
                                Done<Snapshot> done) {
  absl::StatusOr<Snapshot> result;
  {
    absl::MutexLock lock(&mu_);
    auto idem = idempotency ? idempotency_.find({idempotency->scope, idempotency->request_id})
                            : idempotency_.end();
    auto it = requests_.find(id);
    if (idem != idempotency_.end()) {
      if (idem->second.fingerprint != idempotency->fingerprint || idem->second.result.empty()) {
        result = absl::AlreadyExistsError("request_id was already used with a different request");
      } else {
        Snapshot snap;
        snap.replay = idem->second.result;
        result = std::move(snap);
      }
    } else if (it == requests_.end()) {
      result = absl::NotFoundError(absl::StrCat("no request with id ", id));
    } else {
      Snapshot snap;
      snap.request = it->second;
      (void)absl::SimpleAtoi(snap.request.etag(), &snap.version);
      result = std::move(snap);
    }
  }
  done(std::move(result));
}

void InMemoryRequestStore::Mutate(Mutation m, Done<MutationOutcome> done) {
  absl::StatusOr<MutationOutcome> result;
  {
    absl::MutexLock lock(&mu_);
    result = MutateLocked(std::move(m));
  }
  done(std::move(result));
}

absl::StatusOr<MutationOutcome> InMemoryRequestStore::MutateLocked(Mutation m) {
  MutationOutcome out;
  if (m.dedupe && seen_.contains(m.dedupe->seen_key)) {
    out.kind = MutationOutcome::Kind::kDuplicate;
    return out;
  }
  std::optional<std::pair<std::string, std::string>> key;
  if (m.idempotency) {
    key = std::make_pair(m.idempotency->scope, m.idempotency->request_id);
    if (auto it = idempotency_.find(*key); it != idempotency_.end()) {
      if (it->second.fingerprint != m.idempotency->fingerprint || it->second.result.empty()) {
        return absl::AlreadyExistsError("request_id was already used with a different request");
      }
      out.kind = MutationOutcome::Kind::kReplayed;
      out.result = it->second.result;
      return out;
    }
  }
  auto it = requests_.find(m.id);
  if (it == requests_.end()) return absl::NotFoundError(absl::StrCat("no request with id ", m.id));
  v1::Request& stored = it->second;
  if (m.expected_version && stored.etag() != absl::StrCat(*m.expected_version)) {
    return StaleVersion(stored.etag());
  }
  if (m.request) {
    v1::Request replaced = *m.request;
    // The next deadline is kept apart from the content (see Mutation::fields).
    if (stored.has_next_deadline()) {
      *replaced.mutable_next_deadline() = stored.next_deadline();
    } else {
      replaced.clear_next_deadline();
    }
    replaced.set_status(stored.status());
    replaced.set_etag(stored.etag());
    *replaced.mutable_update_time() = stored.update_time();
    stored = std::move(replaced);
  }
  for (const auto& [field, value] : m.fields) {
    if (field == "nd") {
      stored.clear_next_deadline();
      if (!value.empty()) stored.mutable_next_deadline()->ParseFromString(value);
      continue;
    }
    int status = 0;
    if (field == "status" && absl::SimpleAtoi(value, &status) && status != stored.status()) {
      stored.set_status(static_cast<common::v1::RequestStatus>(status));
      // Retention: as the Redis store's closed index (see request_store.h).
      if (!tombstoned_.contains(m.id)) {
        if (IsFinalStatus(stored.content().instrument(), stored.status())) {
          closed_[m.id] = m.updated_ms;
        } else {
          closed_.erase(m.id);
        }
      }
    }
  }
  if (m.new_version) {
    stored.set_etag(absl::StrCat(*m.new_version));
    *stored.mutable_update_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(m.updated_ms);
  }
  for (auto& e : m.history) history_[m.id].push_back(std::move(e));
  for (auto& e : m.outbox) outbox_.push_back(std::move(e));
  if (key) idempotency_[*key] = {m.idempotency->fingerprint, m.id, m.result};
  if (m.dedupe) seen_.insert(m.dedupe->seen_key);
  return out;
}

std::vector<common::v1::Event> InMemoryRequestStore::Outbox() const {
  absl::MutexLock lock(&mu_);
  return outbox_;
}

void InMemoryRequestStore::FindRetentionWork(int64_t closed_before_ms, int64_t tombstoned_before_ms,
                                             int limit, Done<RetentionWork> done) {
  RetentionWork work;
  {
    absl::MutexLock lock(&mu_);
    auto oldest = [limit](const std::map<std::string, int64_t>& index, int64_t cutoff) {
      std::vector<std::pair<int64_t, std::string>> due;
      for (const auto& [id, at] : index) {
        if (at <= cutoff) due.emplace_back(at, id);
      }
      std::sort(due.begin(), due.end());
      std::vector<std::string> ids;
      for (size_t k = 0; k < due.size() && k < static_cast<size_t>(std::max(limit, 1)); ++k) {
        ids.push_back(due[k].second);
      }
      return ids;
    };
    work.personal = oldest(closed_, closed_before_ms);
    work.whole = oldest(tombstoned_, tombstoned_before_ms);
    for (const auto& [key, at] : unaudited_) {
      work.unaudited.push_back(PendingErasureAudit{key.second, key.first, at});
    }
  }
  done(std::move(work));
}

void InMemoryRequestStore::ErasePersonalData(PersonalDataErasure e, Done<bool> done) {
  absl::StatusOr<bool> result = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = requests_.find(e.id);
    auto closed = closed_.find(e.id);
    if (it == requests_.end() || tombstoned_.contains(e.id)) {
      closed_.erase(e.id);
    } else if (closed == closed_.end() || closed->second > e.closed_before_ms) {
      // not due: nothing to do
    } else if (it->second.etag() != absl::StrCat(e.expected_version)) {
      result = absl::AbortedError("the request changed while its erasure was computed");
    } else {
      v1::Request tombstone = e.tombstone;
      tombstone.set_status(it->second.status());
      tombstone.set_etag(absl::StrCat(e.expected_version + 1));
      *tombstone.mutable_update_time() =
          google::protobuf::util::TimeUtil::MillisecondsToTimestamp(e.now_ms);
      it->second = std::move(tombstone);
      closed_.erase(closed);
      tombstoned_[e.id] = e.now_ms;
      history_[e.id].push_back(e.erased);
      outbox_.push_back(std::move(e.erased));
      unaudited_[{ErasureStep::kPersonalData, e.id}] = e.now_ms;
      result = true;
    }
  }
  done(std::move(result));
}

void InMemoryRequestStore::EraseRequest(const std::string& id, int64_t tombstoned_before_ms,
                                        int64_t now_ms, Done<bool> done) {
  bool erased = false;
  {
    absl::MutexLock lock(&mu_);
    auto t = tombstoned_.find(id);
    if (t != tombstoned_.end() && t->second <= tombstoned_before_ms) {
      tombstoned_.erase(t);
      closed_.erase(id);
      requests_.erase(id);
      history_.erase(id);
      unaudited_[{ErasureStep::kRequest, id}] = now_ms;
      erased = true;
    }
  }
  done(erased);
}

void InMemoryRequestStore::ErasureAudited(const PendingErasureAudit& audit, Done<bool> done) {
  bool cleared = false;
  {
    absl::MutexLock lock(&mu_);
    cleared = unaudited_.erase({audit.step, audit.id}) == 1;
  }
  done(cleared);
}

}  // namespace rogatory::intake
