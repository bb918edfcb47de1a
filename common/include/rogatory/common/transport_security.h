#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_context.h"
#include "rogatory/common/config.h"

namespace rogatory::common {

// Transport security of every gRPC server and client of a service. Certificates and keys
// are PEM files; gRPC's file-watcher provider re-reads them every `reload_interval`, so a
// rotated certificate (cert-manager renewing a Secret, a new file from make-certs.sh) is
// served to new connections without a restart. A cert/key pair that does not match while
// files are half-written is ignored by gRPC until both match again.
struct TlsSettings {
  std::string mode = "off";  // off | tls | mtls
  std::string cert_file;     // this service's certificate chain (server side)
  std::string key_file;      // its private key
  // CA bundle that signs the certificates this service trusts: clients' certificates (mtls)
  // and, for this service's own clients (the outbox relay), the servers' certificates.
  std::string ca_file;
  // Certificate and key the service presents as a client (mtls); empty: cert_file and
  // key_file, which then need both the serverAuth and clientAuth extended key usages.
  std::string client_cert_file;
  std::string client_key_file;
  absl::Duration reload_interval = absl::Seconds(60);

  bool enabled() const { return mode != "off"; }
  bool mutual() const { return mode == "mtls"; }
};

// Registers tls, tls-cert-file, tls-key-file, tls-ca-file, tls-client-cert-file,
// tls-client-key-file, tls-reload-interval and health-listen.
void RegisterTransportSettings(Config& config, TlsSettings* tls, std::string* health_listen);

// Checks the combination at start-up: the files a mode needs are set, readable, hold PEM
// certificates or keys, and each key matches its certificate. INVALID_ARGUMENT naming the
// setting otherwise. Also checks health-listen (see HealthListenAddress).
absl::Status ValidateTransportSettings(const TlsSettings& tls, const std::string& listen,
                                       const std::string& health_listen);

// Where the plaintext health-only server listens: `health_listen` if set; else, when TLS
// is on (Kubernetes' gRPC probes speak neither TLS nor mTLS), the host of `listen` with its
// port + 1000 ("0.0.0.0:50051" -> "0.0.0.0:51051"); else "" (none).
absl::StatusOr<std::string> HealthListenAddress(const TlsSettings& tls, const std::string& listen,
                                                const std::string& health_listen);

// Credentials of the service's gRPC server: insecure when off; TLS with the watched
// certificate; mtls also requires and verifies a client certificate signed by ca_file.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsSettings& tls);

// Credentials of the service's gRPC clients (the relay's channels): insecure when off;
// else TLS verifying the server against ca_file (the system roots when empty) and its host
// name (the certificates name localhost, 127.0.0.1 and the Kubernetes service names); mtls
// also presents the client certificate.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsSettings& tls);

// Starts the plaintext server that serves only grpc.health.v1.Health (no reflection, no
// application service) at HealthListenAddress; null when there is none. Its health service
// is its own: the caller mirrors every serving status into it.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartProbeServer(const TlsSettings& tls,
                                                               const std::string& listen,
                                                               const std::string& health_listen);

// A builder option that drops every globally registered builder plugin (the reflection
// plugin, once linked, adds reflection to every server): for the health-only probe server.
std::unique_ptr<grpc::ServerBuilderOption> WithoutBuilderPlugins();

// The verified client certificate's common name ("rogatory-routing" for a Rogatory
// service), or nullopt when the call did not come over mTLS with a verified certificate.
// The authenticator trusts it as a service identity.
std::optional<std::string> PeerCertificateIdentity(const grpc::ServerContextBase& context);

// Every name of the verified client certificate: the common name, then the subject
// alternative names (DNS names, IP addresses). Empty without a verified certificate.
std::vector<std::string> PeerCertificateNames(const grpc::ServerContextBase& context);

}  // namespace rogatory::common
