#include "webhook_dispatcher.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "evidence.h"
#include "google/protobuf/util/json_util.h"
#include "notification_keys.h"
#include "notification_lua_scripts.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/backoff.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/notification/v1/notification.pb.h"
#include "webhook_signer.h"

namespace rogatory::notification {
namespace {

using common::LuaScript;
using common::RedisReply;

const LuaScript& ClaimScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kWebhookClaim));
  return *s;
}
const LuaScript& OutcomeScript() {
  static const LuaScript* s = new LuaScript(std::string(lua::kWebhookOutcome));
  return *s;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  return absl::SimpleAtoi(s, &v) ? v : 0;
}

}  // namespace

WebhookDispatcher::WebhookDispatcher(common::RedisClient& redis, const common::Clock& clock,
                                     common::Sharding sharding, NotificationSettings settings,
                                     NotificationMetrics& metrics, WebhookTransport& transport)
    : redis_(redis),
      clock_(clock),
      sharding_(sharding),
      settings_(settings),
      metrics_(metrics),
      transport_(transport),
      rng_(std::random_device{}()) {}

WebhookDispatcher::~WebhookDispatcher() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  wakeups_->Stop();
  if (poller_.joinable()) poller_.join();
  for (auto& t : workers_) t.join();
}

void WebhookDispatcher::Start() {
  for (int i = 0; i < std::max(1, settings_.webhook_concurrency); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  poller_ = std::thread([this] { PollLoop(); });
}

absl::Duration WebhookDispatcher::Backoff(int attempt) {
  const common::Backoff backoff{settings_.webhook_initial_backoff, settings_.webhook_max_backoff};
  absl::MutexLock lock(&mu_);
  return backoff.Delay(attempt, rng_);
}

// Claims from the shards woken (all of them on the first and every safety-net pass), again
// from those that had jobs (they may have more), and otherwise waits for a wake-up, the
// earliest retry this process scheduled or the safety net (issue 19: an idle notification
// service with no webhook sends Redis nothing in between).
void WebhookDispatcher::PollLoop() {
  std::vector<int> all;
  for (int shard = 0; shard < sharding_.shard_count(); ++shard) all.push_back(shard);
  std::vector<int> shards = all;
  while (true) {
    std::vector<int> busy, left;
    for (size_t i = 0; i < shards.size(); ++i) {
      const int shard = shards[i];
      int free;
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
        free = std::max(1, settings_.webhook_concurrency) - busy_ - static_cast<int>(queue_.size());
      }
      if (free <= 0) {  // bounded: never claim more than the pool can work on
        left.assign(shards.begin() + static_cast<ptrdiff_t>(i), shards.end());
        break;
      }
      if (ClaimShard(shard, free) > 0) busy.push_back(shard);
    }
    absl::Duration wait = settings_.webhook_recheck_interval;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      if (next_retry_ != absl::InfiniteFuture()) {
        wait = std::min(wait, std::max(absl::ZeroDuration(), next_retry_ - clock_.Now()));
      }
    }
    std::vector<int> next = left;  // a worker freeing up wakes the poller for these
    if (!busy.empty() && left.empty()) {
      next = busy;
      for (int shard : wakeups_->Take()) next.push_back(shard);
    } else {
      for (int shard : wakeups_->Wait(wait)) next.push_back(shard);
      if (next.empty()) {  // the safety net, or a retry's due time
        next = all;
        absl::MutexLock lock(&mu_);
        if (next_retry_ <= clock_.Now()) next_retry_ = absl::InfiniteFuture();
      }
    }
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    shards = std::move(next);
  }
}

int WebhookDispatcher::ClaimShard(int shard, int limit) {
  const int64_t now_ms = absl::ToUnixMillis(clock_.Now());
  // A claim outlasts one attempt (timeout) with margin; after it, another
  // replica retries.
  const int64_t lease_ms = absl::ToInt64Milliseconds(settings_.webhook_timeout) * 2 + 5000;
  // Two round trips when jobs are due (one when none is): the due jobs, then the claim,
  // which receives each job's key and its subscription's (a script cannot find them).
  auto due =
      common::RunRedisCommand(redis_, {"ZRANGEBYSCORE", Keys::WebhookDue(shard), "-inf",
                                       absl::StrCat(now_ms), "LIMIT", "0", absl::StrCat(limit)});
  if (!due.ok()) return 0;
  auto members = common::ReplyStrings(*due, "webhook queue");
  if (!members.ok() || members->empty()) return 0;
  std::vector<std::string> keys = {Keys::WebhookDue(shard)};
  std::vector<std::string> args = {absl::StrCat(now_ms), absl::StrCat(lease_ms)};
  for (const std::string& m : *members) {
    keys.push_back(Keys::WebhookJob(shard, m));
    keys.push_back(Keys::Subscription(shard, m.substr(0, m.find('/'))));
    args.push_back(m);
  }
  auto reply = common::RunRedisScript(redis_, ClaimScript(), std::move(keys), std::move(args));
  if (!reply.ok()) return 0;
  auto claimed = common::ReplyArray(*reply, "webhook claim");
  if (!claimed.ok()) return 0;
  const auto& e = **claimed;
  int n = 0;
  for (size_t i = 0; i + 10 < e.size(); i += 11) {
    Job job;
    job.shard = shard;
    job.member = e[i].str;
    job.event_pb = e[i + 1].str;
    job.attempt = static_cast<int>(e[i + 2].integer);
    job.accept_ms = ToInt(e[i + 3].str);
    job.request_id = e[i + 4].str;
    job.event_id = e[i + 5].str;
    job.recipient = e[i + 6].str;
    job.uri = e[i + 7].str;
    job.secret = e[i + 8].str;
    job.old_secret = e[i + 9].str;
    job.old_expire_ms = ToInt(e[i + 10].str);
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(job));
    ++n;
  }
  return n;
}

void WebhookDispatcher::WorkerLoop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
    }
    Deliver(job);
    {
      absl::MutexLock lock(&mu_);
      --busy_;
    }
    wakeups_->Wake(job.shard);  // room for more of its shard's jobs (and others left)
  }
}

void WebhookDispatcher::Deliver(const Job& job) {
  const std::string subscription = job.member.substr(0, job.member.find('/'));
  const absl::Time now = clock_.Now();
  const int64_t now_ms = absl::ToUnixMillis(now);

  common::v1::Event event;
  std::string body;
  WebhookResult result;
  if (!event.ParseFromString(job.event_pb) ||
      !google::protobuf::util::MessageToJsonString(event, &body).ok()) {
    result.outcome = "unreadable_event";
  } else {
    std::vector<std::string> secrets = {job.secret};
    if (!job.old_secret.empty() && job.old_expire_ms > now_ms) secrets.push_back(job.old_secret);
    const std::string timestamp = absl::StrCat(absl::ToUnixSeconds(now));
    auto signature = SignatureHeader(secrets, job.member, timestamp, body);
    if (!signature.ok()) {
      result.outcome = "bad_secret";
    } else {
      WebhookPost post;
      post.uri = job.uri;
      post.body = body;
      post.headers = {{"webhook-id", job.member},
                      {"webhook-timestamp", timestamp},
                      {"webhook-signature", *signature}};
      result = transport_.Post(post);
    }
  }
  const bool success = result.http_status >= 200 && result.http_status < 300;
  metrics_.WebhookOutcome(result.outcome);
  const absl::Time next = now + Backoff(job.attempt);
  auto outcome =
      common::RunRedisScript(redis_, OutcomeScript(),
                             {Keys::WebhookDue(job.shard), Keys::DeadLetters(job.shard),
                              Keys::WebhookJob(job.shard, job.member)},
                             {job.member, success ? "1" : "0", absl::StrCat(now_ms),
                              absl::StrCat(absl::ToUnixMillis(next)),
                              absl::StrCat(settings_.webhook_max_attempts), result.outcome});
  absl::StatusOr<std::string> recorded =
      outcome.ok() ? common::ReplyString(*outcome, "webhook outcome") : outcome.status();
  const std::string state = recorded.ok() ? *recorded : "unrecorded";
  if (state == "retry") {
    absl::MutexLock lock(&mu_);
    next_retry_ = std::min(next_retry_, next);
  }
  // A disclosure: recorded for the audit log, with references and codes only.
  common::Log::Info("webhook delivery", {{"event_id", job.event_id},
                                         {"recipient", job.recipient},
                                         {"subscription_id", subscription},
                                         {"attempt", job.attempt},
                                         {"outcome", result.outcome},
                                         {"http_status", result.http_status},
                                         {"next", state},
                                         {"trace_id", event.trace_id()}});
  if (auditor_ != nullptr && result.http_status > 0) {
    // The receiver got the body (whatever it answered): a disclosure.
    absl::Status logged = common::RecordAndWait(
        *auditor_, common::ServiceAuditRecord(
                       "rogatory-notification", "DeliverWebhook", job.request_id,
                       common::AccessKind::kDisclose,
                       absl::StrCat("webhook:", subscription, ":", job.event_id), event.trace_id(),
                       success ? absl::StatusCode::kOk : absl::StatusCode::kUnavailable));
    if (!logged.ok()) {
      common::Log::Error("webhook delivery could not be audited",
                         {{"event_id", job.event_id}, {"error", std::string(logged.message())}});
    }
  }
  auto shard = sharding_.ShardOf("rq", job.request_id);
  if (!shard.ok()) return;
  if (success) {
    const double latency = std::max(0.0, (now_ms - job.accept_ms) / 1000.0);
    NotificationMetrics& metrics = metrics_;
    RecordStage(redis_, *shard, job.event_id, v1::DELIVERY_STAGE_DELIVERED, job.recipient,
                subscription, now, settings_.evidence_retention,
                [&metrics, latency](absl::StatusOr<bool> fresh) {
                  if (fresh.ok() && *fresh) metrics.DeliveryLatency("webhook", latency);
                });
  } else if (state == "dead") {
    RecordStage(redis_, *shard, job.event_id, v1::DELIVERY_STAGE_FAILED, job.recipient,
                subscription, now, settings_.evidence_retention, [](absl::StatusOr<bool>) {});
  }
}

}  // namespace rogatory::notification
