#include "rogatory/common/transport_security.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/server_builder.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {

namespace {

absl::Status Bad(absl::string_view setting, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("setting '", setting, "': ", message));
}

absl::StatusOr<std::string> ReadFile(absl::string_view setting, const std::string& path) {
  if (path.empty()) return Bad(setting, "required by this tls mode, but empty");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad(setting, absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Bad(setting, absl::StrCat("cannot read ", path));
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::StatusOr<std::unique_ptr<X509, X509Deleter>> ReadCertificate(absl::string_view setting,
                                                                   const std::string& path) {
  auto pem = ReadFile(setting, path);
  if (!pem.ok()) return pem.status();
  auto bio = MemoryBio(*pem);
  std::unique_ptr<X509, X509Deleter> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) return Bad(setting, absl::StrCat(path, " holds no PEM certificate"));
  return cert;
}

// The key must be readable without a password and match the certificate's public key.
absl::Status CheckKeyPair(absl::string_view cert_setting, const std::string& cert_path,
                          absl::string_view key_setting, const std::string& key_path) {
  auto cert = ReadCertificate(cert_setting, cert_path);
  if (!cert.ok()) return cert.status();
  auto pem = ReadFile(key_setting, key_path);
  if (!pem.ok()) return pem.status();
  auto bio = MemoryBio(*pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>("")));
  if (key == nullptr) {
    return Bad(key_setting, absl::StrCat(key_path, " holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    return Bad(key_setting, absl::StrCat(key_path, " does not match the certificate in ", cert_path,
                                         " ('", cert_setting, "')"));
  }
  return absl::OkStatus();
}

unsigned int ReloadSeconds(const TlsSettings& tls) {
  return static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(tls.reload_interval)));
}

}  // namespace

void RegisterTransportSettings(Config& config, TlsSettings* tls, std::string* health_listen) {
  config.AddChoice("tls", "off", {"off", "tls", "mtls"},
                   "Transport security of gRPC servers and clients: off (plaintext), tls "
                   "(server certificate), mtls (both sides present certificates).",
                   &tls->mode);
  config.AddString("tls-cert-file", "",
                   "PEM certificate chain of this service (tls, mtls); re-read when it changes.",
                   &tls->cert_file);
  config.AddString("tls-key-file", "", "PEM private key of tls-cert-file (unencrypted).",
                   &tls->key_file);
  config.AddString("tls-ca-file", "",
                   "PEM CA bundle trusted for peers: verifies client certificates (mtls) and "
                   "the servers this service calls; empty with tls: the system roots.",
                   &tls->ca_file);
  config.AddString("tls-client-cert-file", "",
                   "PEM certificate this service presents as a client (mtls); empty: "
                   "tls-cert-file (which then needs the clientAuth usage too).",
                   &tls->client_cert_file);
  config.AddString("tls-client-key-file", "", "PEM private key of tls-client-cert-file.",
                   &tls->client_key_file);
  config.AddDuration("tls-reload-interval", absl::Seconds(60), absl::Seconds(1), absl::Hours(24),
                     "How often certificate, key and CA files are checked for changes.",
                     &tls->reload_interval);
  config.AddString("health-listen", "",
                   "Plaintext listen address (host:port) of a server with only the gRPC "
                   "health service, for probes that cannot do TLS; empty: off with tls=off, "
                   "else the listen host with port + 1000.",
                   health_listen);
}

absl::StatusOr<std::string> HealthListenAddress(const TlsSettings& tls, const std::string& listen,
                                                const std::string& health_listen) {
  if (!health_listen.empty()) {
    const size_t colon = health_listen.rfind(':');
    int port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(health_listen.substr(colon + 1), &port) ||
        port <= 0 || port > 65535) {
      return Bad("health-listen", absl::StrCat("not a host:port address: ", health_listen));
    }
    if (health_listen == listen) return Bad("health-listen", "must differ from 'listen'");
    return health_listen;
  }
  if (!tls.enabled()) return std::string();
  const size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port <= 0 || port + 1000 > 65535) {
    return Bad("health-listen", absl::StrCat("cannot derive it from listen address ", listen,
                                             " (port + 1000): set it explicitly"));
  }
  return absl::StrCat(listen.substr(0, colon), ":", port + 1000);
}

absl::Status ValidateTransportSettings(const TlsSettings& tls, const std::string& listen,
                                       const std::string& health_listen) {
  if (!tls.enabled()) return HealthListenAddress(tls, listen, health_listen).status();
  if (absl::Status s = CheckKeyPair("tls-cert-file", tls.cert_file, "tls-key-file", tls.key_file);
      !s.ok()) {
    return s;
  }
  if (tls.mutual() && tls.ca_file.empty()) {
    return Bad("tls-ca-file", "required with tls=mtls (it verifies client certificates)");
  }
  if (!tls.ca_file.empty()) {
    if (auto ca = ReadCertificate("tls-ca-file", tls.ca_file); !ca.ok()) return ca.status();
  }
  if (tls.client_cert_file.empty() != tls.client_key_file.empty()) {
    return Bad(tls.client_cert_file.empty() ? "tls-client-cert-file" : "tls-client-key-file",
               "tls-client-cert-file and tls-client-key-file go together");
  }
  if (!tls.client_cert_file.empty()) {
    if (absl::Status s = CheckKeyPair("tls-client-cert-file", tls.client_cert_file,
                                      "tls-client-key-file", tls.client_key_file);
        !s.ok()) {
      return s;
    }
  }
  return HealthListenAddress(tls, listen, health_listen).status();
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsSettings& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file, tls.cert_file, tls.ca_file, ReloadSeconds(tls));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!tls.ca_file.empty()) options.watch_root_certs();
  options.set_cert_request_type(tls.mutual()
                                    ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const TlsSettings& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  const std::string& cert = tls.client_cert_file.empty() ? tls.cert_file : tls.client_cert_file;
  const std::string& key = tls.client_key_file.empty() ? tls.key_file : tls.client_key_file;
  if (tls.mutual()) {
    options.set_certificate_provider(
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(key, cert, tls.ca_file,
                                                                             ReloadSeconds(tls)));
    options.watch_identity_key_cert_pairs();
    options.watch_root_certs();
  } else if (!tls.ca_file.empty()) {
    options.set_certificate_provider(
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(tls.ca_file,
                                                                             ReloadSeconds(tls)));
    options.watch_root_certs();
  }
  // Server certificates are verified against the roots and the target's host name.
  options.set_verify_server_certs(true);
  return grpc::experimental::TlsCredentials(options);
}

namespace {

// Drops every builder plugin; see WithoutBuilderPlugins.
class NoPluginsOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

}  // namespace

std::unique_ptr<grpc::ServerBuilderOption> WithoutBuilderPlugins() {
  return std::make_unique<NoPluginsOption>();
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartProbeServer(const TlsSettings& tls,
                                                               const std::string& listen,
                                                               const std::string& health_listen) {
  auto address = HealthListenAddress(tls, listen, health_listen);
  if (!address.ok()) return address.status();
  if (address->empty()) return std::unique_ptr<grpc::Server>();
  // The default health service is the only service: it is enabled process-wide, and the
  // option below removes the reflection plugin the builder would otherwise add. gRPC adds
  // the health service only to a server that has some other service, so every other method
  // goes to a generic service whose default answer is UNIMPLEMENTED (stateless, shared).
  grpc::EnableDefaultHealthCheckService(true);
  static grpc::CallbackGenericService* const kUnimplemented = new grpc::CallbackGenericService();
  grpc::ServerBuilder builder;
  builder.SetOption(WithoutBuilderPlugins());
  builder.RegisterCallbackGenericService(kUnimplemented);
  int port = 0;
  builder.AddListeningPort(*address, grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0 || server->GetHealthCheckService() == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("setting 'health-listen': cannot listen on ", *address));
  }
  Log::Info("serving health probes", {{"address", *address}, {"port", static_cast<int64_t>(port)}});
  return server;
}

std::vector<std::string> PeerCertificateNames(const grpc::ServerContextBase& context) {
  std::vector<std::string> names;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return names;
  // Only TLS contexts carry x509 properties; check the transport to be sure.
  bool tls = false;
  for (const auto& type : auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
    const std::string value(type.data(), type.size());
    tls = tls || value == GRPC_SSL_TRANSPORT_SECURITY_TYPE ||
          value == GRPC_TLS_TRANSPORT_SECURITY_TYPE;
  }
  if (!tls) return names;
  for (const char* property : {GRPC_X509_CN_PROPERTY_NAME, GRPC_X509_SAN_PROPERTY_NAME}) {
    for (const auto& value : auth->FindPropertyValues(property)) {
      names.emplace_back(value.data(), value.size());
    }
  }
  return names;
}

std::optional<std::string> PeerCertificateIdentity(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return std::nullopt;
  if (PeerCertificateNames(context).empty()) return std::nullopt;
  auto cn = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (cn.empty()) return std::nullopt;
  return std::string(cn.front().data(), cn.front().size());
}

}  // namespace rogatory::common
