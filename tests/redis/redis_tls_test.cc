// Redis over TLS with an ACL user (issue 18, item 2): the asynchronous client, the pub/sub
// listener and a service binary against a TLS-only redis-server (tests/support/
// tls_redis_server.h), with server verification against a CA file, a client certificate
// when Redis asks for one, and clear errors when verification or authentication fails.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/pubsub_listener.h"
#include "rogatory/common/redis.h"
#include "tls_redis_server.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;
using Steady = std::chrono::steady_clock;

AsyncRedisOptions Options(const RedisUrl& url) {
  AsyncRedisOptions o;
  o.url = url;
  o.command_timeout = absl::Seconds(5);
  o.max_backoff = absl::Milliseconds(200);
  return o;
}

// The first status of `args` that is not "not connected yet": what a caller sees once the
// client's first connection attempt is over.
absl::StatusOr<RedisReply> Settled(RedisClient& client, std::vector<std::string> args) {
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  absl::StatusOr<RedisReply> r = RunRedisCommand(client, args);
  while (!r.ok() && absl::StrContains(r.status().message(), "not connected yet") &&
         Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = RunRedisCommand(client, args);
  }
  return r;
}

TEST(RedisUrlTlsTest, RedissSchemeTurnsTlsOn) {
  auto url = ParseRedisUrl("rediss://app:pw@redis.example:6380/2");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_TRUE(url->tls.enabled);
  EXPECT_EQ(url->user, "app");
  EXPECT_EQ(url->port, 6380);
  EXPECT_FALSE(ParseRedisUrl("redis://127.0.0.1:6379")->tls.enabled);
  EXPECT_FALSE(ParseRedisUrl("http://127.0.0.1:6379").ok());
}

class RedisTlsTest : public ::testing::Test {
 protected:
  testing::TlsRedisServer server_;
};

TEST_F(RedisTlsTest, ClientConnectsOverTlsAsTheAclUserAndRunsCommandsAndScripts) {
  auto client = NewAsyncRedisClient(Options(server_.Url()));
  ASSERT_TRUE(testing::AwaitPong(*client));
  const std::string value("a\0b\r\nc", 6);
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", "rg:{s0}:k", value}).ok());
  auto got = RunRedisCommand(*client, {"GET", "rg:{s0}:k"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->str, value);
  auto who = RunRedisCommand(*client, {"ACL", "WHOAMI"});
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->str, "rogatory");
  LuaScript script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto first = RunRedisScript(*client, script, {"rg:{s0}:n"}, {"41"});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->integer, 41);
  ASSERT_TRUE(RunRedisCommand(*client, {"SCRIPT", "FLUSH"}).ok());
  auto second = RunRedisScript(*client, script, {"rg:{s0}:n"}, {"1"});  // NOSCRIPT, then EVAL
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->integer, 42);
  // Many commands in flight on the one pipelined TLS connection, in order.
  constexpr int kCount = 2000;
  std::atomic<int> ok{0};
  std::atomic<int> remaining{kCount};
  absl::Notification all_done;
  for (int i = 0; i < kCount; ++i) {
    client->Command({"RPUSH", "rg:{s0}:list", std::to_string(i)},
                    [&, i](absl::StatusOr<RedisReply> r) {
                      if (r.ok() && r->integer == i + 1) ok.fetch_add(1);
                      if (remaining.fetch_sub(1) == 1) all_done.Notify();
                    });
  }
  all_done.WaitForNotification();
  EXPECT_EQ(ok.load(), kCount);
}

TEST_F(RedisTlsTest, ClientReconnectsAfterTlsRedisRestarts) {
  auto client = NewAsyncRedisClient(Options(server_.Url()));
  ASSERT_TRUE(testing::AwaitPong(*client));
  ASSERT_TRUE(RunRedisCommand(*client, {"SET", "rg:{s0}:durable", "yes"}).ok());
  server_.Stop();
  server_.Start();
  ASSERT_TRUE(testing::AwaitPong(*client));
  auto got = RunRedisCommand(*client, {"GET", "rg:{s0}:durable"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->str, "yes");
}

TEST_F(RedisTlsTest, ServerNotVerifiedByTheCaFileIsRefusedWithAClearError) {
  RedisUrl url = server_.Url();
  url.tls.ca_file = server_.File("other-ca.crt");
  auto client = NewAsyncRedisClient(Options(url));
  auto r = Settled(*client, {"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsRedisConfigurationError(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("certificate"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("did not verify"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("other-ca.crt"));
}

TEST_F(RedisTlsTest, ServerCertificateNotNamingTheServerNameIsRefused) {
  RedisUrl url = server_.Url();
  url.tls.server_name = "not-redis.test";
  auto client = NewAsyncRedisClient(Options(url));
  auto r = Settled(*client, {"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsRedisConfigurationError(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not-redis.test"));
  // A name the certificate carries works (SNI and verification by DNS name).
  url.tls.server_name = "redis.test";
  auto named = NewAsyncRedisClient(Options(url));
  EXPECT_TRUE(testing::AwaitPong(*named));
}

TEST_F(RedisTlsTest, WrongPasswordIsAClearErrorAndNothingIsWritten) {
  RedisUrl url = server_.Url();
  url.password = "wrong";
  auto client = NewAsyncRedisClient(Options(url));
  auto r = Settled(*client, {"SET", "rg:{s0}:x", "v"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsRedisConfigurationError(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("AUTH"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("WRONGPASS"));
  EXPECT_EQ(server_.Cli("EXISTS rg:{s0}:x"), "0\n");
}

TEST_F(RedisTlsTest, PlaintextClientCannotTalkToTlsOnlyRedis) {
  RedisUrl url = server_.Url();
  url.tls = {};
  auto client = NewAsyncRedisClient(Options(url));
  auto r = Settled(*client, {"PING"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
}

TEST(RedisTlsClientCertificateTest, RequiredClientCertificateWorksWithItAndFailsWithout) {
  testing::TlsRedisServer server(/*require_client_certificate=*/true);
  auto with = NewAsyncRedisClient(Options(server.Url()));
  ASSERT_TRUE(testing::AwaitPong(*with));
  RedisUrl url = server.Url();
  url.tls.cert_file.clear();
  url.tls.key_file.clear();
  auto without = NewAsyncRedisClient(Options(url));
  auto r = Settled(*without, {"PING"});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(IsRedisConfigurationError(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("certificate"));
}

TEST_F(RedisTlsTest, PubSubListenerSubscribesOverTls) {
  std::atomic<int> messages{0};
  absl::Notification subscribed;
  PubSubListener listener(server_.Url(), "rg:wake:test",
                          {.on_message =
                               [&](const std::string& payload) {
                                 if (payload == "hello") messages.fetch_add(1);
                               },
                           .on_subscribed = [&] { subscribed.Notify(); },
                           .on_lost = {}},
                          absl::Milliseconds(200));
  ASSERT_TRUE(subscribed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  while (messages.load() == 0 && Steady::now() < deadline) {
    server_.Cli("PUBLISH rg:wake:test hello");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GT(messages.load(), 0);
}

// Runs rogatory-intake against the TLS Redis; returns its exit status and stderr (it is
// stopped with SIGTERM once it logs "serving", or after 60 s).
struct IntakeRun {
  int exit_code = -1;
  bool served = false;
  std::string log;
};
IntakeRun RunIntake(const testing::TlsRedisServer& server, const std::string& ca_file) {
  const std::string password_file = server.File("password");
  FILE* f = fopen(password_file.c_str(), "w");
  fputs(testing::TlsRedisServer::kPassword, f);
  fclose(f);
  const std::string cmd = std::string(ROGATORY_INTAKE_BIN) +
                          " --listen=127.0.0.1:" + std::to_string(testing::FreePort()) +
                          " --metrics-listen=127.0.0.1:" + std::to_string(testing::FreePort()) +
                          " --redis-url=rediss://" + testing::TlsRedisServer::kUser +
                          ":@127.0.0.1:" + std::to_string(server.port()) +
                          "/0 --redis-password-file=" + password_file +
                          " --redis-tls-ca-file=" + ca_file + " --audit=log --auth=metadata 2>&1";
  IntakeRun run;
  int fds[2];
  if (pipe(fds) != 0) return run;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  const auto deadline = Steady::now() + std::chrono::seconds(60);
  char buf[4096];
  bool stopped = false;
  while (true) {
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n > 0) run.log.append(buf, n);
    if (!run.served && run.log.find("\"serving\"") != std::string::npos) {
      run.served = true;
      kill(pid, SIGTERM);
      stopped = true;
    }
    int status = 0;
    if (n <= 0 && waitpid(pid, &status, WNOHANG) == pid) {
      run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (Steady::now() > deadline && !stopped) {
      kill(pid, SIGKILL);
      stopped = true;
    }
    if (n <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(fds[0]);
  return run;
}

TEST_F(RedisTlsTest, ServiceStartsOnTlsOnlyRedisWithAnAclUser) {
  IntakeRun run = RunIntake(server_, server_.File("ca.crt"));
  EXPECT_TRUE(run.served) << run.log;
  EXPECT_EQ(run.exit_code, 0) << run.log;
}

TEST_F(RedisTlsTest, ServiceRefusesToStartWhenTheCaDoesNotVerifyRedis) {
  const auto start = Steady::now();
  IntakeRun run = RunIntake(server_, server_.File("other-ca.crt"));
  EXPECT_FALSE(run.served) << run.log;
  EXPECT_EQ(run.exit_code, 1) << run.log;
  EXPECT_THAT(run.log, HasSubstr("cannot start"));
  EXPECT_THAT(run.log, HasSubstr("did not verify"));
  // At once, not after the 60 s a Redis that is not up yet is waited for.
  EXPECT_LT(Steady::now() - start, std::chrono::seconds(30));
}

}  // namespace
}  // namespace rogatory::common
