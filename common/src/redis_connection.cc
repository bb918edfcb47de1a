#include "redis_connection.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rogatory::common::internal {
namespace {

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

bool IsIpAddress(const std::string& name) {
  in6_addr v6;
  in_addr v4;
  return inet_pton(AF_INET, name.c_str(), &v4) == 1 || inet_pton(AF_INET6, name.c_str(), &v6) == 1;
}

// TLS alerts by which a server refuses the client's certificate (or its absence).
bool IsClientCertificateAlert(int reason) {
  switch (reason) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// RedisTlsContext

absl::StatusOr<std::shared_ptr<const RedisTlsContext>> RedisTlsContext::Create(
    const RedisTls& tls, const std::string& host) {
  if (tls.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "setting 'redis-tls-ca-file': required with TLS to Redis (rediss:// or "
        "redis-tls=true): the server's certificate is always verified against it");
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "setting '", tls.cert_file.empty() ? "redis-tls-cert-file" : "redis-tls-key-file",
        "': a client certificate needs both redis-tls-cert-file and "
        "redis-tls-key-file"));
  }
  std::shared_ptr<RedisTlsContext> out(new RedisTlsContext());
  out->ca_file_ = tls.ca_file;
  out->server_name_ = tls.server_name.empty() ? host : tls.server_name;
  ERR_clear_error();
  out->ctx_ = SSL_CTX_new(TLS_client_method());
  if (out->ctx_ == nullptr) {
    return absl::InternalError(absl::StrCat("TLS to Redis: ", OpenSslErrors()));
  }
  SSL_CTX_set_min_proto_version(out->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_verify(out->ctx_, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(out->ctx_, tls.ca_file.c_str(), nullptr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("setting 'redis-tls-ca-file': cannot load ",
                                                   tls.ca_file, ": ", OpenSslErrors()));
  }
  if (!tls.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(out->ctx_, tls.cert_file.c_str()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("setting 'redis-tls-cert-file': cannot load ",
                                                     tls.cert_file, ": ", OpenSslErrors()));
    }
    if (SSL_CTX_use_PrivateKey_file(out->ctx_, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("setting 'redis-tls-key-file': cannot load ",
                                                     tls.key_file, ": ", OpenSslErrors()));
    }
    if (SSL_CTX_check_private_key(out->ctx_) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("setting 'redis-tls-key-file': ", tls.key_file,
                                                     " is not the key of redis-tls-cert-file ",
                                                     tls.cert_file));
    }
  }
  return std::shared_ptr<const RedisTlsContext>(std::move(out));
}

RedisTlsContext::~RedisTlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

// ---------------------------------------------------------------------------------------
// RedisConnection

RedisConnection::RedisConnection(event_base* base, RedisConnectionOptions options, Events events)
    : base_(base),
      options_(std::move(options)),
      events_(std::move(events)),
      endpoint_(absl::StrCat(options_.host, ":", options_.port)) {
  connect_timer_ = evtimer_new(base_, &RedisConnection::OnConnectTimeout, this);
  reader_ = redisReaderCreate();
}

RedisConnection::~RedisConnection() {
  *alive_ = false;
  Fail(absl::UnavailableError(absl::StrCat("redis at ", endpoint_, ": connection closed")),
       /*notify=*/false);
  event_free(connect_timer_);
  redisReaderFree(reader_);
}

void RedisConnection::Connect() {
  if (state_ != State::kIdle) return;
  state_ = State::kConnecting;
  timeval tv = absl::ToTimeval(options_.connect_timeout);
  evtimer_add(connect_timer_, &tv);
  StartConnect();
}

void RedisConnection::StartConnect() {
  // Resolution blocks the loop as hiredis's redisAsyncConnect did (a name in /etc/hosts or
  // the cluster's DNS answers at once; the connect timeout bounds the rest).
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(options_.port);
  if (int rc = getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Fail(absl::UnavailableError(
                    absl::StrCat("redis at ", endpoint_, ": cannot resolve: ", gai_strerror(rc))),
                true);
  }
  if (options_.tls != nullptr) {
    SSL* ssl = SSL_new(options_.tls->ctx());
    const std::string& name = options_.tls->server_name();
    if (IsIpAddress(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, name.c_str());
      SSL_set1_host(ssl, name.c_str());
    }
    bev_ = bufferevent_openssl_socket_new(base_, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                          BEV_OPT_CLOSE_ON_FREE);
  } else {
    bev_ = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
  }
  bufferevent_setcb(bev_, &RedisConnection::OnRead, nullptr, &RedisConnection::OnEvent, this);
  bufferevent_enable(bev_, EV_READ | EV_WRITE);
  int rc = -1;
  int error = 0;
  for (addrinfo* a = found; a != nullptr && rc != 0; a = a->ai_next) {
    rc = bufferevent_socket_connect(bev_, a->ai_addr, static_cast<int>(a->ai_addrlen));
    if (rc != 0) error = errno;
  }
  freeaddrinfo(found);
  if (rc != 0) {
    return Fail(absl::UnavailableError(
                    absl::StrCat("redis at ", endpoint_, ": cannot connect: ", strerror(error))),
                true);
  }
  // Commands are small and pipelined: never wait for an acknowledgement to send them.
  const int one = 1;
  setsockopt(bufferevent_getfd(bev_), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void RedisConnection::OnConnectTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<RedisConnection*>(arg);
  if (self->state_ == State::kReady || self->state_ == State::kClosed) return;
  self->Fail(absl::UnavailableError(absl::StrCat(
                 "redis at ", self->endpoint_, ": not connected within ",
                 absl::FormatDuration(self->options_.connect_timeout),
                 self->state_ == State::kSettingUp ? " (no answer to AUTH/SELECT)" : "")),
             true);
}

void RedisConnection::OnEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<RedisConnection*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    self->OnConnected();
    return;
  }
  if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
    const int socket_error = EVUTIL_SOCKET_ERROR();
    self->Fail(self->TransportError(
                   (what & BEV_EVENT_EOF) ? "connection closed by the server" : "connection failed",
                   (what & BEV_EVENT_EOF) ? 0 : socket_error),
               true);
  }
}

absl::Status RedisConnection::TransportError(absl::string_view what, int socket_error) {
  const std::string prefix = absl::StrCat("redis at ", endpoint_, ": ");
  std::string tls_errors;
  int client_cert_reason = 0;
  if (options_.tls != nullptr && bev_ != nullptr) {
    while (unsigned long e = bufferevent_get_openssl_error(bev_)) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      if (!tls_errors.empty()) tls_errors += "; ";
      tls_errors += buf;
      if (IsClientCertificateAlert(ERR_GET_REASON(e))) client_cert_reason = ERR_GET_REASON(e);
    }
    SSL* ssl = bufferevent_openssl_get_ssl(bev_);
    const long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (state_ == State::kConnecting && verify != X509_V_OK) {
      if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        return RedisConfigurationError(
            absl::StrCat(prefix, "TLS: the server's certificate did not verify: it does not name ",
                         options_.tls->server_name(),
                         " (redis-tls-server-name, default the host of redis-url)"));
      }
      return RedisConfigurationError(absl::StrCat(
          prefix, "TLS: the server's certificate did not verify against ", options_.tls->ca_file(),
          " (redis-tls-ca-file): ", X509_verify_cert_error_string(verify)));
    }
    // Without a certificate of ours, a server that wants one (TLS 1.3) ends the connection
    // right after the handshake, often with a reset that loses its alert: the first
    // command (AUTH) is never answered.
    const bool dropped_after_handshake = state_ == State::kSettingUp &&
                                         options_.tls->ctx() != nullptr &&
                                         SSL_CTX_get0_certificate(options_.tls->ctx()) == nullptr &&
                                         (socket_error == ECONNRESET || !tls_errors.empty());
    if (client_cert_reason == 0 && dropped_after_handshake) {
      return RedisConfigurationError(absl::StrCat(
          prefix,
          "TLS: the server ended the connection right after the handshake, before "
          "answering AUTH: it asks for a client certificate (tls-auth-clients) and this "
          "client has none: set redis-tls-cert-file and redis-tls-key-file (",
          socket_error != 0 ? evutil_socket_error_to_string(socket_error) : tls_errors, ")"));
    }
    if (client_cert_reason != 0) {
      return RedisConfigurationError(
          absl::StrCat(prefix, "TLS: the server refused this client's certificate (",
                       ERR_reason_error_string(static_cast<unsigned long>(client_cert_reason)),
                       "): Redis asks for one (tls-auth-clients): set redis-tls-cert-file and "
                       "redis-tls-key-file to a certificate its CA signed"));
    }
  }
  std::string detail(what);
  if (socket_error != 0)
    absl::StrAppend(&detail, ": ", evutil_socket_error_to_string(socket_error));
  if (!tls_errors.empty()) absl::StrAppend(&detail, " (TLS: ", tls_errors, ")");
  if (state_ == State::kConnecting && options_.tls != nullptr && socket_error == 0) {
    absl::StrAppend(&detail, " during the TLS handshake");
  }
  return absl::UnavailableError(absl::StrCat(prefix, detail));
}

void RedisConnection::OnConnected() {
  if (state_ != State::kConnecting) return;
  state_ = State::kSettingUp;
  SendSetup();
}

void RedisConnection::SendSetup() {
  // The set-up commands go first on the connection; it is ready once the last one
  // succeeded. A refusal is the configuration's fault: retrying the same cannot help.
  struct Step {
    std::vector<std::string> args;
    std::string what;
  };
  std::vector<Step> steps;
  if (!options_.password.empty()) {
    if (options_.user.empty()) {
      steps.push_back({{"AUTH", options_.password}, "AUTH"});
    } else {
      steps.push_back({{"AUTH", options_.user, options_.password},
                       absl::StrCat("AUTH as user '", options_.user, "'")});
    }
  }
  if (options_.db != 0) {
    steps.push_back({{"SELECT", absl::StrCat(options_.db)}, absl::StrCat("SELECT ", options_.db)});
  }
  if (steps.empty()) {
    FlushHeld();
    state_ = State::kReady;
    evtimer_del(connect_timer_);
    if (events_.on_ready) events_.on_ready();
    return;
  }
  auto remaining = std::make_shared<size_t>(steps.size());
  // Inserted in front of anything the owner sent already.
  std::deque<ReplyCallback> owners = std::move(pending_);
  pending_.clear();
  for (Step& step : steps) {
    Write(step.args);
    pending_.push_back([this, remaining,
                        what = std::move(step.what)](absl::StatusOr<const redisReply*> r) {
      if (!r.ok()) return;  // the connection failed: Fail reports it
      const redisReply* reply = *r;
      if (reply->type == REDIS_REPLY_ERROR) {
        Fail(RedisConfigurationError(absl::StrCat("redis at ", endpoint_, " refused ", what, ": ",
                                                  absl::string_view(reply->str, reply->len))),
             true);
        return;
      }
      if (--*remaining == 0 && state_ == State::kSettingUp) {
        state_ = State::kReady;
        evtimer_del(connect_timer_);
        if (events_.on_ready) events_.on_ready();
      }
    });
  }
  for (auto& cb : owners) pending_.push_back(std::move(cb));
  FlushHeld();
}

void RedisConnection::FlushHeld() {
  if (held_.empty()) return;
  bufferevent_write(bev_, held_.data(), held_.size());
  held_.clear();
}

void RedisConnection::Write(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int len =
      redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
  if (len < 0) return;  // out of memory: the reply never comes; the owner's timeout fails it
  if (state_ == State::kConnecting) {
    held_.append(cmd, static_cast<size_t>(len));  // sent after the set-up commands
  } else {
    bufferevent_write(bev_, cmd, static_cast<size_t>(len));
  }
  redisFreeCommand(cmd);
}

void RedisConnection::Send(const std::vector<std::string>& args, ReplyCallback done) {
  if (state_ == State::kClosed) {
    done(close_status_);
    return;
  }
  if (state_ == State::kIdle) {
    done(absl::UnavailableError(absl::StrCat("redis at ", endpoint_, ": not connected")));
    return;
  }
  // While connecting, the command is held and sent after the set-up commands (SendSetup).
  Write(args);
  pending_.push_back(std::move(done));
}

void RedisConnection::OnRead(bufferevent* bev, void* arg) {
  auto* self = static_cast<RedisConnection*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  const size_t length = evbuffer_get_length(in);
  const int chunks = evbuffer_peek(in, -1, nullptr, nullptr, 0);
  std::vector<evbuffer_iovec> vec(static_cast<size_t>(std::max(chunks, 0)));
  evbuffer_peek(in, -1, nullptr, vec.data(), chunks);
  for (const evbuffer_iovec& v : vec) {
    if (redisReaderFeed(self->reader_, static_cast<const char*>(v.iov_base), v.iov_len) !=
        REDIS_OK) {
      break;
    }
  }
  evbuffer_drain(in, length);
  const std::shared_ptr<bool> alive = self->alive_;
  while (true) {
    void* reply = nullptr;
    if (redisReaderGetReply(self->reader_, &reply) != REDIS_OK) {
      self->Fail(absl::UnavailableError(absl::StrCat("redis at ", self->endpoint_,
                                                     ": protocol error: ", self->reader_->errstr)),
                 true);
      return;
    }
    if (reply == nullptr) return;
    auto* r = static_cast<redisReply*>(reply);
    if (!self->pending_.empty()) {
      ReplyCallback done = std::move(self->pending_.front());
      self->pending_.pop_front();
      done(static_cast<const redisReply*>(r));
    } else if (self->events_.on_push) {
      self->events_.on_push(r);
    }
    freeReplyObject(r);
    if (!*alive || self->state_ == State::kClosed) return;
  }
}

void RedisConnection::Close(absl::Status why) { Fail(std::move(why), true); }

void RedisConnection::Fail(absl::Status why, bool notify) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  close_status_ = why;
  evtimer_del(connect_timer_);
  if (bev_ != nullptr) {
    bufferevent_free(bev_);  // safe inside its own callbacks: libevent defers the release
    bev_ = nullptr;
  }
  std::deque<ReplyCallback> pending = std::move(pending_);
  pending_.clear();
  const std::shared_ptr<bool> alive = alive_;
  // Every callback runs, even if one of them destroys this object (they are ours now).
  for (ReplyCallback& done : pending) done(why);
  if (notify && *alive && events_.on_closed) events_.on_closed(why);
}

// ---------------------------------------------------------------------------------------

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

absl::StatusOr<std::shared_ptr<const RedisTlsContext>> TlsContextOf(const RedisUrl& url) {
  if (!url.tls.enabled) return std::shared_ptr<const RedisTlsContext>();
  return RedisTlsContext::Create(url.tls, url.host);
}

// ---------------------------------------------------------------------------------------
// BlockingRedisConnection

BlockingRedisConnection::BlockingRedisConnection(RedisUrl url, absl::Duration connect_timeout)
    : url_(std::move(url)), connect_timeout_(connect_timeout), tls_(TlsContextOf(url_)) {
  static const int kThreadsReady = evthread_use_pthreads();
  (void)kThreadsReady;
  base_ = event_base_new();
  interrupt_ = event_new(base_, -1, 0, &BlockingRedisConnection::OnInterrupt, this);
  timeout_ = evtimer_new(base_, &BlockingRedisConnection::OnTimeout, this);
}

BlockingRedisConnection::~BlockingRedisConnection() {
  conn_.reset();
  event_free(interrupt_);
  event_free(timeout_);
  event_base_free(base_);
}

void BlockingRedisConnection::Interrupt() {
  {
    absl::MutexLock lock(&mu_);
    interrupted_ = true;
  }
  event_active(interrupt_, EV_READ, 0);  // wakes a running Command's loop
}

void BlockingRedisConnection::OnInterrupt(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<BlockingRedisConnection*>(arg);
  if (self->conn_ != nullptr) self->conn_->Close(absl::CancelledError("interrupted"));
}

void BlockingRedisConnection::OnTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<BlockingRedisConnection*>(arg);
  if (self->conn_ != nullptr) {
    self->conn_->Close(absl::UnavailableError(
        absl::StrCat("redis at ", self->conn_->endpoint(), ": no reply in time")));
  }
}

absl::StatusOr<RedisReply> BlockingRedisConnection::Command(const std::vector<std::string>& args,
                                                            absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (interrupted_) return absl::CancelledError("interrupted");
  }
  if (!tls_.ok()) return RedisConfigurationError(tls_.status().message());
  if (conn_ == nullptr || conn_->closed()) {
    RedisConnectionOptions o;
    o.host = url_.host;
    o.port = url_.port;
    o.tls = *tls_;
    o.user = url_.user;
    o.password = url_.password;
    o.db = url_.db;
    o.connect_timeout = connect_timeout_;
    conn_ = std::make_unique<RedisConnection>(base_, std::move(o), RedisConnection::Events{});
    conn_->Connect();
    timeout += connect_timeout_;
  }
  bool done = false;
  absl::StatusOr<RedisReply> result = absl::UnavailableError("no reply");
  conn_->Send(args, [&](absl::StatusOr<const redisReply*> r) {
    done = true;
    if (!r.ok()) {
      result = r.status();
    } else if ((*r)->type == REDIS_REPLY_ERROR) {
      result = RedisErrorToStatus(absl::string_view((*r)->str, (*r)->len));
    } else {
      result = CopyReply(*r);
    }
  });
  timeval tv = absl::ToTimeval(timeout);
  evtimer_add(timeout_, &tv);
  while (!done) event_base_loop(base_, EVLOOP_ONCE);
  evtimer_del(timeout_);
  {
    absl::MutexLock lock(&mu_);
    if (interrupted_) return absl::CancelledError("interrupted");
  }
  return result;
}

}  // namespace rogatory::common::internal
