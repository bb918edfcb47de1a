#include "rogatory/common/authentication.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {
namespace {

absl::Status Named(absl::string_view setting, const absl::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat("setting '", setting, "': ", s.message()));
}

// How auth-keys is loaded, at start-up and on every reload alike.
KeySet::LoadOptions KeyLoadOptions(const AuthSettings& auth, bool production) {
  KeySet::LoadOptions options;
  options.refuse_hmac = production;
  options.require_subjects = production;
  if (auth.jwks_subjects == "authorities") options.jwks_subjects = KeySubjects::kAuthorities;
  if (auth.jwks_subjects == "services") options.jwks_subjects = KeySubjects::kServices;
  return options;
}

absl::StatusOr<std::shared_ptr<const SigningKey>> LoadServiceKey(const AuthSettings& auth,
                                                                 bool production) {
  // The key declared for services (or, in development, one that declares nothing).
  auto key = LoadSigningKey(auth.service_token_key, KeySubjects::kServices);
  if (!key.ok()) return Named("service-token-key", key.status());
  if (production && (*key)->alg() == JwtAlg::kHs256) {
    return Named(
        "service-token-key",
        absl::InvalidArgumentError("HS256 (shared secret) keys are refused with env=production"));
  }
  if (production && (*key)->subjects() != KeySubjects::kServices) {
    return Named("service-token-key",
                 absl::InvalidArgumentError(absl::StrCat(
                     "key \"", (*key)->kid(),
                     "\": \"subjects\": \"services\" is required with env=production")));
  }
  return key;
}

}  // namespace

void RegisterAuthSettings(Config& config, AuthSettings* auth) {
  config.AddChoice("auth", "token", {"token", "metadata"},
                   "How callers are authenticated: token (JWT bearer tokens verified with "
                   "auth-keys, or a service's mTLS client certificate) or metadata "
                   "(x-rogatory-* metadata, unverified; development only).",
                   &auth->mode);
  config.AddString(
      "auth-keys", "",
      "Key set file that callers' tokens are verified with: Rogatory's JSON format or a "
      "JWKS document (RFC 7517), or both mixed; reloaded on SIGHUP and when the file "
      "changes. Required with auth=token.",
      &auth->keys_file);
  config.AddChoice("auth-jwks-subjects", "none", {"none", "authorities", "services"},
                   "What the JSON Web Keys (JWKS entries) of auth-keys that carry no "
                   "\"subjects\" member may sign: authorities (an identity provider's JWKS "
                   "used unmodified: callers' tokens) or services; none: each key declares "
                   "its own (required with env=production).",
                   &auth->jwks_subjects);
  config.AddString("auth-issuer", "rogatory-dev", "The iss every token must carry.", &auth->issuer);
  config.AddString("auth-audience", "rogatory", "The aud every token must carry (or list).",
                   &auth->audience);
  config.AddString("service-token-key", "",
                   "Key file (JSON, one key with an HS256 secret or a private_key_pem) this "
                   "service signs its own short-lived tokens with when it calls another "
                   "service; empty: it presents its mTLS client certificate instead.",
                   &auth->service_token_key);
  config.AddDuration("auth-max-token-lifetime", absl::Hours(1), absl::Minutes(1), absl::Hours(24),
                     "Longest lifetime (exp - iat) of a caller's token; longer ones are "
                     "refused.",
                     &auth->max_token_lifetime);
  config.AddDuration("auth-max-service-token-lifetime", absl::Minutes(10), absl::Minutes(1),
                     absl::Hours(1),
                     "Longest lifetime (exp - iat) of a service token (sub rogatory-<service>); "
                     "this service's own tokens live min(5m, this).",
                     &auth->max_service_token_lifetime);
}

absl::Status ValidateAuthSettings(const AuthSettings& auth, bool production) {
  if (!auth.token()) {
    if (production) {
      return absl::InvalidArgumentError(
          "setting 'auth': metadata authentication is development-only and refused with "
          "env=production");
    }
    return absl::OkStatus();
  }
  if (auth.keys_file.empty()) {
    return absl::InvalidArgumentError(
        "setting 'auth-keys': required with auth=token (the key set that callers' tokens are "
        "verified with; deploy/dev-auth/keys.json for development)");
  }
  if (auth.issuer.empty()) {
    return absl::InvalidArgumentError("setting 'auth-issuer': must not be empty");
  }
  if (auth.audience.empty()) {
    return absl::InvalidArgumentError("setting 'auth-audience': must not be empty");
  }
  const KeySet::LoadOptions options = KeyLoadOptions(auth, production);
  if (auto keys = KeySet::Load(auth.keys_file, options); !keys.ok()) {
    return Named("auth-keys", keys.status());
  }
  if (!auth.service_token_key.empty()) {
    if (auto key = LoadServiceKey(auth, production); !key.ok()) return key.status();
  }
  return absl::OkStatus();
}

void Authentication::AuthorizeOutgoing(grpc::ClientContext& context,
                                       const std::string& service) const {
  if (service_tokens != nullptr) {
    auto token = service_tokens->Token();
    if (token.ok()) {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
    } else {
      Log::Error("cannot mint the service token",
                 {{"error", std::string(token.status().message())}});
    }
    return;
  }
  if (metadata) {
    context.AddMetadata("x-rogatory-authority", absl::StrCat("rogatory-", service));
    context.AddMetadata("x-rogatory-roles", "service");
  }
}

absl::StatusOr<std::unique_ptr<Authentication>> MakeAuthentication(const AuthSettings& auth,
                                                                   bool production,
                                                                   const Clock& clock,
                                                                   const std::string& service,
                                                                   ReloadHooks& hooks) {
  if (absl::Status s = ValidateAuthSettings(auth, production); !s.ok()) return s;
  auto out = std::make_unique<Authentication>();
  if (!auth.token()) {
    Log::Warn(
        "development authentication in use: callers are named by x-rogatory-* metadata "
        "and not verified (auth=metadata)");
    out->authenticator = std::make_unique<MetadataAuthenticator>();
    out->metadata = true;
    return out;
  }
  const KeySet::LoadOptions options = KeyLoadOptions(auth, production);
  auto keys = KeySet::Load(auth.keys_file, options);
  if (!keys.ok()) return Named("auth-keys", keys.status());
  TokenAuthOptions token_options;
  token_options.issuer = auth.issuer;
  token_options.audience = auth.audience;
  token_options.max_lifetime = auth.max_token_lifetime;
  token_options.max_service_lifetime = auth.max_service_token_lifetime;
  auto authenticator = std::make_unique<TokenAuthenticator>(clock, token_options, *std::move(keys));
  TokenAuthenticator* verifier = authenticator.get();
  out->authenticator = std::move(authenticator);
  out->watched_files.push_back(auth.keys_file);
  hooks.Add("auth-keys", [verifier, file = auth.keys_file, options]() -> absl::Status {
    auto keys = KeySet::Load(file, options);
    if (!keys.ok()) return keys.status();  // the previous key set stays in use
    verifier->SetKeys(*std::move(keys));
    return absl::OkStatus();
  });

  if (!auth.service_token_key.empty()) {
    auto key = LoadServiceKey(auth, production);
    if (!key.ok()) return key.status();
    ServiceTokenOptions token;
    token.service = service;
    token.issuer = auth.issuer;
    token.audience = auth.audience;
    // Within what every service accepts (auth-max-service-token-lifetime, the same setting
    // everywhere).
    token.ttl = std::min(token.ttl, auth.max_service_token_lifetime);
    out->service_tokens =
        std::make_unique<ServiceTokenSource>(clock, *std::move(key), std::move(token));
    ServiceTokenSource* source = out->service_tokens.get();
    out->watched_files.push_back(auth.service_token_key);
    hooks.Add("service-token-key", [source, auth, production]() -> absl::Status {
      auto key = LoadServiceKey(auth, production);
      if (!key.ok()) return key.status();  // keeps minting with the previous key
      source->SetKey(*std::move(key));
      return absl::OkStatus();
    });
  }
  Log::Info(
      "token authentication",
      {{"issuer", auth.issuer},
       {"audience", auth.audience},
       {"service_token", auth.service_token_key.empty() ? "none (mTLS certificate)" : "minted"}});
  return out;
}

}  // namespace rogatory::common
