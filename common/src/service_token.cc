#include "rogatory/common/service_token.h"

#include "absl/strings/str_cat.h"

namespace rogatory::common {

ServiceTokenSource::ServiceTokenSource(const Clock& clock, std::shared_ptr<const SigningKey> key,
                                       ServiceTokenOptions options)
    : clock_(clock), options_(std::move(options)), key_(std::move(key)) {}

void ServiceTokenSource::SetKey(std::shared_ptr<const SigningKey> key) {
  absl::MutexLock lock(&mu_);
  key_ = std::move(key);
  renew_at_ = absl::InfinitePast();
}

absl::StatusOr<std::string> ServiceTokenSource::Token() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  if (now < renew_at_) return token_;
  JwtClaims claims;
  claims.issuer = options_.issuer;
  claims.subject = absl::StrCat("rogatory-", options_.service);
  claims.audiences = {options_.audience};
  claims.issued_at = now;
  // A little before now, so a receiver whose clock lags a few seconds accepts it.
  claims.not_before = now - absl::Seconds(5);
  claims.expires = now + options_.ttl;
  claims.roles = {"service"};
  auto token = MintJwt(*key_, claims);
  if (!token.ok()) return token.status();
  token_ = *std::move(token);
  renew_at_ = now + options_.ttl * 2 / 3;
  return token_;
}

}  // namespace rogatory::common
