#include "in_memory_request_store.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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
      return CreateOutcome{requests_.at(it->second.request_id), true};
    }
  }
  const std::string id = in.request.id();
  if (requests_.contains(id)) return absl::AbortedError("request id collision; retry");
  requests_[id] = in.request;
  history_[id].push_back(std::move(in.submitted));
  if (key.has_value()) idempotency_[*key] = {in.idempotency->fingerprint, id};
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
      if (query.after.has_value() && !ComesBefore(*query.after, CursorOf(r))) continue;
      matches.push_back(r);
    }
  }
  std::sort(matches.begin(), matches.end(), [](const v1::Request& a, const v1::Request& b) {
    return ComesBefore(CursorOf(a), CursorOf(b));
  });
  ListPage page;
  const size_t n = std::min(matches.size(), static_cast<size_t>(query.page_size));
  page.requests.assign(matches.begin(), matches.begin() + n);
  if (matches.size() > n) page.next = CursorOf(page.requests.back());
  done(std::move(page));
}

void InMemoryRequestStore::RecordEvent(const common::v1::Event& event,
                                       const common::Dedupe& dedupe,
                                       Done<common::EventHandler::Outcome> done) {
  absl::StatusOr<common::EventHandler::Outcome> result;
  {
    absl::MutexLock lock(&mu_);
    auto it = requests_.find(event.request_id());
    if (seen_.contains(dedupe.seen_key)) {
      result = common::EventHandler::Outcome::kDuplicate;
    } else if (it == requests_.end()) {
      result = absl::NotFoundError(absl::StrCat("no request with id ", event.request_id()));
    } else {
      seen_.insert(dedupe.seen_key);
      history_[event.request_id()].push_back(event);
      if (event.status() != common::v1::REQUEST_STATUS_UNSPECIFIED) {
        int64_t version = 0;
        (void)absl::SimpleAtoi(it->second.etag(), &version);
        it->second.set_status(event.status());
        it->second.set_etag(absl::StrCat(version + 1));
        *it->second.mutable_update_time() = event.occur_time();
      }
      result = common::EventHandler::Outcome::kHandled;
    }
  }
  done(std::move(result));
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

}  // namespace rogatory::intake
