#include "rogatory/common/token_authenticator.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rogatory/common/codes.h"
#include "rogatory/common/transport_security.h"

namespace rogatory::common {
namespace {

// The same charset MetadataAuthenticator accepts for authority ids.
bool ValidAuthorityId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
           c == '-';
  });
}

bool IsCallerRole(absl::string_view role) {
  return std::any_of(std::begin(kCallerRoles), std::end(kCallerRoles),
                     [role](const char* r) { return role == r; });
}

absl::Status Unauthenticated(absl::string_view what) {
  return absl::UnauthenticatedError(absl::StrCat("invalid bearer token: ", what));
}

std::string FirstMetadata(const grpc::ServerContextBase& context, absl::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

bool IsServiceIdentity(absl::string_view id) {
  constexpr absl::string_view kPrefix = "rogatory-";
  if (!absl::StartsWith(id, kPrefix) || id.size() == kPrefix.size() || id.size() > 64) {
    return false;
  }
  id.remove_prefix(kPrefix.size());
  return std::all_of(id.begin(), id.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

absl::StatusOr<Caller> CallerFromClaims(const JwtClaims& claims) {
  Caller caller;
  if (!ValidAuthorityId(claims.subject)) {
    return Unauthenticated("claim sub must be 1 to 128 characters of [A-Za-z0-9._:-]");
  }
  caller.authority_id = claims.subject;
  if (!claims.state.empty() && !IsCountryCode(claims.state)) {
    return Unauthenticated("claim state must be an ISO 3166-1 alpha-2 code");
  }
  caller.state = claims.state;
  for (const std::string& role : claims.roles) {
    if (role == kServiceRole) {
      if (!IsServiceIdentity(claims.subject)) {
        return Unauthenticated("role service is for Rogatory services (sub rogatory-<service>)");
      }
    } else if (!IsCallerRole(role)) {
      return Unauthenticated(
          "claim roles names an unknown role (issuing, central, executing, translator, "
          "auditor, operator)");
    }
    if (!caller.HasRole(role)) caller.roles.push_back(role);
  }
  caller.is_service = caller.HasRole(kServiceRole);
  return caller;
}

std::optional<std::string> PeerServiceIdentity(const grpc::ServerContextBase& context) {
  std::optional<std::string> name = PeerCertificateIdentity(context);
  if (!name.has_value() || !IsServiceIdentity(*name)) return std::nullopt;
  return name;
}

TokenAuthenticator::TokenAuthenticator(const Clock& clock, TokenAuthOptions options,
                                       std::shared_ptr<const KeySet> keys)
    : clock_(clock), options_(std::move(options)), keys_(std::move(keys)) {}

void TokenAuthenticator::SetKeys(std::shared_ptr<const KeySet> keys) {
  absl::MutexLock lock(&mu_);
  keys_ = std::move(keys);
}

std::shared_ptr<const KeySet> TokenAuthenticator::keys() const {
  absl::MutexLock lock(&mu_);
  return keys_;
}

absl::StatusOr<Caller> TokenAuthenticator::AuthenticateToken(absl::string_view token) const {
  std::shared_ptr<const KeySet> keys = this->keys();
  if (keys == nullptr) return absl::UnauthenticatedError("no key set loaded");
  VerifyOptions verify;
  verify.issuer = options_.issuer;
  verify.audience = options_.audience;
  verify.leeway = options_.leeway;
  verify.now = clock_.Now();
  const VerificationKey* signer = nullptr;
  auto claims = VerifyJwt(token, *keys, verify, &signer);
  if (!claims.ok()) return claims.status();
  // A service token is one that names a service or claims the service role, whichever
  // else it says: the services' key signs those and nothing else, and an identity
  // provider's key never signs them.
  const bool service_token =
      IsServiceIdentity(claims->subject) ||
      std::find(claims->roles.begin(), claims->roles.end(), kServiceRole) != claims->roles.end();
  if (service_token && signer->subjects() == KeySubjects::kAuthorities) {
    return Unauthenticated("a service token signed by a key for authorities");
  }
  if (!service_token && signer->subjects() == KeySubjects::kServices) {
    return Unauthenticated("a caller's token signed by the services' key");
  }
  const absl::Duration max_lifetime =
      service_token ? options_.max_service_lifetime : options_.max_lifetime;
  if (claims->expires.has_value() && claims->issued_at.has_value() &&
      *claims->expires - *claims->issued_at > max_lifetime) {
    return Unauthenticated(
        absl::StrCat("lifetime (exp - iat) longer than ", absl::ToInt64Seconds(max_lifetime), "s"));
  }
  return CallerFromClaims(*claims);
}

absl::StatusOr<Caller> TokenAuthenticator::Authenticate(const grpc::ServerContextBase& context) {
  const std::string header = FirstMetadata(context, "authorization");
  if (header.empty()) {
    // Another service over mutual TLS needs no token: its certificate names it.
    if (std::optional<std::string> service = PeerServiceIdentity(context)) {
      Caller caller;
      caller.authority_id = *service;
      caller.roles = {kServiceRole};
      caller.is_service = true;
      return caller;
    }
    return absl::UnauthenticatedError(
        "no bearer token: send metadata 'authorization: Bearer <JWT>'");
  }
  constexpr absl::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(header).substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("the authorization metadata must be 'Bearer <JWT>'");
  }
  return AuthenticateToken(
      absl::StripAsciiWhitespace(absl::string_view(header).substr(kScheme.size())));
}

}  // namespace rogatory::common
