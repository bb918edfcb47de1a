#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/client_context.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/config.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/reload.h"
#include "rogatory/common/service_token.h"
#include "rogatory/common/token_authenticator.h"

namespace rogatory::common {

// How a service authenticates its callers and itself. See README.md, "Authentication".
struct AuthSettings {
  std::string mode = "token";  // token | metadata (development only)
  std::string keys_file;       // auth-keys: the key set callers' tokens are verified with
  // auth-jwks-subjects: what the JWKS keys of auth-keys that declare no "subjects" may sign
  // ("none": each declares its own, "authorities" or "services").
  std::string jwks_subjects = "none";
  std::string issuer = "rogatory-dev";
  std::string audience = "rogatory";
  // service-token-key: the key this service signs its own tokens with (for the relay).
  std::string service_token_key;
  // auth-max-token-lifetime / auth-max-service-token-lifetime: longest exp - iat accepted.
  absl::Duration max_token_lifetime = absl::Hours(1);
  absl::Duration max_service_token_lifetime = absl::Minutes(10);

  bool token() const { return mode == "token"; }
};

// Registers auth, auth-keys, auth-jwks-subjects, auth-issuer, auth-audience, service-token-key,
// auth-max-token-lifetime and auth-max-service-token-lifetime.
void RegisterAuthSettings(Config& config, AuthSettings* auth);

// Checks the combination at start-up, loading the key files: metadata authentication and
// HS256 keys are refused with env=production; token authentication needs auth-keys.
// INVALID_ARGUMENT naming the setting otherwise.
absl::Status ValidateAuthSettings(const AuthSettings& auth, bool production);

// A service's authentication, built from its settings.
struct Authentication {
  std::unique_ptr<Authenticator> authenticator;
  // Null without service-token-key (metadata mode, or a service identified by its mTLS
  // client certificate).
  std::unique_ptr<ServiceTokenSource> service_tokens;
  // Files whose folders to watch: a changed key file is reloaded like on SIGHUP.
  std::vector<std::string> watched_files;
  bool metadata = false;  // auth=metadata

  // Adds this service's identity to a call it makes to another service: its service token
  // when it has one; in metadata mode the development x-rogatory-* metadata; else nothing
  // (its mTLS client certificate names it).
  void AuthorizeOutgoing(grpc::ClientContext& context, const std::string& service) const;
};

// Builds the authenticator (and the service token source) for the service named `service`
// ("intake"). `clock` gives token time; it must outlive the result. Adds a reload hook that
// re-reads the key files, keeping the previous keys when the new ones are bad.
absl::StatusOr<std::unique_ptr<Authentication>> MakeAuthentication(const AuthSettings& auth,
                                                                   bool production,
                                                                   const Clock& clock,
                                                                   const std::string& service,
                                                                   ReloadHooks& hooks);

}  // namespace rogatory::common
