#pragma once

// What the authentication tests share (tests/auth: jwks_test, key_binding_test,
// token_authenticator_test): the claims of a typical authority's and service's token, and
// the settings parse of a test service.

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rogatory/common/jwt.h"
#include "rogatory/common/platform.h"

namespace rogatory::common::testing {

// An issuing authority's token: FR-TJ-PARIS-JI (FR), 30 minutes from `now`.
inline JwtClaims AuthorityClaims(absl::Time now) {
  JwtClaims c;
  c.issuer = "rogatory-dev";
  c.subject = "FR-TJ-PARIS-JI";
  c.audiences = {"rogatory"};
  c.issued_at = now;
  c.expires = now + absl::Minutes(30);
  c.state = "FR";
  c.roles = {"issuing"};
  return c;
}

// A service's token: rogatory-intake, role service, no state, 5 minutes from `now`.
inline JwtClaims ServiceClaims(absl::Time now) {
  JwtClaims c = AuthorityClaims(now);
  c.subject = "rogatory-intake";
  c.state.clear();
  c.roles = {"service"};
  c.expires = now + absl::Minutes(5);
  return c;
}

// ParseSettingsOrExit's answer for a test service given `flags` (-1 go on, 2 bad setting)
// and what it wrote to stderr. Production's other checks (the audit key, TLS) are not the
// auth tests' business: --audit=log and --tls-terminated-by-mesh=true are added.
struct SettingsParse {
  int code = 0;
  std::string stderr_text;
};
inline SettingsParse ParseTestServiceSettings(std::vector<std::string> flags) {
  ServiceIdentity id{"rogatory-test", "test",        "rogatory.test.v1.Test",
                     "127.0.0.1:0",   "127.0.0.1:0", ""};
  Config config;
  ServerSettings settings;
  RegisterServerSettings(id, config, &settings);
  flags.push_back("--audit=log");
  flags.push_back("--tls-terminated-by-mesh=true");
  flags.insert(flags.begin(), "rogatory-test");
  std::vector<const char*> argv;
  for (const auto& f : flags) argv.push_back(f.c_str());
  ::testing::internal::CaptureStderr();
  SettingsParse out;
  out.code = ParseSettingsOrExit(id, config, settings, static_cast<int>(argv.size()), argv.data());
  out.stderr_text = ::testing::internal::GetCapturedStderr();
  return out;
}

}  // namespace rogatory::common::testing
