#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/jwt.h"
#include "rogatory/common/pipeline.h"

namespace rogatory::common {

// Roles a caller's token may name. "service" is for Rogatory's own services only: a token
// naming it must have a service subject (rogatory-<service>).
inline constexpr const char* kCallerRoles[] = {"issuing",    "central", "executing",
                                               "translator", "auditor", "operator"};
inline constexpr const char kServiceRole[] = "service";

// Whether `id` names one of Rogatory's services: "rogatory-" then lower-case letters.
bool IsServiceIdentity(absl::string_view id);

// The caller a verified token names: sub = authority id ([A-Za-z0-9._:-], 1 to 128),
// state = ISO 3166-1 alpha-2 (optional), roles from kCallerRoles (or "service" for a
// service subject). UNAUTHENTICATED naming the claim otherwise.
absl::StatusOr<Caller> CallerFromClaims(const JwtClaims& claims);

// The service a verified mTLS client certificate names (its common name is
// rogatory-<service>; see PeerCertificateIdentity), if any; nullopt on plaintext or
// TLS-only links and for certificates that name no service.
std::optional<std::string> PeerServiceIdentity(const grpc::ServerContextBase& context);

struct TokenAuthOptions {
  std::string issuer = "rogatory-dev";
  std::string audience = "rogatory";
  absl::Duration leeway = absl::Seconds(30);  // clock skew tolerated on exp, nbf and iat
  // Longest lifetime (exp - iat) of a caller's token and of a service token.
  absl::Duration max_lifetime = absl::Hours(1);
  absl::Duration max_service_lifetime = absl::Minutes(10);
};

// Production authentication: `authorization: Bearer <JWT>` verified against a key set
// (see jwt.h), or, without a token, a verified mTLS client certificate naming a Rogatory
// service. UNAUTHENTICATED names the check that failed and never echoes the token.
// Thread-safe; the key set can be swapped while calls are verified (reload).
class TokenAuthenticator final : public Authenticator {
 public:
  // `clock` gives token time (exp, nbf); it must outlive this.
  TokenAuthenticator(const Clock& clock, TokenAuthOptions options,
                     std::shared_ptr<const KeySet> keys);

  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context) override;
  // Verifies a bare token (the part after "Bearer ").
  absl::StatusOr<Caller> AuthenticateToken(absl::string_view token) const;

  void SetKeys(std::shared_ptr<const KeySet> keys);
  std::shared_ptr<const KeySet> keys() const;

 private:
  const Clock& clock_;
  const TokenAuthOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const KeySet> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::common
