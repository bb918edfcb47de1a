#include "rogatory/common/platform.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpc_timeout.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "prometheus/gauge.h"
#include "redis_connection.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/audit_service.h"
#include "rogatory/common/cluster_redis_client.h"
#include "rogatory/common/data_layout.h"
#include "rogatory/common/denial_log.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/malformed_requests.h"
#include "rogatory/common/outbox_relay.h"
#include "rogatory/common/periodic_task.h"
#include "rogatory/common/rate_limiter.h"
#include "rogatory/common/redis_readiness.h"
#include "rogatory/common/test_clock.h"

namespace rogatory::common {
namespace {

// At most one line per kind of refused call (unauthenticated, unparsable) per interval.
constexpr absl::Duration kRefusalLogInterval = absl::Minutes(1);

// Takes gRPC's reflection plugin off a server. Linking grpc++_reflection registers the
// plugin with every ServerBuilder at static initialisation, so not calling
// InitProtoReflectionServerBuilderPlugin is not enough to serve without reflection.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                                    return p->name() == "proto_server_reflection";
                                  }),
                   plugins->end());
  }
};

}  // namespace

struct Platform::Internals {
  std::unique_ptr<RecordOnlyEventHandler> record_only_handler;
  std::unique_ptr<EventSinkServiceImpl> event_sink;
  std::unique_ptr<OutboxRelay> relay;
  // Platform::redis_ itself: wakes the relay when a script commits to this service's outbox.
  OutboxWakingRedisClient* outbox_wakeups = nullptr;
  SharedTestClock* test_clock = nullptr;  // owned by clock_holder_ when enabled
  std::unique_ptr<TestClockServiceImpl> test_clock_service;
  std::unique_ptr<PeriodicTask> clock_refresh;
  // The chained audit log's key (null with audit=log), sealer (while serving) and service.
  std::shared_ptr<const AuditKey> audit_key;
  std::unique_ptr<AuditSealer> audit_sealer;
  std::unique_ptr<AuditServiceImpl> audit_service;
  // Calls answered PERMISSION_DENIED or NOT_FOUND, per caller (denial_log.h).
  std::unique_ptr<RedisDenialLog> denial_log;
  prometheus::Gauge* redis_up = nullptr;
  std::unique_ptr<grpc::Server> server;
  // With TLS on: a plaintext server with only the health service, for probes.
  std::unique_ptr<grpc::Server> probe_server;
  std::atomic<bool> draining{false};
  // Platform::redis_'s inner client: what readiness probes and watches.
  RedisReadiness* redis_readiness = nullptr;
  std::atomic<bool> ready{false};  // the last readiness set, to log its changes
  std::unique_ptr<PeriodicTask> readiness_probe;
  // Service tokens and how outgoing calls present this service (its authenticator is
  // Platform::authenticator_).
  std::unique_ptr<Authentication> authentication;
};

void RegisterServerSettings(const ServiceIdentity& id, Config& config, ServerSettings* s) {
  config.AddChoice("env", "development", {"development", "production"},
                   "Deployment kind; production refuses development-only features.", &s->env);
  config.AddString("listen", id.default_listen, "gRPC listen address (host:port).", &s->listen);
  config.AddString("metrics-listen", id.default_metrics_listen,
                   "Prometheus /metrics listen address (host:port).", &s->metrics_listen);
  config.AddString("redis-url", "redis://127.0.0.1:6379/0",
                   "Redis server: redis://[[user]:password@]host[:port][/db] (rediss:// for "
                   "TLS); several comma-separated host:port (redis://h1:p1,h2:p2) are the seed "
                   "nodes of a Redis Cluster.",
                   &s->redis_url, [](const std::string& v) { return ParseRedisUrl(v).status(); });
  config.AddBool("redis-cluster", false,
                 "Redis is a Redis Cluster (implied by several addresses in redis-url): "
                 "commands go to the primary that owns their keys' slot; the database must "
                 "be 0.",
                 &s->redis_cluster);
  config.AddString("redis-password-file", "",
                   "File holding the Redis password (a mounted Secret; trailing newline "
                   "dropped), so the password is never on a command line. Empty: the "
                   "password of redis-url, if any (refused with env=production).",
                   &s->redis_password_file);
  config.AddString("redis-user", "",
                   "Redis ACL user to authenticate as (with the password of "
                   "redis-password-file); empty: the user of redis-url, if any, else the "
                   "default user.",
                   &s->redis_user);
  config.AddBool("redis-tls", false,
                 "Connect to Redis over TLS (also: a rediss:// redis-url). The server's "
                 "certificate is always verified against redis-tls-ca-file.",
                 &s->redis_tls);
  config.AddString("redis-tls-ca-file", "",
                   "CA certificates (PEM) that must verify Redis's certificate; required with "
                   "TLS to Redis.",
                   &s->redis_tls_ca_file);
  config.AddString("redis-tls-cert-file", "",
                   "Client certificate (PEM) presented to Redis (its tls-auth-clients); with "
                   "redis-tls-key-file.",
                   &s->redis_tls_cert_file);
  config.AddString("redis-tls-key-file", "", "Key (PEM) of redis-tls-cert-file.",
                   &s->redis_tls_key_file);
  config.AddString("redis-tls-server-name", "",
                   "Name (DNS name or IP address) Redis's certificate must carry, also sent as "
                   "SNI; empty: the host of redis-url.",
                   &s->redis_tls_server_name);
  config.AddDuration("redis-timeout", absl::Milliseconds(500), absl::Milliseconds(10),
                     absl::Seconds(30), "Timeout of every Redis command.", &s->redis_timeout);
  config.AddInt("redis-shards", 16, 1, 1024,
                "Number of key shards (Redis Cluster hash tags); fixed at install.",
                &s->redis_shards);
  config.AddDuration("shutdown-grace", absl::Seconds(10), absl::ZeroDuration(), absl::Minutes(10),
                     "Time in-flight RPCs get to finish after SIGTERM.", &s->shutdown_grace);
  config.AddChoice("log-level", "info", {"debug", "info", "warn", "error"},
                   "Lowest level of log lines written.", &s->log_level);
  config.AddBool("test-clock", false,
                 "Use the shared test clock (offset in Redis, moved through "
                 "rogatory.admin.v1.TestClockService). Development only.",
                 &s->test_clock);
  config.AddDuration("health-probe-interval", absl::Seconds(1), absl::Milliseconds(50),
                     absl::Minutes(1), "How often readiness probes Redis.",
                     &s->health_probe_interval);
  config.AddDuration("max-connection-age", absl::Minutes(5), absl::ZeroDuration(), absl::Hours(24),
                     "Clients are asked to reconnect after this, spreading load across "
                     "replicas; 0 disables.",
                     &s->max_connection_age);
  config.AddString("event-receivers", id.default_event_receivers,
                   "Where each service receives events: <service>=<host:port>,...",
                   &s->event_receivers,
                   [](const std::string& v) { return ParseReceiverAddresses(v).status(); });
  config.AddString("event-routes", "",
                   "File of event routes (which service wants which event types); empty: "
                   "the built-in defaults.",
                   &s->event_routes);
  config.AddDuration("relay-lease", absl::Seconds(15), absl::Milliseconds(200), absl::Minutes(10),
                     "Lease of an outbox relay shard (renewed every half lease); a dead "
                     "replica's shards are taken over one to one and a half leases after it.",
                     &s->relay_lease);
  config.AddDuration("relay-poll-interval", absl::Seconds(5), absl::Milliseconds(5), absl::Hours(1),
                     "Safety net while the relay's pub/sub subscription is down: how often each "
                     "held shard is looked at unasked (commits wake their lanes at once, other "
                     "replicas' through Redis pub/sub).",
                     &s->relay_poll_interval);
  config.AddDuration("relay-subscribed-poll-interval", absl::Seconds(30), absl::Milliseconds(5),
                     absl::Hours(1),
                     "Safety net while the relay's pub/sub subscription is confirmed (every shard "
                     "is looked at when it is confirmed again); never shorter than "
                     "relay-poll-interval.",
                     &s->relay_subscribed_poll_interval);
  config.AddDuration("dedupe-retention", absl::Hours(24 * 7), absl::Minutes(1),
                     absl::Hours(24 * 90),
                     "How long a receiver remembers the events it handled, to drop repeats.",
                     &s->dedupe_retention);
  config.AddChoice("audit", "chain", {"chain", "log"},
                   "Audit log: chain (tamper-evident HMAC chains per request in Redis) or log "
                   "(JSON log lines only; development).",
                   &s->audit);
  config.AddString("audit-key-file", "",
                   "File holding the audit HMAC key (at least 32 bytes; a mounted Secret, the "
                   "same for every service). Empty: a built-in development key, refused with "
                   "env=production.",
                   &s->audit_key_file);
  config.AddString("audit-export-dir", "",
                   "Folder where audit chain heads are appended as JSON lines (append-only "
                   "storage); empty: exported as log lines only.",
                   &s->audit_export_dir);
  config.AddDuration("audit-export-interval", absl::Seconds(10), absl::Milliseconds(100),
                     absl::Hours(1), "How often sealed audit chain heads are exported.",
                     &s->audit_export_interval);
  config.AddDuration("audit-seal-interval", absl::Seconds(5), absl::Milliseconds(5),
                     absl::Minutes(1),
                     "The audit sealer's safety net: how often it renews or takes its shard "
                     "leases and seals what is pending. Appends wake the lease holder at once "
                     "(a blocking XREAD on its own connection).",
                     &s->audit_seal_interval);
  config.AddDuration("audit-retention", absl::Hours(24 * 365 * 3), absl::ZeroDuration(),
                     absl::Hours(24 * 365 * 100),
                     "Audit entries older than this are erased, oldest first, behind an "
                     "HMAC'd anchor; 0 keeps them forever.",
                     &s->audit_retention);
  config.AddInt("denial-log-max-entries", 10000, 10, 1000000,
                "Denial log: records kept per caller (approximately; the oldest go first).",
                &s->denial_log_max_entries);
  config.AddDuration("denial-log-retention", absl::Hours(24 * 90), absl::Minutes(1),
                     absl::Hours(24 * 365 * 10),
                     "Denial log: a caller's records are erased this long after its last "
                     "denial.",
                     &s->denial_log_retention);
  RegisterTransportSettings(config, &s->tls, &s->health_listen);
  config.AddBool("tls-terminated-by-mesh", false,
                 "A service mesh terminates mTLS in front of this service: allows tls=off "
                 "with env=production (logged as a warning at start).",
                 &s->tls_terminated_by_mesh);
  RegisterAuthSettings(config, &s->auth);
  config.AddInt("max-message-bytes", 2 << 20, 64 << 10, 64 << 20,
                "Largest request message accepted, in bytes (sized for a 1 MiB document "
                "chunk); larger ones answer RESOURCE_EXHAUSTED.",
                &s->max_message_bytes);
  config.AddInt("max-concurrent-rpcs", 2000, 0, 1000000,
                "Calls one server handles at once; beyond it calls answer RESOURCE_EXHAUSTED "
                "at once instead of queueing. 0: no bound.",
                &s->max_concurrent_rpcs);
  config.AddInt("max-calls-per-caller", 100, 0, 1000000,
                "Unary calls one caller authority may have in flight on one server; beyond "
                "it its calls answer RESOURCE_EXHAUSTED (other Rogatory services are "
                "bounded by max-concurrent-rpcs only). 0: no bound.",
                &s->max_calls_per_caller);
  config.AddInt("max-streams-per-caller", 20, 0, 1000000,
                "Streams (uploads, downloads, Subscribe) one caller authority may have open "
                "on one server; beyond it they answer RESOURCE_EXHAUSTED (other Rogatory "
                "services are bounded by max-concurrent-rpcs only). 0: no bound.",
                &s->max_streams_per_caller);
  config.AddDuration("keepalive-time", absl::Minutes(1), absl::Seconds(10), absl::Hours(2),
                     "The server pings a connection idle this long, so that streams of a "
                     "peer that went away end (with keepalive-timeout) instead of holding "
                     "their place.",
                     &s->keepalive_time);
  config.AddDuration("keepalive-timeout", absl::Seconds(20), absl::Seconds(1), absl::Minutes(5),
                     "A ping unanswered this long closes the connection and its calls.",
                     &s->keepalive_timeout);
  config.AddInt("rate-limit-rps", kRateLimitByEnvironment, kRateLimitByEnvironment, 1000000,
                "Sustained calls per second each caller authority may make to one replica "
                "(token bucket; other Rogatory services are exempt). 0: no limit. -1 (not "
                "given): 20 with env=production, no limit otherwise.",
                &s->rate_limit_rps);
  config.AddInt("rate-limit-burst", 50, 1, 1000000,
                "Calls a caller may make at once after being idle (the token bucket's size).",
                &s->rate_limit_burst);
}

absl::StatusOr<RedisUrl> RedisUrlFromSettings(const ServerSettings& settings) {
  auto url = ParseRedisUrl(settings.redis_url);
  if (!url.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'redis-url': ", url.status().message()));
  }
  url->cluster = settings.redis_cluster;
  if (IsClusterUrl(*url) && url->db != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "setting 'redis-url': database ", url->db,
        " with a Redis Cluster, which has database 0 only (it refuses SELECT): end the URL "
        "with /0 or no database"));
  }
  if (!settings.redis_user.empty()) {
    if (!url->user.empty() && url->user != settings.redis_user) {
      return absl::InvalidArgumentError(
          "setting 'redis-user': redis-url names another user: name it in one place");
    }
    url->user = settings.redis_user;
  }
  url->tls.enabled = url->tls.enabled || settings.redis_tls;
  url->tls.ca_file = settings.redis_tls_ca_file;
  url->tls.cert_file = settings.redis_tls_cert_file;
  url->tls.key_file = settings.redis_tls_key_file;
  url->tls.server_name = settings.redis_tls_server_name;
  if (url->tls.enabled) {
    // Loads the files now: a bad one is a bad setting, refused at start.
    if (auto tls = internal::RedisTlsContext::Create(url->tls, url->host); !tls.ok()) {
      return tls.status();
    }
  } else {
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string*>{"redis-tls-ca-file", &url->tls.ca_file},
          {"redis-tls-cert-file", &url->tls.cert_file},
          {"redis-tls-key-file", &url->tls.key_file},
          {"redis-tls-server-name", &url->tls.server_name}}) {
      if (!value->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("setting '", name,
                         "': TLS to Redis is off (use a rediss:// redis-url or redis-tls=true)"));
      }
    }
  }
  if (settings.redis_password_file.empty()) {
    if (!url->user.empty() && url->password.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "setting 'redis-password-file': the Redis ACL user '", url->user, "' needs a password"));
    }
    return url;
  }
  if (!url->password.empty()) {
    return absl::InvalidArgumentError(
        "setting 'redis-password-file': redis-url carries a password too (redis-url's "
        "userinfo without a colon is a password: name an ACL user as redis://user:@host)");
  }
  std::ifstream in(settings.redis_password_file, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'redis-password-file': cannot read ", settings.redis_password_file));
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string password = text.str();
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'redis-password-file': ", settings.redis_password_file, " is empty"));
  }
  url->password = std::move(password);
  return url;
}

bool ServesReflection(const ServerSettings& settings) { return !settings.production(); }

namespace {

// Whether host:port names every interface ("0.0.0.0:9101", "[::]:9101", ":9101").
bool IsWildcardAddress(absl::string_view address) {
  const size_t colon = address.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? address : address.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  if (host.empty() || host == "*") return true;
  const std::string text(host);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return v4.s_addr == INADDR_ANY;
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_UNSPECIFIED(&v6);
  }
  return false;
}

// What env=production adds to the checks: TLS on gRPC (or a mesh's mTLS in front),
// metrics on the pod's own address, the Redis password out of the command line.
absl::Status CheckProductionSettings(const ServerSettings& settings) {
  if (settings.tls.mode == "off" && !settings.tls_terminated_by_mesh) {
    return absl::InvalidArgumentError(
        "setting 'tls': env=production needs tls or mtls on gRPC (or "
        "tls-terminated-by-mesh=true when a service mesh terminates mTLS in front of the "
        "service)");
  }
  if (IsWildcardAddress(settings.metrics_listen)) {
    return absl::InvalidArgumentError(
        "setting 'metrics-listen': env=production serves metrics on the pod's own address "
        "only, not on every interface (the Helm chart sets the pod IP)");
  }
  auto url = ParseRedisUrl(settings.redis_url);
  if (url.ok() && !url->password.empty()) {
    return absl::InvalidArgumentError(
        "setting 'redis-url': a password in the URL is refused with env=production (a "
        "process listing shows command lines); give it in redis-password-file");
  }
  return absl::OkStatus();
}

}  // namespace

void ApplyEnvironmentDefaults(ServerSettings* s) {
  if (s->rate_limit_rps == kRateLimitByEnvironment) {
    s->rate_limit_rps = s->production() ? kProductionRateLimitRps : 0;
  }
}

int ParseSettingsOrExit(const ServiceIdentity& identity, Config& config,
                        const ServerSettings& settings, int argc, const char* const* argv) {
  absl::Status status = config.Parse(argc, argv, ProcessEnv());
  if (status.ok() && config.help_requested()) {
    std::cout << config.Help(identity.binary);
    return 0;
  }
  if (status.ok() && settings.production() && settings.test_clock) {
    status = absl::InvalidArgumentError(
        "setting 'test-clock': the shared test clock is development-only and refused with "
        "env=production");
  }
  if (status.ok() && settings.production() && settings.audit == "chain" &&
      settings.audit_key_file.empty()) {
    status = absl::InvalidArgumentError(
        "setting 'audit-key-file': required with env=production (the development audit key "
        "is public)");
  }
  if (status.ok() && !config.help_requested()) {
    status = ValidateTransportSettings(settings.tls, settings.listen, settings.health_listen);
  }
  if (status.ok() && !config.help_requested()) {
    status = ValidateAuthSettings(settings.auth, settings.production());
  }
  if (status.ok() && !config.help_requested()) {
    status = RedisUrlFromSettings(settings).status();
  }
  if (status.ok() && !config.help_requested() && settings.production()) {
    status = CheckProductionSettings(settings);
  }
  if (!status.ok()) {
    Log::Configure(identity.binary, LogLevel::kInfo);
    Log::Error("bad configuration", {{"error", std::string(status.message())}});
    std::cerr << identity.binary << ": " << status.message() << "\n";
    return 2;
  }
  return -1;
}

namespace {

sigset_t ServiceSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = ServiceSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

absl::Status Platform::WatchDirectory(const std::string& directory) {
  auto watcher = DirectoryWatcher::Start(directory, [this] { reload_hooks_.RunAll(); });
  if (!watcher.ok()) return watcher.status();
  watchers_.push_back(*std::move(watcher));
  return absl::OkStatus();
}

Platform::Platform(const ServiceIdentity& identity, const ServerSettings& settings)
    : identity_(identity),
      settings_(settings),
      sharding_(settings.redis_shards),
      internals_(std::make_unique<Internals>()) {}

Platform::~Platform() {
  // Stop what issues Redis commands, then Redis itself, whose pending callbacks still see
  // the server and the rest of the internals.
  watchers_.clear();
  if (internals_->outbox_wakeups != nullptr) internals_->outbox_wakeups->SetRelay(nullptr);
  internals_->relay.reset();
  internals_->readiness_probe.reset();
  internals_->clock_refresh.reset();
  if (internals_->audit_service != nullptr) internals_->audit_service->Stop();
  internals_->audit_sealer.reset();
  redis_.reset();
}

absl::StatusOr<std::unique_ptr<Platform>> Platform::Create(const ServiceIdentity& identity,
                                                           const ServerSettings& settings) {
  LogLevel level = LogLevel::kInfo;
  if (absl::Status s = ParseLogLevel(settings.log_level, &level); !s.ok()) return s;
  Log::Configure(identity.binary, level);
  Log::CaptureLibraryLogs();

  std::unique_ptr<Platform> p(new Platform(identity, settings));
  auto metrics = Metrics::Serve(settings.metrics_listen);
  if (!metrics.ok()) return metrics.status();
  p->metrics_ = *std::move(metrics);
  p->internals_->redis_up = &prometheus::BuildGauge()
                                 .Name("rogatory_redis_up")
                                 .Help(
                                     "1 while the last readiness probe of Redis "
                                     "succeeded: its script wrote, and no command "
                                     "failed as unavailable since the probe before.")
                                 .Register(p->metrics_->registry())
                                 .Add({});

  if (settings.event_routes.empty()) {
    p->routes_ = EventRoutes::Defaults();
  } else {
    std::ifstream in(settings.event_routes);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting 'event-routes': cannot read ", settings.event_routes));
    }
    std::stringstream text;
    text << in.rdbuf();
    auto routes = EventRoutes::Parse(text.str());
    if (!routes.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting 'event-routes': ", routes.status().message()));
    }
    p->routes_ = *std::move(routes);
  }
  p->receiver_addresses_ = *ParseReceiverAddresses(settings.event_receivers);

  auto url = RedisUrlFromSettings(settings);
  if (!url.ok()) return url.status();
  if (!url->password.empty() && settings.redis_password_file.empty()) {
    Log::Warn(
        "the Redis password is in redis-url, where a process listing may show it: "
        "use redis-password-file (env=production refuses it)");
  }
  if (settings.production() && settings.tls.mode == "off" && settings.tls_terminated_by_mesh) {
    Log::Warn(
        "gRPC WITHOUT TLS in production: tls-terminated-by-mesh=true says a service "
        "mesh terminates mTLS in front of this service; without one, tokens and "
        "personal data cross the network in clear text");
  }
  AsyncRedisOptions redis_options;
  redis_options.command_timeout = settings.redis_timeout;
  // One Redis or a Redis Cluster, as the URL says (see cluster_redis_client.h).
  auto redis_client = NewRedisClientFor(*url, redis_options);
  if (!redis_client.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'redis-url': ", redis_client.status().message()));
  }
  // Everything (calls, audit log, relay, background work) goes through the readiness
  // watcher, so readiness sees what they see.
  auto readiness = std::make_unique<RedisReadiness>(
      *std::move(redis_client), absl::StrCat("rg:health:", identity.event_name),
      std::max(absl::Seconds(1), 3 * settings.health_probe_interval));
  p->internals_->redis_readiness = readiness.get();
  auto waking = std::make_unique<OutboxWakingRedisClient>(std::move(readiness), identity.event_name,
                                                          settings.redis_shards);
  p->internals_->outbox_wakeups = waking.get();
  p->redis_ = std::move(waking);

  p->real_clock_ = std::make_unique<RealClock>();
  if (settings.test_clock) {
    auto test_clock = std::make_unique<SharedTestClock>(*p->redis_, *p->real_clock_);
    p->internals_->test_clock = test_clock.get();
    p->clock_holder_ = std::move(test_clock);
    p->clock_ = p->clock_holder_.get();
    SharedTestClock* clock = p->internals_->test_clock;
    p->internals_->clock_refresh =
        std::make_unique<PeriodicTask>(absl::Milliseconds(200), [clock] { clock->Refresh(); });
    Log::Warn("shared test clock enabled: time can be moved through TestClockService");
  } else {
    p->clock_ = p->real_clock_.get();
  }

  // Token lifetimes are real time: the real clock even when the shared test clock moves
  // legal time forward by days.
  auto authentication = MakeAuthentication(settings.auth, settings.production(), *p->real_clock_,
                                           identity.event_name, p->reload_hooks_);
  if (!authentication.ok()) return authentication.status();
  p->authenticator_ = std::move((*authentication)->authenticator);
  p->internals_->authentication = *std::move(authentication);
  {
    std::set<std::string> folders;
    for (const std::string& file : p->internals_->authentication->watched_files) {
      const size_t slash = file.rfind('/');
      folders.insert(slash == std::string::npos ? "." : file.substr(0, std::max<size_t>(slash, 1)));
    }
    for (const std::string& folder : folders) {
      if (absl::Status s = p->WatchDirectory(folder); !s.ok()) {
        Log::Warn("key files are reloaded on SIGHUP only: cannot watch their folder",
                  {{"error", std::string(s.message())}});
      }
    }
  }
  RateLimitOptions rate_limit;
  rate_limit.rate_per_second = std::max(0, settings.rate_limit_rps);
  rate_limit.burst = settings.rate_limit_burst;
  p->limiter_ = std::make_unique<TokenBucketRateLimiter>(rate_limit, *p->clock_);
  if (settings.audit == "chain") {
    if (settings.audit_key_file.empty()) {
      Log::Warn("development audit key in use: set audit-key-file outside development");
      p->internals_->audit_key = DevelopmentAuditKey();
    } else {
      auto key = AuditKey::FromFile(settings.audit_key_file);
      if (!key.ok()) return key.status();
      p->internals_->audit_key = std::make_shared<const AuditKey>(*std::move(key));
    }
    if (!settings.audit_export_dir.empty() &&
        ::access(settings.audit_export_dir.c_str(), W_OK | X_OK) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "setting 'audit-export-dir': ", settings.audit_export_dir, " is not a writable folder"));
    }
    Log::Info("audit log: chained", {{"key", p->internals_->audit_key->Fingerprint()}});
    p->auditor_ = std::make_unique<ChainedAuditor>(*p->redis_, *p->clock_, p->sharding_,
                                                   p->internals_->audit_key, p->metrics_.get());
  } else {
    p->auditor_ = std::make_unique<LogAuditor>();
  }
  p->pipeline_ =
      std::make_unique<Pipeline>(*p->authenticator_, *p->limiter_, *p->auditor_, *p->clock_);
  // Real time, like token lifetimes: a moved test clock must not silence or flood the log.
  p->refusal_log_ = std::make_unique<LogSummary>(*p->real_clock_, kRefusalLogInterval);
  p->pipeline_->SetRefusalLog(p->refusal_log_.get());
  p->pipeline_->SetMaxConcurrentCalls(settings.max_concurrent_rpcs);
  p->pipeline_->SetCallerLimits(settings.max_calls_per_caller, settings.max_streams_per_caller);
  p->pipeline_->SetMetrics(p->metrics_->registry());
  // Who may call each RPC (rpc_roles.h) and the log of who was refused (denial_log.h).
  p->pipeline_->SetRoleGate(true);
  RedisDenialLogOptions denials;
  denials.max_entries = settings.denial_log_max_entries;
  denials.retention = settings.denial_log_retention;
  p->internals_->denial_log =
      std::make_unique<RedisDenialLog>(*p->redis_, *p->clock_, p->sharding_, denials);
  p->pipeline_->SetDenialLog(p->internals_->denial_log.get());
  p->internals_->test_clock_service =
      std::make_unique<TestClockServiceImpl>(p->internals_->test_clock, *p->pipeline_);
  return p;
}

int Platform::Serve(const ServiceParts& parts) {
  grpc::EnableDefaultHealthCheckService(true);
  const bool reflection = ServesReflection(settings_);
  if (reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  if (!reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  int port = 0;
  builder.AddListeningPort(settings_.listen, MakeServerCredentials(settings_.tls), &port);
  // A second process on the same port must fail at start, not share the port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(settings_.max_message_bytes);
  for (grpc::Service* s : parts.services) {
    AnswerMalformedRequestsWithInvalidArgument(*s);
    builder.RegisterService(s);
  }
  AnswerMalformedRequestsWithInvalidArgument(*internals_->test_clock_service);
  builder.RegisterService(internals_->test_clock_service.get());
  internals_->audit_service =
      std::make_unique<AuditServiceImpl>(*pipeline_, *redis_, sharding_, internals_->audit_key);
  AnswerMalformedRequestsWithInvalidArgument(*internals_->audit_service);
  builder.RegisterService(internals_->audit_service.get());
  if (internals_->audit_key != nullptr) {
    AuditSealerOptions sealer;
    sealer.replica_id = DefaultReplicaId();
    sealer.shard_count = settings_.redis_shards;
    sealer.interval = settings_.audit_seal_interval;
    sealer.lease = std::max(sealer.lease, 2 * sealer.interval);  // renewed every interval
    // With the password of redis-password-file, as every other connection (a wake
    // connection refused by AUTH left the sealer on its 5 s safety net).
    // Not on a Redis Cluster: its blocking XREAD names every held shard's stream, which a
    // cluster refuses across slots (CROSSSLOT); the sealer then seals every
    // audit-seal-interval instead of at once.
    if (auto url = RedisUrlFromSettings(settings_); url.ok() && !IsClusterUrl(*url)) {
      sealer.wake_url = *url;
    }
    sealer.export_dir = settings_.audit_export_dir;
    sealer.export_interval = settings_.audit_export_interval;
    sealer.retention = settings_.audit_retention;
    internals_->audit_sealer = std::make_unique<AuditSealer>(
        *redis_, *clock_, internals_->audit_key, metrics_.get(), std::move(sealer));
  }
  EventHandler* handler = parts.event_handler;
  if (handler == nullptr) {
    internals_->record_only_handler = std::make_unique<RecordOnlyEventHandler>(*redis_);
    handler = internals_->record_only_handler.get();
  }
  internals_->event_sink = std::make_unique<EventSinkServiceImpl>(
      identity_.event_name, *handler, *pipeline_, sharding_, settings_.dedupe_retention, *metrics_);
  AnswerMalformedRequestsWithInvalidArgument(*internals_->event_sink);
  builder.RegisterService(internals_->event_sink.get());
  if (settings_.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(settings_.max_connection_age)));
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(settings_.shutdown_grace)));
  }
  // Dead peers: a connection that does not answer a ping within keepalive-timeout closes,
  // ending its streams, so an idle Subscribe of a vanished client frees its place. Pings go
  // out even with no data sent (idle streams between heartbeats).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(settings_.keepalive_time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(settings_.keepalive_timeout)));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Metrics label the methods served here; any other name a caller sends shares one
  // label value, so callers cannot grow the metrics page.
  std::vector<std::string> served_methods = {"/grpc.health.v1.Health/Check",
                                             "/grpc.health.v1.Health/Watch"};
  if (reflection) {
    served_methods.push_back("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo");
  }
  std::vector<grpc::Service*> registered = parts.services;
  registered.push_back(internals_->test_clock_service.get());
  registered.push_back(internals_->audit_service.get());
  registered.push_back(internals_->event_sink.get());
  for (grpc::Service* s : registered) {
    for (std::string& name : ServedMethodNames(*s)) served_methods.push_back(std::move(name));
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(metrics_->NewServerInterceptorFactory(*clock_, served_methods));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  // A start that fails stops what the parts started (their threads use Redis, which goes
  // with the platform) as a drain would, and exits 1 with a log line that names the port:
  // never a crash of threads left running into a destroyed platform.
  auto fail = [this, &parts](absl::string_view what, absl::string_view address,
                             absl::string_view error) {
    Log::Error("cannot start", {{"error", absl::StrCat(what, " ", address, ": ", error)},
                                {"address", std::string(address)}});
    if (internals_->server != nullptr) {
      internals_->server->Shutdown(internal::GrpcTimeout(absl::ZeroDuration()));
      internals_->server->Wait();
    }
    StopParts(parts);
    return 1;
  };

  internals_->server = builder.BuildAndStart();
  grpc::Server* server = internals_->server.get();
  if (server == nullptr || port == 0) {
    internals_->server.reset();
    return fail("cannot listen on", settings_.listen, "the address is in use or cannot be bound");
  }
  // Every status is set on the main server's health service and mirrored into the probe
  // server's, so probes on the plaintext port see readiness flips and the drain.
  std::vector<grpc::HealthCheckServiceInterface*> health_services = {
      server->GetHealthCheckService()};
  auto probe = StartProbeServer(settings_.tls, settings_.listen, settings_.health_listen);
  if (!probe.ok()) {
    return fail("cannot listen on", settings_.health_listen, probe.status().message());
  }
  internals_->probe_server = *std::move(probe);
  if (internals_->probe_server != nullptr) {
    health_services.push_back(internals_->probe_server->GetHealthCheckService());
  }
  auto set_health = [health_services](const std::string& name, bool serving) {
    for (grpc::HealthCheckServiceInterface* h : health_services) h->SetServingStatus(name, serving);
  };
  set_health("", true);
  set_health(identity_.grpc_service_name, false);

  // Readiness follows Redis as the calls see it (see RedisReadiness): a background probe,
  // so health answers never wait on Redis. Changes are logged with their reason.
  internals_->readiness_probe =
      std::make_unique<PeriodicTask>(settings_.health_probe_interval, [this, set_health] {
        internals_->redis_readiness->Probe([this, set_health](absl::Status status) {
          const bool up = status.ok();
          internals_->redis_up->Set(up ? 1 : 0);
          if (internals_->draining.load()) return;
          set_health(identity_.grpc_service_name, up);
          if (internals_->ready.exchange(up) != up) {
            if (up) {
              Log::Info("ready: redis answers the calls' writes");
            } else {
              Log::Warn("not ready", {{"reason", std::string(status.message())}});
            }
          }
        });
      });

  if (parts.emits_events) {
    RelayOptions relay;
    relay.emitter = identity_.event_name;
    relay.replica_id = DefaultReplicaId();
    relay.shard_count = settings_.redis_shards;
    for (const auto& [name, address] : receiver_addresses_)
      relay.receivers.push_back({name, address});
    relay.routes = routes_;
    relay.lease = settings_.relay_lease;
    relay.poll_interval = settings_.relay_poll_interval;
    relay.subscribed_poll_interval = settings_.relay_subscribed_poll_interval;
    relay.emits = parts.emitted_events;
    // Other replicas' commits wake this process's lanes through pub/sub; its own wake them
    // directly (outbox_wakeups), so their messages are ignored.
    auto url = RedisUrlFromSettings(settings_);
    if (url.ok()) relay.pubsub = *url;
    relay.own_publisher = internals_->outbox_wakeups->publisher_id();
    relay.credentials = MakeChannelCredentials(settings_.tls);
    relay.authorize = [auth = internals_->authentication.get(),
                       service = identity_.event_name](grpc::ClientContext& context) {
      auth->AuthorizeOutgoing(context, service);
    };
    // The real clock: outbox entry ids are Redis's own time, never the test clock's.
    internals_->relay = std::make_unique<OutboxRelay>(internals_->outbox_wakeups->inner(),
                                                      *metrics_, *real_clock_, std::move(relay));
    internals_->outbox_wakeups->SetRelay(internals_->relay.get());
  }

  Log::Info("serving", {{"address", settings_.listen},
                        {"port", static_cast<int64_t>(port)},
                        {"metrics", settings_.metrics_listen},
                        {"env", settings_.env},
                        {"tls", settings_.tls.mode},
                        {"reflection", reflection ? "on" : "off"},
                        {"shards", static_cast<int64_t>(settings_.redis_shards)}});

  sigset_t set = ServiceSignals();
  int signal_number = 0;
  while (sigwait(&set, &signal_number) == 0 && signal_number == SIGHUP) {
    Log::Info("SIGHUP: reloading");
    reload_hooks_.RunAll();
  }

  Log::Info("draining", {{"signal", static_cast<int64_t>(signal_number)},
                         {"grace_ms", absl::ToInt64Milliseconds(settings_.shutdown_grace)}});
  internals_->draining.store(true);
  set_health(identity_.grpc_service_name, false);
  server->Shutdown(internal::GrpcTimeout(settings_.shutdown_grace));
  server->Wait();
  if (internals_->probe_server != nullptr) {
    internals_->probe_server->Shutdown(internal::GrpcTimeout(absl::ZeroDuration()));
    internals_->probe_server->Wait();
  }
  StopParts(parts);
  Log::Info("stopped");
  return 0;
}

void Platform::StopParts(const ServiceParts& parts) {
  for (const auto& stop : parts.on_drain) stop();
  internals_->outbox_wakeups->SetRelay(nullptr);
  internals_->relay.reset();  // releases its lanes to the other replicas
  if (internals_->audit_service != nullptr) {
    internals_->audit_service->Stop();  // the server still refers to the service object
  }
  internals_->audit_sealer.reset();  // exports its last heads, releases its shards
}

namespace {

// How long a starting service waits for Redis to answer the data layout check.
constexpr absl::Duration kDataLayoutWait = absl::Seconds(60);

// Checks (or, on a new installation, records) the data layout before any part touches
// Redis: a service configured with another shard count or built for another layout must
// not write a single key. Waits for a Redis that is not up yet, as a pod started before
// its Redis does; gives up after kDataLayoutWait.
absl::Status AwaitDataLayout(Platform& platform, const ServiceIdentity& identity) {
  const RealClock clock;
  const DataLayout expected{kDataLayoutVersion, platform.settings().redis_shards};
  const absl::Time give_up = clock.Now() + kDataLayoutWait;
  bool told = false;
  while (true) {
    absl::Status s = ClaimDataLayout(platform.redis(), expected, identity.binary, clock.Now());
    if (s.code() != absl::StatusCode::kUnavailable) return s;
    // Redis answers but refuses this client (its certificate did not verify, the password
    // is wrong): waiting changes nothing; the operator must fix the configuration.
    if (IsRedisConfigurationError(s)) {
      return absl::FailedPreconditionError(
          absl::StrCat("Redis refuses the configured connection: ", s.message()));
    }
    if (clock.Now() >= give_up) {
      return absl::UnavailableError(
          absl::StrCat("Redis did not answer the data layout check within ",
                       absl::FormatDuration(kDataLayoutWait), ": ", s.message()));
    }
    // The client connects in the background: the first answers of a start are often "not
    // connected" for a few milliseconds, which is no news.
    if (!told && clock.Now() - (give_up - kDataLayoutWait) > absl::Seconds(2)) {
      Log::Warn("waiting for Redis to check the data layout",
                {{"reason", std::string(s.message())}});
      told = true;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

}  // namespace

int ServiceMain(const ServiceIdentity& identity, int argc, char** argv,
                const std::function<void(Config&)>& add_settings,
                const std::function<absl::StatusOr<ServiceParts>(Platform&)>& wire) {
  BlockTerminationSignals();
  Config config;
  ServerSettings settings;
  RegisterServerSettings(identity, config, &settings);
  if (add_settings) add_settings(config);
  if (int code = ParseSettingsOrExit(identity, config, settings, argc, argv); code >= 0) {
    return code;
  }
  ApplyEnvironmentDefaults(&settings);
  auto platform = Platform::Create(identity, settings);
  if (!platform.ok()) {
    Log::Error("cannot start", {{"error", std::string(platform.status().message())}});
    return 1;
  }
  if (absl::Status layout = AwaitDataLayout(**platform, identity); !layout.ok()) {
    Log::Error("cannot start", {{"error", std::string(layout.message())}});
    return 1;
  }
  auto parts = wire(**platform);
  if (!parts.ok()) {
    Log::Error("cannot start", {{"error", std::string(parts.status().message())}});
    return 1;
  }
  const int code = (*platform)->Serve(*parts);
  platform->reset();  // stops Redis and its callbacks before the service objects go
  return code;
}

}  // namespace rogatory::common
