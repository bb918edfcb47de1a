// Pure logic of the notification service: webhook signatures, endpoint checks,
// who an event concerns, subscription filters, retry backoff.
#include "endpoint_policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inbox.h"
#include "notification_event_handler.h"
#include "notification_service.h"
#include "webhook_dispatcher.h"
#include "webhook_signer.h"

namespace rogatory::notification {
namespace {

TEST(WebhookSignerTest, MatchesTheStandardWebhooksReferenceVector) {
  // The reference vector of the Standard Webhooks libraries.
  auto sig = SignWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                         "1614265330", R"({"test": 2432232314})");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(*sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(WebhookSignerTest, HeaderDuringRotationVerifiesWithEitherSecretAndRejectsOthers) {
  const std::string old_secret = NewWebhookSecret(), new_secret = NewWebhookSecret();
  ASSERT_NE(old_secret, new_secret);
  ASSERT_TRUE(old_secret.rfind("whsec_", 0) == 0);
  auto header = SignatureHeader({new_secret, old_secret}, "id1", "1700000000", "{}");
  ASSERT_TRUE(header.ok());
  EXPECT_TRUE(VerifyWebhook(new_secret, "id1", "1700000000", "{}", *header));
  EXPECT_TRUE(VerifyWebhook(old_secret, "id1", "1700000000", "{}", *header));
  EXPECT_FALSE(VerifyWebhook(NewWebhookSecret(), "id1", "1700000000", "{}", *header));
  EXPECT_FALSE(VerifyWebhook(new_secret, "id1", "1700000001", "{}",
                             *header));  // replayed ts
  EXPECT_FALSE(VerifyWebhook(new_secret, "id1", "1700000000", "{ }",
                             *header));  // altered body
}

TEST(WebhookSignerTest, MalformedSecretIsRejected) {
  EXPECT_FALSE(SignWebhook("secret", "id", "1", "{}").ok());
  EXPECT_FALSE(SignWebhook("whsec_!!!", "id", "1", "{}").ok());
}

TEST(EndpointPolicyTest, BlocksLoopbackLinkLocalAndPrivateAddresses) {
  for (const char *a : {"127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                        "169.254.169.254", "0.0.0.0", "100.64.0.1", "::1", "::", "fe80::1",
                        "fd00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "224.0.0.1"}) {
    EXPECT_TRUE(IsBlockedAddress(a)) << a;
  }
  for (const char *a : {"8.8.8.8", "172.32.0.1", "193.0.0.1", "2a00:1450:4001::1"}) {
    EXPECT_FALSE(IsBlockedAddress(a)) << a;
  }
}

TEST(EndpointPolicyTest, ChecksSchemeHostAndPrivateLiterals) {
  const EndpointPolicy strict{false, false};
  EXPECT_TRUE(CheckEndpointUri("https://hooks.example.org/rogatory", strict).ok());
  EXPECT_FALSE(CheckEndpointUri("http://hooks.example.org/x", strict).ok());
  EXPECT_FALSE(CheckEndpointUri("https://127.0.0.1/x", strict).ok());
  EXPECT_FALSE(CheckEndpointUri("https://[::1]:8443/x", strict).ok());
  EXPECT_FALSE(CheckEndpointUri("https://localhost/x", strict).ok());
  EXPECT_FALSE(CheckEndpointUri("https://user:pw@hooks.example.org/", strict).ok());
  EXPECT_FALSE(CheckEndpointUri("ftp://hooks.example.org/", strict).ok());
  EXPECT_FALSE(CheckEndpointUri("not a uri", strict).ok());
  const EndpointPolicy dev{true, true};
  auto e = CheckEndpointUri("http://127.0.0.1:8080/hook", dev);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 8080);
  EXPECT_EQ(ResolveAllowed(*e, strict).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ResolveAllowed(*e, dev).ok());
}

TEST(PartiesTest, IntakeEventNamesIssuerAndExecutor) {
  common::v1::Event e;
  e.set_type(common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
  e.mutable_request()->mutable_issuing_authority()->set_authority_id("FR-A");
  e.mutable_request()->mutable_executing_authority()->set_authority_id("DE-B");
  e.mutable_request()->set_requested_state("DE");
  const PartiesSeen p = PartiesOf(e);
  EXPECT_EQ(p.issuing.authority_id(), "FR-A");
  EXPECT_EQ(p.executing.authority_id(), "DE-B");
  EXPECT_EQ(p.requested_state, "DE");
  EXPECT_TRUE(p.translator.authority_id().empty());
}

TEST(PartiesTest, RoutingDecisionNamesCompetentAuthorityAndCentralActor) {
  common::v1::Event e;
  e.set_type(common::v1::EVENT_TYPE_ROUTING_DECIDED);
  e.mutable_routing_decided()->mutable_competent_authority()->set_authority_id("DE-C");
  e.mutable_actor()->mutable_authority()->set_authority_id("DE-BMJ");
  e.mutable_actor()->set_role(common::v1::AUTHORITY_ROLE_CENTRAL);
  const PartiesSeen p = PartiesOf(e);
  EXPECT_EQ(p.executing.authority_id(), "DE-C");
  EXPECT_EQ(p.central.authority_id(), "DE-BMJ");
  // The decision's own central authority wins over the actor.
  e.mutable_routing_decided()->mutable_central_authority()->set_authority_id("DE-BFJ");
  EXPECT_EQ(PartiesOf(e).central.authority_id(), "DE-BFJ");
}

TEST(PartiesTest, TranslatorOnlyFromJobEvents) {
  common::v1::Event e;
  e.set_type(common::v1::EVENT_TYPE_TRANSLATION_JOB_CLAIMED);
  e.mutable_actor()->mutable_authority()->set_authority_id("TR-1");
  e.mutable_actor()->set_role(common::v1::AUTHORITY_ROLE_TRANSLATOR);
  EXPECT_EQ(PartiesOf(e).translator.authority_id(), "TR-1");
  e.set_type(common::v1::EVENT_TYPE_REQUEST_CLOSED);
  EXPECT_TRUE(PartiesOf(e).translator.authority_id().empty());
}

TEST(FilterTest, UnsetPartsMatchEverythingAndSetPartsMustAllMatch) {
  common::v1::Event e;
  e.set_instrument(common::v1::INSTRUMENT_EIO);
  e.set_type(common::v1::EVENT_TYPE_REQUEST_RECOGNISED);
  v1::SubscriptionFilter f;
  EXPECT_TRUE(FilterMatches(f, e, {"FR", "DE"}));
  f.add_instruments(common::v1::INSTRUMENT_EIO);
  f.add_states("DE");
  EXPECT_TRUE(FilterMatches(f, e, {"FR", "DE"}));
  EXPECT_FALSE(FilterMatches(f, e, {"FR", "IT"}));
  f.add_event_types(common::v1::EVENT_TYPE_REQUEST_REFUSED);
  EXPECT_FALSE(FilterMatches(f, e, {"FR", "DE"}));
}

TEST(StreamIdTest, ParsesAndOrdersCursors) {
  auto a = ParseStreamId("1700000000000-3");
  auto b = ParseStreamId("1700000000001-0");
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(*a < *b);
  EXPECT_EQ(a->ToString(), "1700000000000-3");
  EXPECT_FALSE(ParseStreamId(""));
  EXPECT_FALSE(ParseStreamId("abc"));
  EXPECT_FALSE(ParseStreamId("12-"));
  EXPECT_FALSE(ParseStreamId("-1"));
}

// Never called: Backoff needs no Redis.
class NoRedis final : public common::RedisClient {
 public:
  void Command(std::vector<std::string>, common::RedisCallback done) override {
    done(absl::UnavailableError("no redis"));
  }
  void Eval(const common::LuaScript &, std::vector<std::string>, std::vector<std::string>,
            common::RedisCallback done) override {
    done(absl::UnavailableError("no redis"));
  }
};
class NoTransport final : public WebhookTransport {
 public:
  WebhookResult Post(const WebhookPost &) override { return {}; }
};

TEST(WebhookBackoffTest, DoublesWithJitterInTheUpperHalfAndIsCapped) {
  NoRedis redis;
  NoTransport transport;
  common::SimulatedClock clock;
  prometheus::Registry registry;
  NotificationMetrics metrics(registry);
  NotificationSettings s;
  s.webhook_initial_backoff = absl::Seconds(1);
  s.webhook_max_backoff = absl::Seconds(8);
  WebhookDispatcher d(redis, clock, common::Sharding(4), s, metrics, transport);
  for (int round = 0; round < 50; ++round) {
    for (int attempt = 1; attempt <= 6; ++attempt) {
      const absl::Duration full = std::min(absl::Seconds(1 << (attempt - 1)), absl::Seconds(8));
      const absl::Duration b = d.Backoff(attempt);
      EXPECT_GE(b, full / 2) << attempt;
      EXPECT_LE(b, full) << attempt;
    }
  }
}

}  // namespace
}  // namespace rogatory::notification
