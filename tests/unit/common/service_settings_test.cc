// The deployment topology's defaults (each service's addresses, where every service
// receives events) come from the binary's ServiceIdentity (services/topology.h), not from
// common's code (issue 17, item 7).
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "rogatory/common/config.h"
#include "rogatory/common/platform.h"

namespace rogatory::common {
namespace {

ServerSettings Defaults(const ServiceIdentity& id) {
  Config config;
  ServerSettings settings;
  RegisterServerSettings(id, config, &settings);
  const char* argv[] = {"rogatory-test"};
  const absl::Status parsed =
      config.Parse(1, argv, [](const std::string&) { return std::optional<std::string>(); });
  EXPECT_TRUE(parsed.ok()) << parsed;
  return settings;
}

TEST(ServiceSettingsTest, TopologyDefaultsComeFromTheServiceIdentity) {
  const ServerSettings s =
      Defaults({"rogatory-test", "test", "rogatory.test.v1.Test", "10.0.0.1:7001", "10.0.0.1:7101",
                "test=10.0.0.1:7001,other=10.0.0.2:7002"});
  EXPECT_EQ(s.listen, "10.0.0.1:7001");
  EXPECT_EQ(s.metrics_listen, "10.0.0.1:7101");
  EXPECT_EQ(s.event_receivers, "test=10.0.0.1:7001,other=10.0.0.2:7002");
}

TEST(ServiceSettingsTest, NoEventReceiversUnlessTheIdentityNamesThem) {
  const ServerSettings s = Defaults(
      {"rogatory-test", "test", "rogatory.test.v1.Test", "127.0.0.1:0", "127.0.0.1:0", ""});
  EXPECT_EQ(s.event_receivers, "");
}

}  // namespace
}  // namespace rogatory::common
