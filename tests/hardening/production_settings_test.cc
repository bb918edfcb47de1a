// Production means secure (issue 16, item 14): with env=production a service refuses to
// start (exit 2, naming the setting) without TLS on gRPC unless a mesh terminates mTLS in
// front of it (tls-terminated-by-mesh), with metrics on a wildcard address, or with the
// Redis password in redis-url; it serves no reflection. The Redis password comes from
// redis-password-file, never from the command line.
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rogatory/common/platform.h"
#include "test_keys.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ProductionSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir();
    auto idp = testing::GenerateKeyPair("EC");
    keys_ = Write("prod-keys.json",
                  absl::StrCat(R"({"keys":[{"kid":"e1","alg":"ES256","subjects":"authorities",)",
                               R"("public_key_pem":)", testing::JsonQuote(idp.public_pem), "}]}"));
    password_file_ = Write("redis-password", "s3cret-redis-password\n");
  }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/production-", name);
    std::ofstream(path) << text;
    return path;
  }
  // ParseSettingsOrExit's answer: -1 go on, 2 bad setting. Production's keys and audit
  // log are set; `flags` add to them.
  int Parse(std::vector<std::string> flags, bool production = true) {
    ServiceIdentity id{"rogatory-test", "test",        "rogatory.test.v1.Test",
                       "127.0.0.1:0",   "127.0.0.1:0", ""};
    Config config;
    settings_ = ServerSettings();
    RegisterServerSettings(id, config, &settings_);
    std::vector<std::string> all = {"rogatory-test", "--audit=log", "--auth-keys=" + keys_};
    if (production) all.push_back("--env=production");
    all.insert(all.end(), flags.begin(), flags.end());
    std::vector<const char*> argv;
    for (const auto& f : all) argv.push_back(f.c_str());
    ::testing::internal::CaptureStderr();
    const int code =
        ParseSettingsOrExit(id, config, settings_, static_cast<int>(argv.size()), argv.data());
    stderr_ = ::testing::internal::GetCapturedStderr();
    return code;
  }

  std::string dir_, keys_, password_file_, stderr_;
  ServerSettings settings_;
};

TEST_F(ProductionSettingsTest, ProductionWithoutTlsExits2NamingTheSetting) {
  EXPECT_EQ(Parse({"--metrics-listen=10.1.2.3:9101"}), 2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'tls'"));
  EXPECT_THAT(stderr_, HasSubstr("tls-terminated-by-mesh"));
  EXPECT_EQ(Parse({"--metrics-listen=10.1.2.3:9101"}, /*production=*/false), -1);
}

TEST_F(ProductionSettingsTest, MeshThatTerminatesMtlsIsAnExplicitOptOut) {
  EXPECT_EQ(Parse({"--metrics-listen=10.1.2.3:9101", "--tls-terminated-by-mesh=true"}), -1)
      << stderr_;
  EXPECT_TRUE(settings_.tls_terminated_by_mesh);
}

TEST_F(ProductionSettingsTest, ProductionMetricsOnAWildcardAddressAreRefused) {
  for (const std::string address : {"0.0.0.0:9101", "[::]:9101", ":9101", "*:9101"}) {
    EXPECT_EQ(Parse({"--tls-terminated-by-mesh=true", "--metrics-listen=" + address}), 2)
        << address;
    EXPECT_THAT(stderr_, HasSubstr("setting 'metrics-listen'")) << address;
  }
  EXPECT_EQ(Parse({"--tls-terminated-by-mesh=true", "--metrics-listen=[fd00::7]:9101"}), -1);
  EXPECT_EQ(Parse({"--metrics-listen=0.0.0.0:9101"}, /*production=*/false), -1);
}

TEST_F(ProductionSettingsTest, ProductionRefusesAPasswordInTheRedisUrl) {
  EXPECT_EQ(Parse({"--tls-terminated-by-mesh=true", "--metrics-listen=10.1.2.3:9101",
                   "--redis-url=redis://app:pw@redis:6379/0"}),
            2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'redis-url'"));
  EXPECT_THAT(stderr_, HasSubstr("redis-password-file"));
  EXPECT_THAT(stderr_, Not(HasSubstr(":pw@")));  // never echoed
  EXPECT_EQ(
      Parse({"--tls-terminated-by-mesh=true", "--metrics-listen=10.1.2.3:9101",
             "--redis-url=redis://app:@redis:6379/0", "--redis-password-file=" + password_file_}),
      -1)
      << stderr_;
}

TEST_F(ProductionSettingsTest, RedisPasswordComesFromItsFile) {
  ASSERT_EQ(
      Parse({"--redis-url=redis://app:@redis:6380/2", "--redis-password-file=" + password_file_},
            /*production=*/false),
      -1)
      << stderr_;
  auto url = RedisUrlFromSettings(settings_);
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->user, "app");
  EXPECT_EQ(url->password, "s3cret-redis-password");  // the trailing newline dropped
  EXPECT_EQ(url->host, "redis");
  EXPECT_EQ(url->port, 6380);
  EXPECT_EQ(url->db, 2);
}

TEST_F(ProductionSettingsTest, UnreadableOrDoubleRedisPasswordIsABadSetting) {
  EXPECT_EQ(Parse({"--redis-password-file=" + dir_ + "/no-such-file"}, false), 2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'redis-password-file'"));
  EXPECT_EQ(
      Parse({"--redis-url=redis://:pw@redis", "--redis-password-file=" + password_file_}, false),
      2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'redis-password-file'"));
}

TEST_F(ProductionSettingsTest, ReflectionIsServedInDevelopmentOnly) {
  ASSERT_EQ(Parse({"--tls-terminated-by-mesh=true", "--metrics-listen=10.1.2.3:9101"}), -1);
  EXPECT_FALSE(ServesReflection(settings_));
  ASSERT_EQ(Parse({}, /*production=*/false), -1);
  EXPECT_TRUE(ServesReflection(settings_));
}

TEST_F(ProductionSettingsTest, RedisTlsNeedsACaFileAndTlsFilesNeedTls) {
  EXPECT_EQ(
      Parse({"--redis-url=rediss://app:@redis:6380/0", "--redis-password-file=" + password_file_},
            false),
      2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'redis-tls-ca-file'"));
  EXPECT_EQ(Parse({"--redis-tls=true", "--redis-tls-ca-file=" + dir_ + "/no-such-ca.crt"}, false),
            2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'redis-tls-ca-file'"));
  EXPECT_THAT(stderr_, HasSubstr("no-such-ca.crt"));
  // A CA without TLS would suggest an encryption that does not happen.
  EXPECT_EQ(Parse({"--redis-tls-ca-file=" + keys_}, false), 2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'redis-tls-ca-file': TLS to Redis is off"));
}

TEST_F(ProductionSettingsTest, RedisUserSettingNamesTheAclUser) {
  ASSERT_EQ(Parse({"--redis-url=redis://redis:6380/0", "--redis-user=app",
                   "--redis-password-file=" + password_file_},
                  false),
            -1)
      << stderr_;
  auto url = RedisUrlFromSettings(settings_);
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->user, "app");
  EXPECT_EQ(url->password, "s3cret-redis-password");
  EXPECT_FALSE(url->tls.enabled);
  EXPECT_EQ(Parse({"--redis-url=redis://other:@redis:6380/0", "--redis-user=app",
                   "--redis-password-file=" + password_file_},
                  false),
            2);
  EXPECT_THAT(stderr_, HasSubstr("setting 'redis-user'"));
}

}  // namespace
}  // namespace rogatory::common
