#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "rogatory/common/transport_security.h"

namespace rogatory::bench {

// Who the benchmark calls as, and how it proves it: a bearer token minted with a
// development key set (auth=token, as the services run by default) or the development
// x-rogatory-* metadata (auth=metadata).
struct CallerIdentity {
  std::string authority_id;
  std::string state;
  std::vector<std::string> roles;
};

struct ClientSettings {
  std::string auth = "token";  // token | metadata
  std::string auth_keys;       // key set file with one HS256 key (deploy/dev-auth/keys.json)
  std::string auth_issuer = "rogatory-dev";
  std::string auth_audience = "rogatory";
  common::TlsSettings tls;  // mode, ca_file, client_cert_file, client_key_file
  absl::Duration call_timeout = absl::Seconds(10);
};

// Prepares every call's context: deadline and credentials. Immutable after Create.
class CallAuthorizer {
 public:
  static absl::StatusOr<std::shared_ptr<const CallAuthorizer>> Create(
      const ClientSettings& settings, const CallerIdentity& caller);
  // Sets the call's deadline (unless `with_deadline` is false: streams) and credentials.
  void Prepare(grpc::ClientContext& context, bool with_deadline = true) const;

 private:
  CallAuthorizer() = default;
  std::vector<std::pair<std::string, std::string>> metadata_;
  absl::Duration timeout_;
};

// A channel to `address` with the settings' transport security. Each channel is its own
// HTTP/2 connection (so that several channels spread load over the server's threads).
std::shared_ptr<grpc::Channel> MakeChannel(const ClientSettings& settings,
                                           const std::string& address);

}  // namespace rogatory::bench
