#include "rogatory/common/config.h"

#include <map>

#include "gtest/gtest.h"

namespace rogatory::common {
namespace {

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

struct Settings {
  std::string url;
  int shards = 0;
  bool flag = false;
  absl::Duration timeout;
  std::string env;
};

Config MakeConfig(Settings* s) {
  Config c;
  c.AddString("redis-url", "redis://x", "Redis.", &s->url);
  c.AddInt("redis-shards", 16, 1, 1024, "Shards.", &s->shards);
  c.AddBool("test-clock", false, "Clock.", &s->flag);
  c.AddDuration("redis-timeout", absl::Milliseconds(500), absl::Milliseconds(10), absl::Seconds(30),
                "Timeout.", &s->timeout);
  c.AddChoice("env", "development", {"development", "production"}, "Env.", &s->env);
  return c;
}

TEST(ConfigTest, DefaultsApplyWhenNothingIsSet) {
  Settings s;
  Config c = MakeConfig(&s);
  const char* argv[] = {"prog"};
  ASSERT_TRUE(c.Parse(1, argv, FakeEnv({})).ok());
  EXPECT_EQ(s.url, "redis://x");
  EXPECT_EQ(s.shards, 16);
  EXPECT_EQ(s.timeout, absl::Milliseconds(500));
  EXPECT_EQ(s.env, "development");
}

TEST(ConfigTest, FlagsWinOverEnvironment) {
  Settings s;
  Config c = MakeConfig(&s);
  const char* argv[] = {"prog", "--redis-shards=8", "--test-clock", "true"};
  ASSERT_TRUE(
      c.Parse(4, argv, FakeEnv({{"ROGATORY_REDIS_SHARDS", "4"}, {"ROGATORY_REDIS_TIMEOUT", "2s"}}))
          .ok());
  EXPECT_EQ(s.shards, 8);
  EXPECT_TRUE(s.flag);
  EXPECT_EQ(s.timeout, absl::Seconds(2));
}

TEST(ConfigTest, BadValueNamesTheSettingAndItsSource) {
  Settings s;
  Config c = MakeConfig(&s);
  const char* argv[] = {"prog"};
  absl::Status st = c.Parse(1, argv, FakeEnv({{"ROGATORY_REDIS_TIMEOUT", "soon"}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("redis-timeout"), std::string::npos);
  EXPECT_NE(st.message().find("ROGATORY_REDIS_TIMEOUT"), std::string::npos);
}

TEST(ConfigTest, OutOfRangeAndUnknownChoicesAreRejected) {
  Settings s;
  Config c = MakeConfig(&s);
  const char* shards[] = {"prog", "--redis-shards=0"};
  EXPECT_FALSE(c.Parse(2, shards, FakeEnv({})).ok());
  const char* env[] = {"prog", "--env=staging"};
  EXPECT_NE(c.Parse(2, env, FakeEnv({})).message().find("env"), std::string::npos);
}

TEST(ConfigTest, UnknownFlagIsAnError) {
  Settings s;
  Config c = MakeConfig(&s);
  const char* argv[] = {"prog", "--redis-urll=redis://y"};
  absl::Status st = c.Parse(2, argv, FakeEnv({}));
  EXPECT_NE(st.message().find("redis-urll"), std::string::npos);
}

TEST(ConfigTest, HelpListsEverySettingWithItsEnvironmentVariable) {
  Settings s;
  Config c = MakeConfig(&s);
  const char* argv[] = {"prog", "--help"};
  ASSERT_TRUE(c.Parse(2, argv, FakeEnv({})).ok());
  EXPECT_TRUE(c.help_requested());
  const std::string help = c.Help("prog");
  for (const char* name : {"ROGATORY_REDIS_URL", "ROGATORY_REDIS_SHARDS", "ROGATORY_TEST_CLOCK",
                           "ROGATORY_REDIS_TIMEOUT", "ROGATORY_ENV"}) {
    EXPECT_NE(help.find(name), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace rogatory::common
