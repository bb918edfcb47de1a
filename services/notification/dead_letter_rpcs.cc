// NotificationService: the RPCs of dead letters (webhook jobs that used up their
// attempts), kept per shard of the subscription owner.

#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "notification_service.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/status.h"

namespace rogatory::notification {
namespace {

using common::CallContext;
using Done = common::Pipeline::Done;

google::protobuf::Timestamp MillisToTimestamp(int64_t ms) {
  return google::protobuf::util::TimeUtil::MillisecondsToTimestamp(ms);
}

struct DeadPage {
  int shard = 0;
  int64_t offset = 0;
};
std::optional<DeadPage> ParseDeadToken(absl::string_view token) {
  if (token.empty()) return DeadPage{};
  std::pair<std::string, std::string> p = absl::StrSplit(token, absl::MaxSplits(':', 1));
  DeadPage page;
  if (!absl::SimpleAtoi(p.first, &page.shard) || !absl::SimpleAtoi(p.second, &page.offset) ||
      page.shard < 0 || page.offset < 0) {
    return std::nullopt;
  }
  return page;
}
}  // namespace

grpc::ServerUnaryReactor* NotificationService::ListDeadLetters(
    grpc::CallbackServerContext* context, const v1::ListDeadLettersRequest* request,
    v1::ListDeadLettersResponse* response) {
  return pipeline_.Unary<v1::ListDeadLettersRequest, v1::ListDeadLettersResponse>(
      context, "ListDeadLetters", request, response,
      [this](const v1::ListDeadLettersRequest& r) {
        common::FieldViolations v;
        if (r.page_size() < 0 || r.page_size() > 500) v.Add("page_size", "must be 0 to 500");
        auto page = ParseDeadToken(r.page_token());
        if (!page || page->shard >= sharding_.shard_count()) {
          v.Add("page_token", "is not a token this service issued");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::ListDeadLettersRequest& r,
             v1::ListDeadLettersResponse* resp, Done done) {
        const bool operator_view = call.caller.HasRole("operator");
        const std::string owner = operator_view ? "" : call.caller.authority_id;
        const int own_shard = sharding_.ShardFor(call.caller.authority_id);
        DeadPage page = *ParseDeadToken(r.page_token());
        if (!operator_view && page.shard < own_shard) page = DeadPage{own_shard, 0};
        const int last_shard = operator_view ? sharding_.shard_count() - 1 : own_shard;
        const int want = r.page_size() == 0 ? 100 : r.page_size();
        // Walks the shards one Redis call at a time until the page is full.
        auto step = std::make_shared<std::function<void(DeadPage)>>();
        *step = [this, step, owner, last_shard, want, resp, done](DeadPage at) {
          if (at.shard > last_shard) {
            *step = nullptr;  // break the self-reference
            return done(absl::OkStatus());
          }
          const int count = want - resp->dead_letters_size();
          store_.ListDeadLetters(
              at.shard, at.offset, count, owner,
              [step, at, count, want, resp,
               done](absl::StatusOr<NotificationStore::DeadLetterPage> listed) {
                if (!listed.ok()) {
                  auto s = StoreStatus(listed.status());
                  *step = nullptr;
                  return done(s);
                }
                const int64_t examined = listed->examined;
                for (const NotificationStore::DeadLetterRecord& e : listed->dead_letters) {
                  auto* d = resp->add_dead_letters();
                  d->set_id(e.id);
                  *d->mutable_dead_time() = MillisToTimestamp(e.dead_ms);
                  d->set_subscription_id(e.subscription_id);
                  d->set_event_id(e.event_id);
                  d->set_request_id(e.request_id);
                  d->mutable_recipient()->set_authority_id(e.recipient);
                  d->mutable_recipient()->set_state(e.recipient_state);
                  d->set_attempts(e.attempts);
                  d->set_last_outcome(e.last_outcome);
                }
                DeadPage next = at;
                if (examined < count) {
                  next = DeadPage{at.shard + 1, 0};
                } else {
                  next.offset += examined;
                }
                if (resp->dead_letters_size() >= want) {
                  resp->set_next_page_token(absl::StrCat(next.shard, ":", next.offset));
                  *step = nullptr;
                  return done(absl::OkStatus());
                }
                auto again = *step;
                again(next);
              });
        };
        auto first = *step;
        first(page);
      });
}

grpc::ServerUnaryReactor* NotificationService::RedriveDeadLetter(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLetterRequest* request,
    v1::RedriveDeadLetterResponse* response) {
  return pipeline_.Unary<v1::RedriveDeadLetterRequest, v1::RedriveDeadLetterResponse>(
      context, "RedriveDeadLetter", request, response,
      [this](const v1::RedriveDeadLetterRequest& r) {
        common::FieldViolations v;
        std::pair<std::string, std::string> p =
            absl::StrSplit(r.dead_letter_id(), absl::MaxSplits('/', 1));
        if (p.second.empty() || !sharding_.ShardOf("sub", p.first).ok()) {
          v.Add("dead_letter_id", "is not a dead letter id");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::RedriveDeadLetterRequest& r,
             v1::RedriveDeadLetterResponse*, Done done) {
        std::pair<std::string, std::string> p =
            absl::StrSplit(r.dead_letter_id(), absl::MaxSplits('/', 1));
        const int shard = *sharding_.ShardOf("sub", p.first);
        const std::string owner = call.caller.HasRole("operator") ? "" : call.caller.authority_id;
        store_.RedriveDeadLetter(
            shard, r.dead_letter_id(), absl::ToUnixMillis(clock_.Now()), owner,
            [done, id = r.dead_letter_id(), who = call.caller.authority_id, shard,
             webhooks = webhook_wakeups_](absl::StatusOr<bool> redriven) {
              if (!redriven.ok()) return done(StoreStatus(redriven.status()));
              if (!*redriven) {
                return done(absl::NotFoundError("no such dead letter"));
              }
              if (webhooks != nullptr) webhooks->Wake(shard);  // due now
              common::Log::Info("dead letter redriven", {{"dead_letter_id", id}, {"by", who}});
              done(absl::OkStatus());
            });
      });
}

}  // namespace rogatory::notification
