#include "client.h"

#include <chrono>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "rogatory/common/jwt.h"

namespace rogatory::bench {

absl::StatusOr<std::shared_ptr<const CallAuthorizer>> CallAuthorizer::Create(
    const ClientSettings& settings, const CallerIdentity& caller) {
  std::shared_ptr<CallAuthorizer> a(new CallAuthorizer());
  a->timeout_ = settings.call_timeout;
  if (settings.auth == "metadata") {
    a->metadata_ = {{"x-rogatory-authority", caller.authority_id},
                    {"x-rogatory-state", caller.state},
                    {"x-rogatory-roles", absl::StrJoin(caller.roles, ",")}};
    return a;
  }
  // The key for callers' tokens: a development key set also holds the services' key.
  auto key = common::LoadSigningKey(settings.auth_keys, common::KeySubjects::kAuthorities);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'auth-keys': ", key.status().message()));
  }
  // The wall clock, on purpose: tokens are checked against the services' real time.
  const absl::Time now = absl::Now();
  common::JwtClaims claims;
  claims.issuer = settings.auth_issuer;
  claims.subject = caller.authority_id;
  claims.audiences = {settings.auth_audience};
  claims.issued_at = now;
  // The longest lifetime the services accept for a caller's token by default
  // (auth-max-token-lifetime); each scenario starts a new client, so a run outlasts it.
  claims.expires = now + absl::Hours(1);
  claims.state = caller.state;
  claims.roles = caller.roles;
  auto token = common::MintJwt(**key, claims);
  if (!token.ok()) return token.status();
  a->metadata_ = {{"authorization", "Bearer " + *token}};
  return a;
}

void CallAuthorizer::Prepare(grpc::ClientContext& context, bool with_deadline) const {
  if (with_deadline) {
    context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(timeout_));
  }
  for (const auto& [name, value] : metadata_) context.AddMetadata(name, value);
}

std::shared_ptr<grpc::Channel> MakeChannel(const ClientSettings& settings,
                                           const std::string& address) {
  grpc::ChannelArguments args;
  // A private connection per channel rather than one shared by every channel to the
  // address (gRPC's default subchannel pool).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(16 << 20);
  return grpc::CreateCustomChannel(address, common::MakeChannelCredentials(settings.tls), args);
}

}  // namespace rogatory::bench
