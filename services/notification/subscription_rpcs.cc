// NotificationService: the RPCs of webhook subscriptions (Create, List, Delete,
// RotateSecret). Their records live in the owner's authority shard of the store.

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "endpoint_policy.h"
#include "google/protobuf/util/time_util.h"
#include "notification_service.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/status.h"
#include "webhook_signer.h"

namespace rogatory::notification {
namespace {

using common::CallContext;
using Done = common::Pipeline::Done;
using Stored = NotificationStore::StoredSubscription;

constexpr absl::Duration kIdempotencyTtl = absl::Hours(48);

void FillSubscription(const Stored& s, const common::Caller& owner, v1::Subscription* out) {
  out->set_id(s.id);
  out->mutable_owner()->set_authority_id(owner.authority_id);
  out->mutable_owner()->set_state(owner.state);
  out->set_endpoint_uri(s.endpoint_uri);
  DecodeFilter(s.filter, out->mutable_filter());
  *out->mutable_create_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(s.create_ms);
  if (s.rotate_ms != 0) {
    *out->mutable_secret_rotate_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(s.rotate_ms);
  }
}

}  // namespace

grpc::ServerUnaryReactor* NotificationService::CreateSubscription(
    grpc::CallbackServerContext* context, const v1::CreateSubscriptionRequest* request,
    v1::CreateSubscriptionResponse* response) {
  return pipeline_.Unary<v1::CreateSubscriptionRequest, v1::CreateSubscriptionResponse>(
      context, "CreateSubscription", request, response,
      [this](const v1::CreateSubscriptionRequest& r) {
        common::FieldViolations v;
        if (r.request_id().size() > 128) v.Add("request_id", "is longer than 128 characters");
        auto endpoint = CheckEndpointUri(r.endpoint_uri(), settings_.webhook_endpoint_policy());
        if (!endpoint.ok()) v.Add("endpoint_uri", std::string(endpoint.status().message()));
        ValidateFilter(r.filter(), "filter", v);
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::CreateSubscriptionRequest& r,
             v1::CreateSubscriptionResponse* resp, Done done) {
        const common::Caller caller = call.caller;
        const int shard = sharding_.ShardFor(caller.authority_id);
        const absl::Time now = clock_.Now();
        const std::string id = common::Sharding::MakeId("sub", shard, now);
        const std::string secret = NewWebhookSecret();
        const EncodedFilter f = EncodeFilter(r.filter());
        NotificationStore::NewSubscription create;
        create.shard = shard;
        create.id = id;
        create.owner = caller.authority_id;
        create.owner_state = caller.state;
        create.endpoint_uri = r.endpoint_uri();
        create.filter = f;
        create.create_ms = absl::ToUnixMillis(now);
        create.secret = secret;
        create.request_id = r.request_id();
        create.fingerprint =
            r.request_id().empty()
                ? ""
                : common::Sha256Hex(absl::StrCat(r.endpoint_uri(), "\n", f.instruments, "\n",
                                                 f.types, "\n", f.states));
        create.idempotency_ttl = kIdempotencyTtl;
        create.max_per_owner = kMaxSubscriptionsPerOwner;
        Stored created;
        created.id = id;
        created.endpoint_uri = r.endpoint_uri();
        created.filter = f;
        created.create_ms = create.create_ms;
        created.secret = secret;
        store_.CreateSubscription(
            create,
            [caller, created, resp, done](absl::StatusOr<NotificationStore::CreateResult> result) {
              if (!result.ok()) return done(StoreStatus(result.status()));
              using Outcome = NotificationStore::CreateOutcome;
              switch (result->outcome) {
                case Outcome::kConflict:
                  return done(
                      absl::AlreadyExistsError("request_id was used for a different subscription"));
                case Outcome::kGone:
                  return done(
                      absl::NotFoundError("the subscription this request_id created was deleted"));
                case Outcome::kLimit:
                  return done(common::WithReason(
                      absl::ResourceExhaustedError(
                          absl::StrCat("at most ", kMaxSubscriptionsPerOwner, " subscriptions")),
                      common::v1::ERROR_REASON_QUOTA_EXCEEDED,
                      {{"limit", absl::StrCat(kMaxSubscriptionsPerOwner)}}));
                case Outcome::kReplayed:
                  FillSubscription(result->existing, caller, resp->mutable_subscription());
                  resp->set_signing_secret(result->existing.secret);
                  return done(absl::OkStatus());
                case Outcome::kCreated:
                  break;
              }
              FillSubscription(created, caller, resp->mutable_subscription());
              resp->set_signing_secret(created.secret);
              common::Log::Info("webhook subscription created",
                                {{"subscription_id", created.id}, {"owner", caller.authority_id}});
              done(absl::OkStatus());
            });
      });
}

namespace {

// ListSubscriptions's page tokens: the last subscription id listed, bound to the caller (a
// token of another owner, or altered, is refused naming page_token).
std::string EncodeSubscriptionsToken(const std::string& after, const std::string& owner) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("s1|", after, "|", common::Sha256Hex(owner).substr(0, 12)));
}

absl::StatusOr<std::string> DecodeSubscriptionsToken(const std::string& token,
                                                     const std::string& owner) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, '|');
  if (parts.size() != 3 || parts[0] != "s1" || parts[1].empty() ||
      parts[2] != common::Sha256Hex(owner).substr(0, 12)) {
    common::FieldViolations v;
    v.Add("page_token", "is not a token this service issued to this caller");
    return v.ToStatus();
  }
  return parts[1];
}

}  // namespace

grpc::ServerUnaryReactor* NotificationService::ListSubscriptions(
    grpc::CallbackServerContext* context, const v1::ListSubscriptionsRequest* request,
    v1::ListSubscriptionsResponse* response) {
  return pipeline_.Unary<v1::ListSubscriptionsRequest, v1::ListSubscriptionsResponse>(
      context, "ListSubscriptions", request, response,
      [](const v1::ListSubscriptionsRequest& r) {
        common::FieldViolations v;
        if (r.page_size() < 0 || r.page_size() > 500) v.Add("page_size", "must be from 0 to 500");
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::ListSubscriptionsRequest& r,
             v1::ListSubscriptionsResponse* resp, Done done) {
        const common::Caller caller = call.caller;
        // The token binds to the caller, known only now (validation sees the message).
        std::string after;
        if (!r.page_token().empty()) {
          auto decoded = DecodeSubscriptionsToken(r.page_token(), caller.authority_id);
          if (!decoded.ok()) return done(decoded.status());
          after = *decoded;
        }
        const size_t size = r.page_size() == 0 ? 50 : r.page_size();
        const int shard = sharding_.ShardFor(caller.authority_id);
        // An owner holds at most kMaxSubscriptionsPerOwner: a page is cut from all of them,
        // by id, after the token's id (so a deletion between pages skips or repeats nothing).
        store_.ListSubscriptions(
            shard, caller.authority_id,
            [caller, resp, done, after, size](absl::StatusOr<std::vector<Stored>> subscriptions) {
              if (!subscriptions.ok()) return done(StoreStatus(subscriptions.status()));
              std::vector<const Stored*> sorted;
              for (const Stored& s : *subscriptions) {
                if (after.empty() || s.id > after) sorted.push_back(&s);
              }
              std::sort(sorted.begin(), sorted.end(),
                        [](const Stored* a, const Stored* b) { return a->id < b->id; });
              for (size_t i = 0; i < sorted.size() && i < size; ++i) {
                FillSubscription(*sorted[i], caller, resp->add_subscriptions());
              }
              if (sorted.size() > size) {
                resp->set_next_page_token(
                    EncodeSubscriptionsToken(sorted[size - 1]->id, caller.authority_id));
              }
              done(absl::OkStatus());
            });
      });
}

grpc::ServerUnaryReactor* NotificationService::DeleteSubscription(
    grpc::CallbackServerContext* context, const v1::DeleteSubscriptionRequest* request,
    v1::DeleteSubscriptionResponse* response) {
  return pipeline_.Unary<v1::DeleteSubscriptionRequest, v1::DeleteSubscriptionResponse>(
      context, "DeleteSubscription", request, response,
      [this](const v1::DeleteSubscriptionRequest& r) {
        common::FieldViolations v;
        if (!sharding_.ShardOf("sub", r.subscription_id()).ok()) {
          v.Add("subscription_id", "must be a subscription id");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::DeleteSubscriptionRequest& r,
             v1::DeleteSubscriptionResponse*, Done done) {
        const std::string who = call.caller.authority_id;
        const int shard = *sharding_.ShardOf("sub", r.subscription_id());
        if (shard != sharding_.ShardFor(who)) {
          return done(absl::NotFoundError("no such subscription of the caller"));
        }
        store_.DeleteSubscription(
            shard, who, r.subscription_id(),
            [done,
             id = r.subscription_id()](absl::StatusOr<NotificationStore::DeleteOutcome> outcome) {
              if (!outcome.ok()) return done(StoreStatus(outcome.status()));
              if (*outcome == NotificationStore::DeleteOutcome::kForeign) {
                return done(absl::NotFoundError("no such subscription of the caller"));
              }
              if (*outcome == NotificationStore::DeleteOutcome::kDeleted) {
                common::Log::Info("webhook subscription deleted", {{"subscription_id", id}});
              }
              done(absl::OkStatus());
            });
      });
}

grpc::ServerUnaryReactor* NotificationService::RotateSubscriptionSecret(
    grpc::CallbackServerContext* context, const v1::RotateSubscriptionSecretRequest* request,
    v1::RotateSubscriptionSecretResponse* response) {
  return pipeline_.Unary<v1::RotateSubscriptionSecretRequest, v1::RotateSubscriptionSecretResponse>(
      context, "RotateSubscriptionSecret", request, response,
      [this](const v1::RotateSubscriptionSecretRequest& r) {
        common::FieldViolations v;
        if (!sharding_.ShardOf("sub", r.subscription_id()).ok()) {
          v.Add("subscription_id", "must be a subscription id");
        }
        if (r.has_previous_secret_validity() &&
            (r.previous_secret_validity().seconds() < 0 ||
             r.previous_secret_validity().seconds() > 30 * 24 * 3600)) {
          v.Add("previous_secret_validity", "must lie between 0 and 30 days");
        }
        return v.ToStatus();
      },
      [this](const CallContext& call, const v1::RotateSubscriptionSecretRequest& r,
             v1::RotateSubscriptionSecretResponse* resp, Done done) {
        const common::Caller caller = call.caller;
        const int shard = *sharding_.ShardOf("sub", r.subscription_id());
        if (shard != sharding_.ShardFor(caller.authority_id)) {
          return done(absl::NotFoundError("no such subscription of the caller"));
        }
        const absl::Time now = clock_.Now();
        const absl::Duration overlap =
            r.has_previous_secret_validity()
                ? absl::Seconds(r.previous_secret_validity().seconds()) +
                      absl::Nanoseconds(r.previous_secret_validity().nanos())
                : settings_.webhook_secret_overlap;
        const int64_t expire_ms = absl::ToUnixMillis(now + overlap);
        NotificationStore::RotateRequest rotate;
        rotate.shard = shard;
        rotate.id = r.subscription_id();
        rotate.owner = caller.authority_id;
        rotate.new_secret = NewWebhookSecret();
        rotate.now_ms = absl::ToUnixMillis(now);
        rotate.previous_expire_ms = expire_ms;
        store_.RotateSecret(rotate, [caller, id = r.subscription_id(), expire_ms, resp,
                                     done](absl::StatusOr<std::optional<Stored>> rotated) {
          if (!rotated.ok()) return done(StoreStatus(rotated.status()));
          if (!rotated->has_value()) {
            return done(absl::NotFoundError("no such subscription of the caller"));
          }
          FillSubscription(**rotated, caller, resp->mutable_subscription());
          resp->set_signing_secret((*rotated)->secret);
          *resp->mutable_previous_secret_expire_time() =
              google::protobuf::util::TimeUtil::MillisecondsToTimestamp(expire_ms);
          common::Log::Info("webhook secret rotated", {{"subscription_id", id}});
          done(absl::OkStatus());
        });
      });
}

}  // namespace rogatory::notification
