#include "rogatory/common/pubsub_listener.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rogatory/common/backoff.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {

// Everything below runs on the loop thread, except construction and destruction.
class PubSubListener::Loop {
 public:
  Loop(RedisUrl url, std::string channel, Callbacks callbacks, absl::Duration max_backoff,
       std::atomic<int>* subscriptions)
      : url_(std::move(url)),
        callbacks_(std::move(callbacks)),
        max_backoff_(max_backoff),
        subscriptions_(subscriptions),
        channel_(std::move(channel)) {
    static const int kThreadsReady = evthread_use_pthreads();
    (void)kThreadsReady;
    base_ = event_base_new();
    stop_ = event_new(base_, -1, 0, &Loop::OnStop, this);
    reconnect_timer_ = evtimer_new(base_, &Loop::OnReconnectTimer, this);
    connect_timeout_ = evtimer_new(base_, &Loop::OnConnectTimeout, this);
    Connect();
    thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  }

  ~Loop() {
    stopping_ = true;
    event_active(stop_, EV_READ, 0);  // breaks the loop from inside it
    thread_.join();
    if (ctx_ != nullptr) {
      redisAsyncContext* ctx = ctx_;
      ctx_ = nullptr;
      ctx->data = nullptr;
      redisAsyncFree(ctx);
    }
    event_free(stop_);
    event_free(reconnect_timer_);
    event_free(connect_timeout_);
    event_base_free(base_);
  }

 private:
  static void OnStop(evutil_socket_t, short, void* arg) {
    event_base_loopbreak(static_cast<Loop*>(arg)->base_);
  }

  void Connect() {
    redisAsyncContext* ctx = redisAsyncConnect(url_.host.c_str(), url_.port);
    if (ctx == nullptr || ctx->err) {
      if (ctx != nullptr) redisAsyncFree(ctx);
      return ScheduleReconnect();
    }
    ctx->data = this;
    ctx_ = ctx;
    redisLibeventAttach(ctx, base_);
    redisAsyncSetConnectCallback(ctx, &Loop::OnConnect);
    redisAsyncSetDisconnectCallback(ctx, &Loop::OnDisconnect);
    timeval tv = absl::ToTimeval(absl::Seconds(1));
    evtimer_add(connect_timeout_, &tv);
  }

  static void OnConnect(const redisAsyncContext* ctx, int status) {
    auto* self = static_cast<Loop*>(ctx->data);
    if (self == nullptr) return;
    evtimer_del(self->connect_timeout_);
    if (status != REDIS_OK) {
      self->ctx_ = nullptr;  // hiredis frees the context after this callback
      return self->ScheduleReconnect();
    }
    // AUTH and SELECT first (a subscribed connection accepts neither): their replies need
    // no callback; an error shows as the SUBSCRIBE failing, which reconnects.
    if (!self->url_.password.empty()) {
      if (self->url_.user.empty()) {
        redisAsyncCommand(self->ctx_, nullptr, nullptr, "AUTH %b", self->url_.password.data(),
                          self->url_.password.size());
      } else {
        redisAsyncCommand(self->ctx_, nullptr, nullptr, "AUTH %b %b", self->url_.user.data(),
                          self->url_.user.size(), self->url_.password.data(),
                          self->url_.password.size());
      }
    }
    // Channels are global (not per database): no SELECT needed.
    redisAsyncCommand(self->ctx_, &Loop::OnMessage, self, "SUBSCRIBE %b", self->channel_.data(),
                      self->channel_.size());
  }

  // Every reply on the subscribed connection: the confirmation, then one per message.
  static void OnMessage(redisAsyncContext* ctx, void* reply, void* privdata) {
    auto* self = static_cast<Loop*>(privdata);
    auto* r = static_cast<redisReply*>(reply);
    if (r == nullptr || ctx->data == nullptr) return;  // disconnected or freed
    if (r->type == REDIS_REPLY_ERROR) {
      Log::Error("pub/sub subscription refused",
                 {{"channel", self->channel_}, {"error", std::string(r->str, r->len)}});
      redisAsyncDisconnect(ctx);
      return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    const absl::string_view kind(r->element[0]->str, r->element[0]->len);
    if (kind == "subscribe") {
      self->reconnect_attempt_ = 0;
      self->subscriptions_->fetch_add(1);
      if (self->callbacks_.on_subscribed) self->callbacks_.on_subscribed();
    } else if (kind == "message" && r->element[2]->type == REDIS_REPLY_STRING) {
      if (self->callbacks_.on_message) {
        self->callbacks_.on_message(std::string(r->element[2]->str, r->element[2]->len));
      }
    }
  }

  static void OnDisconnect(const redisAsyncContext* ctx, int status) {
    auto* self = static_cast<Loop*>(ctx->data);
    if (self == nullptr || self->ctx_ != ctx) return;
    self->ctx_ = nullptr;
    if (self->callbacks_.on_lost) self->callbacks_.on_lost();
    Log::Warn("pub/sub subscription lost; reconnecting",
              {{"channel", self->channel_}, {"clean", status == REDIS_OK}});
    self->ScheduleReconnect();
  }

  static void OnConnectTimeout(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Loop*>(arg);
    if (self->ctx_ == nullptr) return;
    redisAsyncContext* ctx = self->ctx_;
    self->ctx_ = nullptr;
    ctx->data = nullptr;
    redisAsyncFree(ctx);
    self->ScheduleReconnect();
  }

  void ScheduleReconnect() {
    if (stopping_) return;
    const Backoff backoff{absl::Milliseconds(50), max_backoff_};
    timeval tv = absl::ToTimeval(backoff.Delay(++reconnect_attempt_, rng_));
    evtimer_add(reconnect_timer_, &tv);
  }

  static void OnReconnectTimer(evutil_socket_t, short, void* arg) {
    static_cast<Loop*>(arg)->Connect();
  }

  const RedisUrl url_;
  const Callbacks callbacks_;
  const absl::Duration max_backoff_;
  std::atomic<int>* const subscriptions_;
  const std::string channel_;
  std::atomic<bool> stopping_{false};
  event_base* base_ = nullptr;
  event* stop_ = nullptr;
  event* reconnect_timer_ = nullptr;
  event* connect_timeout_ = nullptr;
  std::thread thread_;
  // Loop thread only.
  redisAsyncContext* ctx_ = nullptr;
  int reconnect_attempt_ = 0;
  std::minstd_rand rng_{std::random_device{}()};
};

PubSubListener::PubSubListener(RedisUrl url, std::string channel, Callbacks callbacks,
                               absl::Duration max_backoff)
    : loop_(std::make_unique<Loop>(std::move(url), std::move(channel), std::move(callbacks),
                                   max_backoff, &subscriptions_)) {}

PubSubListener::~PubSubListener() = default;

}  // namespace rogatory::common
