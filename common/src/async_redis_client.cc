#include "rogatory/common/async_redis_client.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/hiredis.h>

#include <deque>
#include <optional>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "redis_connection.h"
#include "rogatory/common/backoff.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {
namespace {

using internal::RedisConnection;

using internal::CopyReply;

class AsyncRedisClient final : public RedisClient {
 public:
  explicit AsyncRedisClient(const AsyncRedisOptions& options);
  ~AsyncRedisClient() override;

  void Command(std::vector<std::string> args, RedisCallback done) override;
  void Eval(const LuaScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisCallback done) override;

 private:
  // One command. Owned by the queue until dispatched, then by the connection's callback.
  struct Op {
    AsyncRedisClient* client = nullptr;
    std::vector<std::string> args;
    RedisCallback done;
    // For EVALSHA: the script source, to fall back on EVAL after NOSCRIPT.
    std::optional<std::string> script_source;
    event* timer = nullptr;
    bool completed = false;
    ~Op() {
      if (timer != nullptr) event_free(timer);
    }
  };

  void Submit(std::unique_ptr<Op> op);
  // Loop-thread only below.
  static void OnWakeup(evutil_socket_t, short, void* self);
  static void OnStop(evutil_socket_t, short, void* self);
  static void OnOpTimeout(evutil_socket_t, short, void* op);
  static void OnReconnectTimer(evutil_socket_t, short, void* self);
  void Dispatch(std::unique_ptr<Op> op);
  void Send(std::unique_ptr<Op> op);
  static void Complete(Op* op, absl::StatusOr<RedisReply> result);
  void Connect();
  void OnReady();
  void OnClosed(const absl::Status& why);
  void ScheduleReconnect();
  absl::Status NotConnected() const;

  const AsyncRedisOptions options_;
  // TLS settings, loaded once (or why they could not be).
  absl::StatusOr<std::shared_ptr<const internal::RedisTlsContext>> tls_;
  event_base* base_ = nullptr;
  event* wakeup_ = nullptr;
  event* stop_ = nullptr;
  event* reconnect_timer_ = nullptr;
  std::thread thread_;

  absl::Mutex queue_mu_;
  std::deque<std::unique_ptr<Op>> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  // Loop thread only.
  std::unique_ptr<RedisConnection> conn_;
  absl::Status last_error_;    // why the last connection failed or ended
  bool ever_tried_ = false;    // a connection attempt has ended (for messages)
  bool ready_ = false;         // conn_ became ready
  int reconnect_attempt_ = 0;  // failed connects in a row
  std::minstd_rand rng_{std::random_device{}()};
};

AsyncRedisClient::AsyncRedisClient(const AsyncRedisOptions& options)
    : options_(options), tls_(std::shared_ptr<const internal::RedisTlsContext>()) {
  static const int kThreadsReady = evthread_use_pthreads();
  (void)kThreadsReady;
  if (options_.url.tls.enabled) {
    tls_ = internal::RedisTlsContext::Create(options_.url.tls, options_.url.host);
  }
  base_ = event_base_new();
  wakeup_ = event_new(base_, -1, EV_PERSIST, &AsyncRedisClient::OnWakeup, this);
  stop_ = event_new(base_, -1, 0, &AsyncRedisClient::OnStop, this);
  reconnect_timer_ = evtimer_new(base_, &AsyncRedisClient::OnReconnectTimer, this);
  event_add(wakeup_, nullptr);
  Connect();
  thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
}

AsyncRedisClient::~AsyncRedisClient() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  // Break the loop from inside it: event_base_loopbreak() from here is lost if the loop
  // thread has not entered event_base_loop() yet (it clears the flag on entry); an active
  // event is not.
  event_active(stop_, EV_READ, 0);
  thread_.join();
  // The loop is stopped: this thread now owns everything. Fail what is still pending.
  conn_.reset();  // runs pending callbacks with "connection closed"
  std::deque<std::unique_ptr<Op>> left;
  {
    absl::MutexLock lock(&queue_mu_);
    left.swap(queue_);
  }
  for (auto& op : left) {
    op->done(absl::UnavailableError("redis client stopped"));
  }
  event_free(wakeup_);
  event_free(stop_);
  event_free(reconnect_timer_);
  event_base_free(base_);
}

void AsyncRedisClient::Command(std::vector<std::string> args, RedisCallback done) {
  auto op = std::make_unique<Op>();
  op->args = std::move(args);
  op->done = std::move(done);
  Submit(std::move(op));
}

void AsyncRedisClient::Eval(const LuaScript& script, std::vector<std::string> keys,
                            std::vector<std::string> args, RedisCallback done) {
  auto op = std::make_unique<Op>();
  op->args.reserve(3 + keys.size() + args.size());
  op->args.push_back("EVALSHA");
  op->args.push_back(script.sha1());
  op->args.push_back(absl::StrCat(keys.size()));
  for (auto& k : keys) op->args.push_back(std::move(k));
  for (auto& a : args) op->args.push_back(std::move(a));
  op->script_source = script.source();
  op->done = std::move(done);
  Submit(std::move(op));
}

void AsyncRedisClient::Submit(std::unique_ptr<Op> op) {
  {
    absl::MutexLock lock(&queue_mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
    }
  }
  if (op != nullptr) {  // not queued: stopping
    op->done(absl::UnavailableError("redis client stopped"));
    return;
  }
  event_active(wakeup_, EV_READ, 0);
}

void AsyncRedisClient::OnWakeup(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<AsyncRedisClient*>(arg);
  std::deque<std::unique_ptr<Op>> ops;
  {
    absl::MutexLock lock(&self->queue_mu_);
    ops.swap(self->queue_);
  }
  for (auto& op : ops) {
    op->client = self;
    self->Dispatch(std::move(op));
  }
}

void AsyncRedisClient::OnStop(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<AsyncRedisClient*>(arg)->base_);
}

absl::Status AsyncRedisClient::NotConnected() const {
  if (!ever_tried_) {
    return absl::UnavailableError(absl::StrCat("redis is not connected yet (connecting to ",
                                               options_.url.host, ":", options_.url.port, ")"));
  }
  const std::string message = absl::StrCat("redis is not connected: ", last_error_.message());
  return IsRedisConfigurationError(last_error_) ? RedisConfigurationError(message)
                                                : absl::UnavailableError(message);
}

void AsyncRedisClient::Dispatch(std::unique_ptr<Op> op) {
  if (conn_ == nullptr || !conn_->ready()) {
    Complete(op.get(), NotConnected());
    return;
  }
  op->timer = evtimer_new(base_, &AsyncRedisClient::OnOpTimeout, op.get());
  timeval tv = absl::ToTimeval(options_.command_timeout);
  evtimer_add(op->timer, &tv);
  Send(std::move(op));
}

void AsyncRedisClient::Send(std::unique_ptr<Op> op) {
  const std::vector<std::string>& args = op->args;
  conn_->Send(args, [op = std::move(op)](absl::StatusOr<const redisReply*> reply) mutable {
    AsyncRedisClient* self = op->client;
    if (!reply.ok()) {
      Complete(op.get(), reply.status());
      return;
    }
    const redisReply* r = *reply;
    if (r->type == REDIS_REPLY_ERROR && op->script_source.has_value() &&
        absl::StartsWith(absl::string_view(r->str, r->len), "NOSCRIPT") && !op->completed &&
        self->conn_ != nullptr && self->conn_->ready()) {
      // The script cache was flushed (restart, failover): send the source once; Redis
      // caches it.
      op->args[0] = "EVAL";
      op->args[1] = *op->script_source;
      op->script_source.reset();
      self->Send(std::move(op));
      return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      Complete(op.get(), RedisErrorToStatus(absl::string_view(r->str, r->len)));
    } else {
      Complete(op.get(), CopyReply(r));
    }
  });
}

void AsyncRedisClient::Complete(Op* op, absl::StatusOr<RedisReply> result) {
  if (op->completed) return;
  op->completed = true;
  if (op->timer != nullptr) evtimer_del(op->timer);
  op->done(std::move(result));
}

void AsyncRedisClient::OnOpTimeout(evutil_socket_t, short, void* arg) {
  auto* op = static_cast<Op*>(arg);
  // The connection still owns `op` and frees it when the late reply or a disconnect arrives.
  Complete(op, absl::UnavailableError(
                   absl::StrCat("redis did not answer within ",
                                absl::FormatDuration(op->client->options_.command_timeout))));
}

void AsyncRedisClient::Connect() {
  if (!tls_.ok()) {
    OnClosed(RedisConfigurationError(tls_.status().message()));
    return;
  }
  internal::RedisConnectionOptions o;
  o.host = options_.url.host;
  o.port = options_.url.port;
  o.tls = *tls_;
  o.user = options_.url.user;
  o.password = options_.url.password;
  o.db = options_.url.db;
  o.connect_timeout = options_.connect_timeout;
  conn_ = std::make_unique<RedisConnection>(
      base_, std::move(o),
      RedisConnection::Events{.on_ready = [this] { OnReady(); },
                              .on_closed = [this](const absl::Status& why) { OnClosed(why); },
                              .on_push = nullptr});
  conn_->Connect();
}

void AsyncRedisClient::OnReady() {
  reconnect_attempt_ = 0;
  ready_ = true;
  Log::Info("redis connected", {{"host", options_.url.host},
                                {"port", static_cast<int64_t>(options_.url.port)},
                                {"tls", options_.url.tls.enabled}});
}

void AsyncRedisClient::OnClosed(const absl::Status& why) {
  const bool was_ready = ready_;
  ready_ = false;
  if (was_ready) {
    Log::Warn("redis disconnected", {{"error", std::string(why.message())}});
  } else if (IsRedisConfigurationError(why) && why.message() != last_error_.message()) {
    // Once per distinct reason, not at every attempt.
    Log::Error("redis connection refused", {{"error", std::string(why.message())}});
  }
  last_error_ = why;
  ever_tried_ = true;
  // The connection is destroyed later (the next Connect replaces it): this runs inside its
  // callbacks.
  ScheduleReconnect();
}

void AsyncRedisClient::ScheduleReconnect() {
  {
    absl::MutexLock lock(&queue_mu_);
    if (stopping_) return;
  }
  const Backoff backoff{absl::Milliseconds(50), options_.max_backoff};
  timeval tv = absl::ToTimeval(backoff.Delay(++reconnect_attempt_, rng_));
  evtimer_add(reconnect_timer_, &tv);
}

void AsyncRedisClient::OnReconnectTimer(evutil_socket_t, short, void* arg) {
  static_cast<AsyncRedisClient*>(arg)->Connect();
}

}  // namespace

std::unique_ptr<RedisClient> NewAsyncRedisClient(const AsyncRedisOptions& options) {
  return std::make_unique<AsyncRedisClient>(options);
}

}  // namespace rogatory::common
