#include "rogatory/common/async_redis_client.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <atomic>
#include <deque>
#include <optional>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "rogatory/common/backoff.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {
namespace {

RedisReply CopyReply(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(CopyReply(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

class AsyncRedisClient final : public RedisClient {
 public:
  explicit AsyncRedisClient(const AsyncRedisOptions& options);
  ~AsyncRedisClient() override;

  void Command(std::vector<std::string> args, RedisCallback done) override;
  void Eval(const LuaScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisCallback done) override;

 private:
  // One command in flight. Owned by the queue until dispatched, then by hiredis's callback.
  struct Op {
    AsyncRedisClient* client = nullptr;
    std::vector<std::string> args;
    RedisCallback done;
    // For EVALSHA: the script source, to fall back on EVAL after NOSCRIPT.
    std::optional<std::string> script_source;
    event* timer = nullptr;
    bool completed = false;
  };

  void Submit(std::unique_ptr<Op> op);
  // Loop-thread only below.
  static void OnWakeup(evutil_socket_t, short, void* self);
  static void OnStop(evutil_socket_t, short, void* self);
  static void OnOpTimeout(evutil_socket_t, short, void* op);
  static void OnReply(redisAsyncContext* ctx, void* reply, void* privdata);
  static void OnConnect(const redisAsyncContext* ctx, int status);
  static void OnDisconnect(const redisAsyncContext* ctx, int status);
  static void OnReconnectTimer(evutil_socket_t, short, void* self);
  static void OnConnectTimeout(evutil_socket_t, short, void* self);
  void Dispatch(Op* op);
  void Send(Op* op);
  static void Complete(Op* op, absl::StatusOr<RedisReply> result);
  void Connect();
  void ScheduleReconnect();
  void SendSetupCommands();

  const AsyncRedisOptions options_;
  event_base* base_ = nullptr;
  event* wakeup_ = nullptr;
  event* stop_ = nullptr;
  event* reconnect_timer_ = nullptr;
  event* connect_timeout_ = nullptr;
  std::thread thread_;

  absl::Mutex queue_mu_;
  std::deque<std::unique_ptr<Op>> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  // Loop thread only.
  redisAsyncContext* ctx_ = nullptr;
  bool connected_ = false;
  int reconnect_attempt_ = 0;  // failed connects in a row
  std::minstd_rand rng_{std::random_device{}()};
};

AsyncRedisClient::AsyncRedisClient(const AsyncRedisOptions& options) : options_(options) {
  static const int kThreadsReady = evthread_use_pthreads();
  (void)kThreadsReady;
  base_ = event_base_new();
  wakeup_ = event_new(base_, -1, EV_PERSIST, &AsyncRedisClient::OnWakeup, this);
  stop_ = event_new(base_, -1, 0, &AsyncRedisClient::OnStop, this);
  reconnect_timer_ = evtimer_new(base_, &AsyncRedisClient::OnReconnectTimer, this);
  connect_timeout_ = evtimer_new(base_, &AsyncRedisClient::OnConnectTimeout, this);
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
  if (ctx_ != nullptr) {
    redisAsyncContext* ctx = ctx_;
    ctx_ = nullptr;
    connected_ = false;
    redisAsyncFree(ctx);  // runs pending callbacks with no reply
  }
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
  event_free(connect_timeout_);
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
    self->Dispatch(op.release());
  }
}

void AsyncRedisClient::OnStop(evutil_socket_t, short, void* arg) {
  event_base_loopbreak(static_cast<AsyncRedisClient*>(arg)->base_);
}

void AsyncRedisClient::Dispatch(Op* op) {
  if (!connected_) {
    Complete(op, absl::UnavailableError("redis is not connected"));
    delete op;
    return;
  }
  op->timer = evtimer_new(base_, &AsyncRedisClient::OnOpTimeout, op);
  timeval tv = absl::ToTimeval(options_.command_timeout);
  evtimer_add(op->timer, &tv);
  Send(op);
}

void AsyncRedisClient::Send(Op* op) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(op->args.size());
  lens.reserve(op->args.size());
  for (const auto& a : op->args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAsyncCommandArgv(ctx_, &AsyncRedisClient::OnReply, op, static_cast<int>(argv.size()),
                            argv.data(), lens.data()) != REDIS_OK) {
    Complete(op, absl::UnavailableError("redis connection is closing"));
    if (op->timer != nullptr) event_free(op->timer);
    delete op;
  }
}

void AsyncRedisClient::Complete(Op* op, absl::StatusOr<RedisReply> result) {
  if (op->completed) return;
  op->completed = true;
  if (op->timer != nullptr) evtimer_del(op->timer);
  op->done(std::move(result));
}

void AsyncRedisClient::OnOpTimeout(evutil_socket_t, short, void* arg) {
  auto* op = static_cast<Op*>(arg);
  // hiredis still owns `op` and frees it when the late reply or a disconnect arrives.
  Complete(op, absl::UnavailableError(
                   absl::StrCat("redis did not answer within ",
                                absl::FormatDuration(op->client->options_.command_timeout))));
}

void AsyncRedisClient::OnReply(redisAsyncContext* ctx, void* reply, void* privdata) {
  auto* op = static_cast<Op*>(privdata);
  auto* self = static_cast<AsyncRedisClient*>(ctx->data);
  auto* r = static_cast<redisReply*>(reply);
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && op->script_source.has_value() &&
      absl::StartsWith(absl::string_view(r->str, r->len), "NOSCRIPT") && !op->completed &&
      self != nullptr && self->connected_) {
    // The script cache was flushed (restart, failover): send the source once; Redis caches it.
    op->args[0] = "EVAL";
    op->args[1] = *op->script_source;
    op->script_source.reset();
    self->Send(op);
    return;
  }
  if (r == nullptr) {
    Complete(op, absl::UnavailableError("redis connection lost"));
  } else if (r->type == REDIS_REPLY_ERROR) {
    Complete(op, RedisErrorToStatus(absl::string_view(r->str, r->len)));
  } else {
    Complete(op, CopyReply(r));
  }
  if (op->timer != nullptr) event_free(op->timer);
  delete op;
}

void AsyncRedisClient::Connect() {
  redisAsyncContext* ctx = redisAsyncConnect(options_.url.host.c_str(), options_.url.port);
  if (ctx == nullptr || ctx->err) {
    if (ctx != nullptr) redisAsyncFree(ctx);
    ScheduleReconnect();
    return;
  }
  ctx->data = this;
  ctx_ = ctx;
  redisLibeventAttach(ctx, base_);
  redisAsyncSetConnectCallback(ctx, &AsyncRedisClient::OnConnect);
  redisAsyncSetDisconnectCallback(ctx, &AsyncRedisClient::OnDisconnect);
  timeval tv = absl::ToTimeval(options_.connect_timeout);
  evtimer_add(connect_timeout_, &tv);
}

void AsyncRedisClient::OnConnect(const redisAsyncContext* ctx, int status) {
  auto* self = static_cast<AsyncRedisClient*>(ctx->data);
  evtimer_del(self->connect_timeout_);
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback.
    self->ctx_ = nullptr;
    self->ScheduleReconnect();
    return;
  }
  self->connected_ = true;
  self->reconnect_attempt_ = 0;
  self->SendSetupCommands();
  Log::Info("redis connected", {{"host", self->options_.url.host},
                                {"port", static_cast<int64_t>(self->options_.url.port)}});
}

void AsyncRedisClient::SendSetupCommands() {
  auto check = [this](absl::string_view what) {
    return [this, what = std::string(what)](absl::StatusOr<RedisReply> r) {
      if (!r.ok()) {
        Log::Error("redis connection setup failed",
                   {{"step", what}, {"error", std::string(r.status().message())}});
        if (ctx_ != nullptr && connected_) redisAsyncDisconnect(ctx_);
      }
    };
  };
  auto send = [this](std::vector<std::string> args, RedisCallback cb) {
    auto* op = new Op();
    op->client = this;
    op->args = std::move(args);
    op->done = std::move(cb);
    op->timer = evtimer_new(base_, &AsyncRedisClient::OnOpTimeout, op);
    timeval tv = absl::ToTimeval(options_.command_timeout);
    evtimer_add(op->timer, &tv);
    Send(op);
  };
  if (!options_.url.password.empty()) {
    if (options_.url.user.empty()) {
      send({"AUTH", options_.url.password}, check("auth"));
    } else {
      send({"AUTH", options_.url.user, options_.url.password}, check("auth"));
    }
  }
  if (options_.url.db != 0) send({"SELECT", absl::StrCat(options_.url.db)}, check("select"));
}

void AsyncRedisClient::OnDisconnect(const redisAsyncContext* ctx, int status) {
  auto* self = static_cast<AsyncRedisClient*>(ctx->data);
  if (self == nullptr || self->ctx_ != ctx) return;
  self->ctx_ = nullptr;
  self->connected_ = false;
  Log::Warn("redis disconnected", {{"clean", status == REDIS_OK}});
  self->ScheduleReconnect();
}

void AsyncRedisClient::OnConnectTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<AsyncRedisClient*>(arg);
  if (self->ctx_ == nullptr || self->connected_) return;
  redisAsyncContext* ctx = self->ctx_;
  self->ctx_ = nullptr;
  ctx->data = nullptr;
  redisAsyncFree(ctx);
  self->ScheduleReconnect();
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
