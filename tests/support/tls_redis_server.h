#pragma once

#include <sys/types.h>

#include <string>

#include "rogatory/common/redis.h"

namespace rogatory::testing {

// A real redis-server that speaks TLS only (`port 0`, `tls-port`), with certificates made
// at start with openssl in a temp dir, and Redis ACL users: the default user is off, the
// application user is `rogatory` with password kPassword. Never skips.
//
// Files in dir(): ca.crt (the CA that signed the server's and the client's certificates),
// other-ca.crt (a CA that signed neither), server.crt/.key (CN redis, SAN DNS:localhost,
// DNS:redis.test, IP:127.0.0.1), client.crt/.key (clientAuth).
class TlsRedisServer {
 public:
  static constexpr char kUser[] = "rogatory";
  static constexpr char kPassword[] = "tls-s3cret";

  // `require_client_certificate`: `tls-auth-clients yes` (else `no`).
  explicit TlsRedisServer(bool require_client_certificate = false);
  ~TlsRedisServer();

  // Starts (or restarts, same port) the server and waits until it answers PING over TLS.
  void Start();
  void Stop();

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string File(const std::string& name) const { return dir_ + "/" + name; }
  // rediss://rogatory:<password>@127.0.0.1:<port>/0 with tls.ca_file = ca.crt (and the
  // client certificate when the server requires one).
  common::RedisUrl Url() const;
  // Runs a redis-cli command as the application user over TLS; returns its output.
  std::string Cli(const std::string& args) const;

 private:
  const bool require_client_certificate_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace rogatory::testing
