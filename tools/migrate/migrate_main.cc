// rogatory-migrate: checks and moves on the data layout recorded in Redis (issue 17,
// item 9). The chart runs `apply` as a Job before an upgrade; services refuse to start on a
// layout other than their own.
//
//   rogatory-migrate status --redis-url=... [--redis-password-file=F]
//   rogatory-migrate apply  --redis-url=... [--redis-password-file=F] --redis-shards=N
//                           [--dry-run=true]
//
// Prints one JSON line. Exit codes: 0 done (or nothing to do), 1 refused or failed (the
// line says why), 2 bad usage.
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "migrations.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/cluster_redis_client.h"
#include "rogatory/common/config.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/platform.h"

namespace rogatory::migrate {
namespace {

struct Settings {
  std::string redis_url;
  std::string redis_password_file;
  // A Redis Cluster, TLS and the ACL user, as the services take them.
  bool redis_cluster = false;
  std::string redis_user;
  bool redis_tls = false;
  std::string redis_tls_ca_file;
  std::string redis_tls_cert_file;
  std::string redis_tls_key_file;
  std::string redis_tls_server_name;
  absl::Duration redis_timeout;
  int redis_shards = 0;
  bool dry_run = false;
};

std::string Quote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string LayoutJson(const std::optional<common::DataLayout>& layout) {
  if (!layout.has_value()) return "null";
  return absl::StrCat("{\"version\":", layout->version, ",\"shards\":", layout->shards, "}");
}

int Fail(absl::string_view command, const absl::Status& status) {
  std::cout << "{\"command\":" << Quote(command)
            << ",\"ok\":false,\"error\":" << Quote(status.message()) << "}\n";
  return 1;
}

int Run(const std::string& command, const Settings& s) {
  common::ServerSettings server;
  server.redis_url = s.redis_url;
  server.redis_password_file = s.redis_password_file;
  server.redis_cluster = s.redis_cluster;
  server.redis_user = s.redis_user;
  server.redis_tls = s.redis_tls;
  server.redis_tls_ca_file = s.redis_tls_ca_file;
  server.redis_tls_cert_file = s.redis_tls_cert_file;
  server.redis_tls_key_file = s.redis_tls_key_file;
  server.redis_tls_server_name = s.redis_tls_server_name;
  auto url = common::RedisUrlFromSettings(server);
  if (!url.ok()) return Fail(command, url.status());
  common::AsyncRedisOptions options;
  options.url = *url;
  options.command_timeout = s.redis_timeout;
  // A cluster's seeds (or redis-cluster=true): the cluster client, which sends each command
  // to the primary that owns its key's slot, as the services do.
  auto client = common::NewRedisClientFor(*url, options);
  if (!client.ok()) return Fail(command, client.status());
  std::unique_ptr<common::RedisClient> redis = std::move(*client);
  const common::RealClock clock;
  // The client connects in the background: wait for Redis to answer, as a Job started
  // beside its Redis must.
  const absl::Time give_up = clock.Now() + s.redis_timeout;
  absl::StatusOr<common::RedisReply> pong;
  while (!(pong = common::RunRedisCommand(*redis, {"PING"})).ok() && clock.Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (!pong.ok()) return Fail(command, pong.status());

  if (command == "status") {
    auto recorded = common::ReadDataLayout(*redis);
    if (!recorded.ok()) return Fail(command, recorded.status());
    std::cout << "{\"command\":\"status\",\"ok\":true,\"recorded\":" << LayoutJson(*recorded)
              << ",\"build_version\":" << common::kDataLayoutVersion << "}\n";
    return 0;
  }
  auto report = Apply(*redis, s.redis_shards, s.dry_run, clock.Now());
  if (!report.ok()) return Fail(command, report.status());
  std::vector<std::string> steps;
  for (const std::string& step : report->steps) steps.push_back(Quote(step));
  std::cout << "{\"command\":\"apply\",\"ok\":true,\"dry_run\":" << (s.dry_run ? "true" : "false")
            << ",\"before\":" << LayoutJson(report->before)
            << ",\"after\":" << LayoutJson(report->after) << ",\"steps\":["
            << absl::StrJoin(steps, ",") << "]}\n";
  return 0;
}

}  // namespace
}  // namespace rogatory::migrate

int main(int argc, char** argv) {
  const std::string usage =
      "usage: rogatory-migrate status|apply --redis-url=URL [--redis-password-file=F] "
      "[--redis-shards=N] [--dry-run=true]\n";
  if (argc < 2 || (std::string(argv[1]) != "status" && std::string(argv[1]) != "apply")) {
    std::cerr << usage;
    return 2;
  }
  const std::string command = argv[1];
  rogatory::common::Log::Configure("rogatory-migrate", rogatory::common::LogLevel::kWarn);
  rogatory::common::Config config;
  rogatory::migrate::Settings s;
  config.AddString("redis-url", "redis://127.0.0.1:6379/0", "Redis, as the services reach it.",
                   &s.redis_url);
  config.AddString("redis-password-file", "", "File holding the Redis password.",
                   &s.redis_password_file);
  config.AddString("redis-user", "", "Redis ACL user (as the services' redis-user).",
                   &s.redis_user);
  config.AddBool("redis-cluster", false,
                 "Redis is a Redis Cluster (also: several comma-separated redis-url addresses).",
                 &s.redis_cluster);
  config.AddBool("redis-tls", false, "TLS to Redis (also: a rediss:// redis-url).", &s.redis_tls);
  config.AddString("redis-tls-ca-file", "", "CA that must verify Redis (required with TLS).",
                   &s.redis_tls_ca_file);
  config.AddString("redis-tls-cert-file", "", "Client certificate presented to Redis.",
                   &s.redis_tls_cert_file);
  config.AddString("redis-tls-key-file", "", "Key of redis-tls-cert-file.", &s.redis_tls_key_file);
  config.AddString("redis-tls-server-name", "",
                   "Name Redis's certificate must carry (default: the URL's host).",
                   &s.redis_tls_server_name);
  config.AddDuration("redis-timeout", absl::Seconds(30), absl::Milliseconds(100), absl::Minutes(10),
                     "Time limit of one Redis command.", &s.redis_timeout);
  config.AddInt("redis-shards", 0, 0, 1024,
                "The shard count the services run with (apply: required).", &s.redis_shards);
  config.AddBool("dry-run", false, "apply: say what would be done, change nothing.", &s.dry_run);
  // argv[1] is the command; the settings follow it.
  if (absl::Status st = config.Parse(argc - 1, argv + 1, rogatory::common::ProcessEnv());
      !st.ok()) {
    std::cerr << "rogatory-migrate: " << st.message() << "\n" << usage;
    return 2;
  }
  if (config.help_requested()) {
    std::cout << usage << config.Help("rogatory-migrate");
    return 0;
  }
  if (command == "apply" && s.redis_shards == 0) {
    std::cerr << "rogatory-migrate: apply needs --redis-shards (the count the services run "
                 "with)\n";
    return 2;
  }
  return rogatory::migrate::Run(command, s);
}
