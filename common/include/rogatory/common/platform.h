#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/impl/service_type.h"
#include "rogatory/common/authentication.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/config.h"
#include "rogatory/common/event_routes.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/log_summary.h"
#include "rogatory/common/metrics.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"
#include "rogatory/common/reload.h"
#include "rogatory/common/transport_security.h"

namespace rogatory::common {

// What distinguishes one service binary from another. The defaults of the deployment
// topology (addresses, where each service receives events) come from the binary's main.cc
// (services/topology.h): common's code names no service and no port.
struct ServiceIdentity {
  std::string binary;                  // "rogatory-intake"
  std::string event_name;              // "intake": its name in event routes and outbox keys
  std::string grpc_service_name;       // "rogatory.intake.v1.IntakeService": the readiness name
  std::string default_listen;          // "127.0.0.1:50051"
  std::string default_metrics_listen;  // "127.0.0.1:9101"
  // event-receivers' default: "intake=127.0.0.1:50051,routing=...", "" for none.
  std::string default_event_receivers;
};

// Settings every service shares. See README.md, "Settings".
struct ServerSettings {
  std::string env;  // development | production
  std::string listen;
  std::string metrics_listen;
  std::string redis_url;
  // redis-cluster: Redis is a Redis Cluster even with one address in redis-url.
  bool redis_cluster = false;
  // File holding the Redis password (redis-password-file): never on a command line.
  std::string redis_password_file;
  // The Redis ACL user (redis-user), instead of or equal to the one in redis-url.
  std::string redis_user;
  // TLS to Redis (redis-tls, or rediss:// in redis-url) and its files.
  bool redis_tls = false;
  std::string redis_tls_ca_file;
  std::string redis_tls_cert_file;
  std::string redis_tls_key_file;
  std::string redis_tls_server_name;
  absl::Duration redis_timeout;
  int redis_shards = 16;
  absl::Duration shutdown_grace;
  std::string log_level;
  bool test_clock = false;
  absl::Duration health_probe_interval;
  absl::Duration max_connection_age;
  std::string event_receivers;  // "intake=host:port,routing=host:port,..."
  std::string event_routes;     // path of a routes file; empty: the defaults
  absl::Duration relay_lease;
  absl::Duration relay_poll_interval;
  absl::Duration relay_subscribed_poll_interval;
  absl::Duration dedupe_retention;
  // The audit log (see audit_log.h and README.md, "Audit log").
  std::string audit;  // chain | log
  std::string audit_key_file;
  std::string audit_export_dir;
  absl::Duration audit_export_interval;
  absl::Duration audit_seal_interval;
  absl::Duration audit_retention;
  // The denial log (see denial_log.h).
  int denial_log_max_entries = 10000;
  absl::Duration denial_log_retention = absl::Hours(24 * 90);
  TlsSettings tls;  // see transport_security.h
  // tls=off with env=production only when a service mesh terminates mTLS in front of the
  // service (tls-terminated-by-mesh); logged as a warning at start.
  bool tls_terminated_by_mesh = false;
  std::string health_listen;  // plaintext health-only server; see HealthListenAddress
  AuthSettings auth;          // see authentication.h
  // Limits against abuse (see README.md, "Limits").
  int max_message_bytes = 2 << 20;
  int max_concurrent_rpcs = 2000;
  int max_calls_per_caller = 100;
  int max_streams_per_caller = 20;
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Parsing leaves kRateLimitByEnvironment when rate-limit-rps is not given;
  // ApplyEnvironmentDefaults resolves it.
  int rate_limit_rps = 0;
  int rate_limit_burst = 50;

  bool production() const { return env == "production"; }
};

void RegisterServerSettings(const ServiceIdentity& identity, Config& config,
                            ServerSettings* settings);

// rate-limit-rps when the setting is not given: on in production, off elsewhere.
inline constexpr int kRateLimitByEnvironment = -1;
inline constexpr int kProductionRateLimitRps = 20;

// Fills in the defaults that depend on `env` for the settings not given (after parsing):
// rate-limit-rps becomes kProductionRateLimitRps with env=production and 0 (off) otherwise.
void ApplyEnvironmentDefaults(ServerSettings* settings);

// Parses settings and checks the combinations. Returns -1 to go on, or the exit code to
// leave with: 0 after --help, 2 on a bad setting (the message names it).
int ParseSettingsOrExit(const ServiceIdentity& identity, Config& config,
                        const ServerSettings& settings, int argc, const char* const* argv);

// Where Redis is, with the password read from redis-password-file (its trailing
// newline dropped) when that is set, the ACL user of redis-user, and TLS (rediss:// or
// redis-tls=true, with redis-tls-ca-file mandatory and its files loaded here).
// INVALID_ARGUMENT naming the setting otherwise.
absl::StatusOr<RedisUrl> RedisUrlFromSettings(const ServerSettings& settings);

// Whether the server serves gRPC reflection: in development only (production serves the
// API to callers who have its protos, and nothing to explore it with).
bool ServesReflection(const ServerSettings& settings);

// Blocks SIGTERM, SIGINT and SIGHUP in this thread and every thread started after, so that
// Serve can wait for them. Call first thing in main.
void BlockTerminationSignals();

struct ServiceParts;

// The shared service platform: logging, metrics, Redis, clock, the handler pipeline,
// health, reflection and graceful shutdown, wired the same way for every binary.
class Platform {
 public:
  static absl::StatusOr<std::unique_ptr<Platform>> Create(const ServiceIdentity& identity,
                                                          const ServerSettings& settings);
  ~Platform();

  RedisClient& redis() { return *redis_; }
  const Clock& clock() const { return *clock_; }
  Metrics& metrics() { return *metrics_; }
  Pipeline& pipeline() { return *pipeline_; }
  // The audit log the pipeline records calls in; background work that touches requests
  // (erasure, deliveries) records itself here too, as the service's own caller.
  Auditor& auditor() { return *auditor_; }
  const Sharding& sharding() const { return sharding_; }
  const ServerSettings& settings() const { return settings_; }

  const EventRoutes& event_routes() const { return routes_; }

  // What to re-read on SIGHUP (and, for a service that watches a folder, when the folder
  // changes: see WatchDirectory). Register before Serve.
  ReloadHooks& reload_hooks() { return reload_hooks_; }
  // Runs the reload hooks whenever `directory` changes (a mounted ConfigMap). Call before
  // Serve; fails if the folder cannot be watched.
  absl::Status WatchDirectory(const std::string& directory);

  // Serves the parts' services with health, reflection, the test clock service and the
  // event sink, and runs the outbox relay if the parts emit events, until SIGTERM or
  // SIGINT (SIGHUP runs the reload hooks); then drains: readiness goes NOT_SERVING, in-flight RPCs
  // get `shutdown-grace` to finish, the relay stops and releases its lanes. Returns the process
  // exit code (0 after a clean drain).
  int Serve(const ServiceParts& parts);

 private:
  Platform(const ServiceIdentity& identity, const ServerSettings& settings);
  // Stops the parts' background work (ServiceParts::on_drain), the relay and the audit
  // sealer: after a drain, and after a start that failed.
  void StopParts(const ServiceParts& parts);
  struct Internals;

  ServiceIdentity identity_;
  ServerSettings settings_;
  Sharding sharding_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<Clock> real_clock_;
  std::unique_ptr<Clock> clock_holder_;
  const Clock* clock_ = nullptr;
  std::unique_ptr<Authenticator> authenticator_;
  std::unique_ptr<RateLimiter> limiter_;
  std::unique_ptr<LogSummary> refusal_log_;
  std::unique_ptr<Auditor> auditor_;
  std::unique_ptr<Pipeline> pipeline_;
  EventRoutes routes_;
  ReloadHooks reload_hooks_;
  std::vector<std::unique_ptr<DirectoryWatcher>> watchers_;
  std::map<std::string, std::string> receiver_addresses_;
  std::unique_ptr<Internals> internals_;
};

// What a service binary serves: its gRPC services and whatever they depend on, kept alive
// for as long as the server runs.
struct ServiceParts {
  std::vector<grpc::Service*> services;
  std::vector<std::shared_ptr<void>> owned;
  // Acts on events other services deliver; null: events are recorded as handled, no more.
  EventHandler* event_handler = nullptr;
  // Whether this service writes events to an outbox that its relay delivers.
  bool emits_events = false;
  // The event types it can emit; empty: any. Receivers that want none of them get no relay
  // lanes from it.
  std::vector<v1::EventType> emitted_events;
  // Run in order once the server has stopped, before the platform (Redis, clock) goes: stop
  // background threads that use them here.
  std::vector<std::function<void()>> on_drain;

  template <typename T>
  T* Own(std::shared_ptr<T> object) {
    owned.push_back(object);
    return object.get();
  }
};

// The whole main() of a service binary: blocks termination signals, reads settings (the
// shared ones plus those `add_settings` registers), creates the platform, lets `wire` build
// the service objects on it and serves them until SIGTERM. Returns the exit code.
int ServiceMain(const ServiceIdentity& identity, int argc, char** argv,
                const std::function<void(Config&)>& add_settings,
                const std::function<absl::StatusOr<ServiceParts>(Platform&)>& wire);

}  // namespace rogatory::common
