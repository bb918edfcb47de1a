#include "rogatory/common/pubsub_listener.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/hiredis.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "redis_connection.h"
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
        channel_(std::move(channel)),
        tls_(std::shared_ptr<const internal::RedisTlsContext>()) {
    static const int kThreadsReady = evthread_use_pthreads();
    (void)kThreadsReady;
    if (url_.tls.enabled) tls_ = internal::RedisTlsContext::Create(url_.tls, url_.host);
    base_ = event_base_new();
    stop_ = event_new(base_, -1, 0, &Loop::OnStop, this);
    reconnect_timer_ = evtimer_new(base_, &Loop::OnReconnectTimer, this);
    Connect();
    thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  }

  ~Loop() {
    stopping_ = true;
    event_active(stop_, EV_READ, 0);  // breaks the loop from inside it
    thread_.join();
    conn_.reset();
    event_free(stop_);
    event_free(reconnect_timer_);
    event_base_free(base_);
  }

 private:
  static void OnStop(evutil_socket_t, short, void* arg) {
    event_base_loopbreak(static_cast<Loop*>(arg)->base_);
  }

  void Connect() {
    if (!tls_.ok()) {
      Log::Error("pub/sub subscription impossible",
                 {{"channel", channel_}, {"error", std::string(tls_.status().message())}});
      return ScheduleReconnect();
    }
    // A Redis Cluster's seeds in turn: PUBLISH reaches every node, so any one will do, and
    // the next is tried when one is down.
    internal::RedisConnectionOptions o;
    o.host = url_.host;
    o.port = url_.port;
    if (!url_.seeds.empty()) {
      const RedisHostPort& seed = url_.seeds[connects_++ % url_.seeds.size()];
      o.host = seed.host;
      o.port = seed.port;
    }
    o.tls = *tls_;
    o.user = url_.user;
    o.password = url_.password;
    // Channels are global (not per database): no SELECT needed.
    o.connect_timeout = absl::Seconds(1);
    conn_ = std::make_unique<internal::RedisConnection>(
        base_, std::move(o),
        internal::RedisConnection::Events{
            .on_ready = [this] { Subscribe(); },
            .on_closed = [this](const absl::Status& why) { OnClosed(why); },
            .on_push = [this](const redisReply* r) { OnMessage(r); }});
    conn_->Connect();
  }

  void Subscribe() {
    conn_->Send({"SUBSCRIBE", channel_}, [this](absl::StatusOr<const redisReply*> r) {
      if (!r.ok()) return;  // the connection is gone: OnClosed reconnects
      if ((*r)->type == REDIS_REPLY_ERROR) {
        Log::Error("pub/sub subscription refused",
                   {{"channel", channel_}, {"error", std::string((*r)->str, (*r)->len)}});
        conn_->Close(absl::UnavailableError("subscription refused"));
        return;
      }
      OnMessage(*r);  // the confirmation
    });
  }

  // Every reply on the subscribed connection: the confirmation, then one per message.
  void OnMessage(const redisReply* r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    const absl::string_view kind(r->element[0]->str, r->element[0]->len);
    if (kind == "subscribe") {
      reconnect_attempt_ = 0;
      subscriptions_->fetch_add(1);
      if (callbacks_.on_subscribed) callbacks_.on_subscribed();
    } else if (kind == "message" && r->element[2]->type == REDIS_REPLY_STRING) {
      if (callbacks_.on_message) {
        callbacks_.on_message(std::string(r->element[2]->str, r->element[2]->len));
      }
    }
  }

  void OnClosed(const absl::Status& why) {
    if (callbacks_.on_lost) callbacks_.on_lost();
    Log::Warn("pub/sub subscription lost; reconnecting",
              {{"channel", channel_}, {"error", std::string(why.message())}});
    ScheduleReconnect();  // the connection is replaced by the next Connect
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
  size_t connects_ = 0;  // loop thread only
  const Callbacks callbacks_;
  const absl::Duration max_backoff_;
  std::atomic<int>* const subscriptions_;
  const std::string channel_;
  absl::StatusOr<std::shared_ptr<const internal::RedisTlsContext>> tls_;
  std::atomic<bool> stopping_{false};
  event_base* base_ = nullptr;
  event* stop_ = nullptr;
  event* reconnect_timer_ = nullptr;
  std::thread thread_;
  // Loop thread only.
  std::unique_ptr<internal::RedisConnection> conn_;
  int reconnect_attempt_ = 0;
  std::minstd_rand rng_{std::random_device{}()};
};

PubSubListener::PubSubListener(RedisUrl url, std::string channel, Callbacks callbacks,
                               absl::Duration max_backoff)
    : loop_(std::make_unique<Loop>(std::move(url), std::move(channel), std::move(callbacks),
                                   max_backoff, &subscriptions_)) {}

PubSubListener::~PubSubListener() = default;

}  // namespace rogatory::common
