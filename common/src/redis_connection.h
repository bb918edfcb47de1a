#pragma once

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rogatory/common/redis.h"

struct bufferevent;
struct ssl_ctx_st;

namespace rogatory::common::internal {

// TLS settings loaded once and shared by every connection to one Redis: the CA that must
// verify the server (mandatory), the client certificate if any, and the name the server's
// certificate must carry. Immutable; thread-safe.
class RedisTlsContext {
 public:
  // Loads the files of `tls`; errors name the setting (redis-tls-ca-file...). `host` is the
  // URL's host, the server name when tls.server_name is empty.
  static absl::StatusOr<std::shared_ptr<const RedisTlsContext>> Create(const RedisTls& tls,
                                                                       const std::string& host);
  ~RedisTlsContext();
  RedisTlsContext(const RedisTlsContext&) = delete;
  RedisTlsContext& operator=(const RedisTlsContext&) = delete;

  ssl_ctx_st* ctx() const { return ctx_; }
  const std::string& server_name() const { return server_name_; }
  const std::string& ca_file() const { return ca_file_; }

 private:
  RedisTlsContext() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string server_name_;
  std::string ca_file_;
};

struct RedisConnectionOptions {
  std::string host;
  int port = 6379;
  // Null: plain TCP.
  std::shared_ptr<const RedisTlsContext> tls;
  // AUTH (with the ACL user when set) and SELECT, sent before the connection is ready.
  std::string user;
  std::string password;
  int db = 0;
  // TCP connect, TLS handshake, AUTH and SELECT must all be done within this.
  absl::Duration connect_timeout = absl::Seconds(1);
};

// One Redis connection on a libevent bufferevent (bufferevent_openssl for TLS), with
// hiredis used only for the protocol: redisFormatCommandArgv encodes, a redisReader parses.
// Commands are pipelined: each one sent gets its reply callback, in the order sent.
//
// Not thread-safe: everything, callbacks included, runs on the thread of `base`'s loop. It
// neither reconnects nor times commands out: its owner does (AsyncRedisClient keeps one;
// a cluster client keeps one per node). The object may be destroyed from inside any of its
// callbacks.
class RedisConnection {
 public:
  // A reply (an error reply is a reply: r->type == REDIS_REPLY_ERROR), valid during the
  // call only; or the transport failure that ended the connection before it came.
  using ReplyCallback = absl::AnyInvocable<void(absl::StatusOr<const redisReply*>)>;
  struct Events {
    // The connection is ready for commands (connected, TLS verified, AUTH and SELECT done).
    absl::AnyInvocable<void()> on_ready;
    // The connection failed to connect or was lost: UNAVAILABLE saying why (marked with
    // IsRedisConfigurationError when retrying cannot help). Runs once, after the pending
    // callbacks got the same status. Not run by the destructor.
    absl::AnyInvocable<void(const absl::Status&)> on_closed;
    // A reply that answers no command (pub/sub messages of a subscribed connection).
    absl::AnyInvocable<void(const redisReply*)> on_push;
  };

  RedisConnection(event_base* base, RedisConnectionOptions options, Events events);
  // Closes the connection; pending callbacks get UNAVAILABLE ("connection closed").
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Starts connecting (once). on_ready or on_closed follows.
  void Connect();
  bool ready() const { return state_ == State::kReady; }
  bool closed() const { return state_ == State::kClosed; }
  // Sends a command. Commands sent before the connection is ready are queued behind the
  // set-up commands; on a closed connection `done` runs at once with the close status.
  void Send(const std::vector<std::string>& args, ReplyCallback done);
  // Closes the connection with `why`: pending callbacks and on_closed get it.
  void Close(absl::Status why);
  size_t pending() const { return pending_.size(); }
  const std::string& endpoint() const { return endpoint_; }

 private:
  enum class State { kIdle, kConnecting, kSettingUp, kReady, kClosed };

  static void OnRead(bufferevent* bev, void* self);
  static void OnEvent(bufferevent* bev, short what, void* self);
  static void OnConnectTimeout(evutil_socket_t, short, void* self);
  void StartConnect();
  void OnConnected();
  void SendSetup();
  void Write(const std::vector<std::string>& args);
  void FlushHeld();
  // The reason the transport failed, from errno and OpenSSL's error queue.
  absl::Status TransportError(absl::string_view what, int socket_error);
  void Fail(absl::Status why, bool notify);

  event_base* const base_;
  const RedisConnectionOptions options_;
  Events events_;
  const std::string endpoint_;  // host:port, for messages
  State state_ = State::kIdle;
  bufferevent* bev_ = nullptr;
  event* connect_timer_ = nullptr;
  redisReader* reader_ = nullptr;
  std::deque<ReplyCallback> pending_;
  std::string held_;  // commands sent while connecting, written after the set-up commands
  absl::Status close_status_;
  // Cleared by the destructor: a callback that destroyed this object is noticed.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// A copy of a hiredis reply (nil for an error reply: check r->type first).
RedisReply CopyReply(const redisReply* r);

// The loaded TLS settings of `url` (null without TLS), or why they cannot be loaded.
absl::StatusOr<std::shared_ptr<const RedisTlsContext>> TlsContextOf(const RedisUrl& url);

// One RedisConnection driven by the thread that calls Command, for a thread that waits on
// Redis (XREAD BLOCK): connects when needed (TLS, AUTH and SELECT as `url` says), sends,
// and runs its own event loop until the reply comes. Command is for one thread at a time;
// Interrupt for any thread.
class BlockingRedisConnection {
 public:
  BlockingRedisConnection(RedisUrl url, absl::Duration connect_timeout);
  ~BlockingRedisConnection();
  BlockingRedisConnection(const BlockingRedisConnection&) = delete;
  BlockingRedisConnection& operator=(const BlockingRedisConnection&) = delete;

  // The reply (an error reply is UNAVAILABLE or INTERNAL as RedisErrorToStatus says), or
  // UNAVAILABLE when Redis cannot be reached or no reply comes within `timeout` (the
  // connection is then dropped and made again by the next call), or CANCELLED once
  // Interrupt was called.
  absl::StatusOr<RedisReply> Command(const std::vector<std::string>& args, absl::Duration timeout);
  // Makes a running and every later Command return CANCELLED at once.
  void Interrupt();

 private:
  static void OnInterrupt(evutil_socket_t, short, void* self);
  static void OnTimeout(evutil_socket_t, short, void* self);

  const RedisUrl url_;
  const absl::Duration connect_timeout_;
  absl::StatusOr<std::shared_ptr<const RedisTlsContext>> tls_;
  event_base* base_ = nullptr;
  event* interrupt_ = nullptr;
  event* timeout_ = nullptr;
  std::unique_ptr<RedisConnection> conn_;  // the calling thread only
  absl::Mutex mu_;
  bool interrupted_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rogatory::common::internal
