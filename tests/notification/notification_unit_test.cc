// Pure logic of the notification service: webhook signatures, endpoint checks,
// who an event concerns, subscription filters, retry backoff.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "endpoint_policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inbox.h"
#include "notification_event_handler.h"
#include "notification_service.h"
#include "webhook_dispatcher.h"
#include "webhook_signer.h"
#include "webhook_transport.h"

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

// Every non-global range of the IANA IPv4 and IPv6 special-purpose address registries,
// with IPv4 embedded in IPv6 forms, against global neighbours of the same ranges.
struct AddressCase {
  const char* address;
  bool refused;
};

TEST(EndpointPolicyTest, ClassifiesEverySpecialPurposeRangeAndItsGlobalNeighbours) {
  const AddressCase cases[] = {
      // IPv4 special-purpose registry.
      {"0.0.0.0", true},
      {"0.255.255.255", true},  // this network
      {"10.0.0.1", true},
      {"10.255.255.255", true},  // private
      {"100.64.0.1", true},
      {"100.127.255.254", true},  // shared (CGNAT)
      {"100.63.255.255", false},
      {"100.128.0.0", false},
      {"127.0.0.1", true},
      {"127.255.255.254", true},  // loopback
      {"169.254.169.254", true},  // link-local (metadata)
      {"172.16.0.1", true},
      {"172.31.255.255", true},  // private
      {"172.15.255.255", false},
      {"172.32.0.1", false},
      {"192.0.0.1", true},
      {"192.0.0.170", true},  // IETF protocol
      {"192.0.2.1", true},    // TEST-NET-1
      {"192.88.99.1", true},  // 6to4 relay anycast
      {"192.168.1.1", true},  // private
      {"198.18.0.1", true},
      {"198.19.255.255", true},  // benchmarking
      {"198.17.255.255", false},
      {"198.20.0.0", false},
      {"198.51.100.7", true},
      {"203.0.113.9", true},  // TEST-NET-2, -3
      {"224.0.0.1", true},
      {"239.255.255.255", true},  // multicast
      {"240.0.0.1", true},
      {"255.255.255.255", true},  // reserved, broadcast
      {"8.8.8.8", false},
      {"193.0.0.1", false},
      {"223.255.255.254", false},
      // IPv6 special-purpose registry.
      {"::", true},
      {"::1", true},  // unspecified, loopback
      {"::ffff:127.0.0.1", true},
      {"::ffff:8.8.8.8", true},  // IPv4-mapped
      {"::ffff:0:127.0.0.1", true},
      {"::ffff:0:8.8.8.8", true},  // IPv4-translated
      {"::127.0.0.1", true},
      {"::8.8.8.8", true},  // IPv4-compatible
      {"64:ff9b::127.0.0.1", true},
      {"64:ff9b::10.0.0.1", true},  // NAT64, embedded
      {"64:ff9b::169.254.169.254", true},
      {"64:ff9b::8.8.8.8", false},
      {"64:ff9b:1::8.8.8.8", true},  // local-use NAT64
      {"100::1", true},
      {"100:0:0:1::1", true},  // discard, dummy
      {"2001::1", true},
      {"2001:0:4136:e378:8000:63bf:3fff:fdd2", true},  // Teredo
      {"2001:2::1", true},
      {"2001:1ff::1", true},  // IETF protocol
      {"2001:db8::1", true},  // documentation
      {"2002:7f00:1::1", true},
      {"2002:808:808::1", true},  // 6to4
      {"3fff::1", true},
      {"5f00::1", true},  // documentation, SRv6
      {"fc00::1", true},
      {"fd12:3456::1", true},  // unique local
      {"fe80::1", true},
      {"febf::1", true},  // link-local
      {"fec0::1", true},
      {"feff::1", true},  // site-local
      {"ff02::1", true},  // multicast
      {"4000::1", true},
      {"1fff::1", true},  // not global unicast
      {"2a00:1450:4001::1", false},
      {"2001:200::1", false},
      {"2600::1", false},
      // Not numeric: judged after resolution.
      {"hooks.example.org", false},
  };
  for (const AddressCase& c : cases) {
    EXPECT_EQ(IsBlockedAddress(c.address), c.refused) << c.address;
  }
}

TEST(EndpointPolicyTest, RefusesSpecialPurposeLiteralsAtCreationInEveryNotation) {
  const EndpointPolicy strict{false, false};
  for (const char* uri : {"https://127.0.0.1/x",
                          "https://127.1/x",
                          "https://0x7f.0.0.1/x",
                          "https://2130706433/x",
                          "https://0177.0.0.1/x",
                          "https://[::1]/x",
                          "https://[::127.0.0.1]/x",
                          "https://[::ffff:127.0.0.1]/x",
                          "https://[::ffff:0:127.0.0.1]/x",
                          "https://[64:ff9b::127.0.0.1]/x",
                          "https://[64:ff9b:1::808:808]/x",
                          "https://[2002:7f00:1::1]/x",
                          "https://[2001::1]/x",
                          "https://[fec0::1]/x",
                          "https://[fe80::1%25eth0]/x",
                          "https://198.18.0.1/x",
                          "https://100.64.0.1/x",
                          "https://240.0.0.1/x",
                          "https://localhost/x",
                          "https://localhost./x",
                          "https://api.localhost/x"}) {
    auto e = CheckEndpointUri(uri, strict);
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << uri;
  }
  EXPECT_TRUE(CheckEndpointUri("https://[64:ff9b::808:808]/x", strict).ok());
  EXPECT_TRUE(CheckEndpointUri("https://8.8.8.8/x", strict).ok());
}

struct PortCase {
  const char* uri;
  std::vector<int> allowed;
  bool accepted;
};

TEST(EndpointPolicyTest, PortsFollowThePolicy) {
  const PortCase cases[] = {
      {"https://hooks.example.org/x", {443}, true},
      {"https://hooks.example.org:443/x", {443}, true},
      {"https://hooks.example.org:8443/x", {443}, false},
      {"https://hooks.example.org:22/x", {443}, false},
      {"https://hooks.example.org:6379/x", {443}, false},
      {"https://hooks.example.org:8443/x", {443, 8443}, true},
      {"https://hooks.example.org/x", {8443}, false},
      {"http://hooks.example.org/x", {443}, false},
      {"http://hooks.example.org/x", {80, 443}, true},
  };
  for (const PortCase& c : cases) {
    EndpointPolicy policy;
    policy.allow_http = true;
    policy.allowed_ports = c.allowed;
    EXPECT_EQ(CheckEndpointUri(c.uri, policy).ok(), c.accepted) << c.uri;
  }
  EXPECT_TRUE(CheckEndpointUri("https://hooks.example.org/x", EndpointPolicy{}).ok());
  EXPECT_FALSE(CheckEndpointUri("https://hooks.example.org:8443/x", EndpointPolicy{}).ok());
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
  EndpointPolicy dev{true, true};
  dev.allowed_ports = {8080};
  auto e = CheckEndpointUri("http://127.0.0.1:8080/hook", dev);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 8080);
  EndpointPolicy strict_8080 = strict;
  strict_8080.allowed_ports = {8080};
  EXPECT_EQ(ResolveAllowed(*e, strict_8080).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(ResolveAllowed(*e, dev).ok());
}

// Maps test names to addresses: deliveries are judged on what a name resolves to, and
// no test asks DNS or sends traffic off this machine.
using Names = std::map<std::string, std::vector<std::string>>;

class FakeResolver final : public HostResolver {
 public:
  explicit FakeResolver(Names names) : names_(std::move(names)) {}
  absl::StatusOr<std::vector<std::string>> Resolve(const std::string& host) override {
    asked_.push_back(host);
    auto it = names_.find(host);
    if (it == names_.end()) return absl::UnavailableError("cannot resolve host");
    return it->second;
  }
  const std::vector<std::string>& asked() const { return asked_; }

 private:
  std::map<std::string, std::vector<std::string>> names_;
  std::vector<std::string> asked_;
};

TEST(EndpointPolicyTest, DeliveryPinsAGlobalAddressAndRefusesAnyNonGlobalAnswer) {
  FakeResolver resolver(Names{{"hooks.test", {"93.184.216.34", "2606:2800:220:1::1"}},
                              {"rebind.test", {"93.184.216.34", "127.0.0.1"}},
                              {"metadata.test", {"64:ff9b::a9fe:a9fe"}},
                              {"mapped.test", {"::ffff:10.0.0.1"}},
                              {"sixtofour.test", {"2002:c0a8:101::1"}},
                              {"bench.test", {"198.18.0.10"}},
                              {"sitelocal.test", {"fec0::1"}}});
  const EndpointPolicy strict;
  auto at = [](const char* host, int port = 443) { return ParsedEndpoint{"https", host, port}; };
  auto pinned = ResolveAllowed(at("hooks.test"), strict, resolver);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(*pinned, "93.184.216.34");
  for (const char* host : {"rebind.test", "metadata.test", "mapped.test", "sixtofour.test",
                           "bench.test", "sitelocal.test"}) {
    EXPECT_EQ(ResolveAllowed(at(host), strict, resolver).status().code(),
              absl::StatusCode::kPermissionDenied)
        << host;
  }
  EXPECT_EQ(ResolveAllowed(at("unknown.test"), strict, resolver).status().code(),
            absl::StatusCode::kUnavailable);
  // A subscription made under an older policy: its port is refused at delivery too.
  EXPECT_EQ(ResolveAllowed(at("hooks.test", 8443), strict, resolver).status().code(),
            absl::StatusCode::kPermissionDenied);
  EndpointPolicy dev{true, true};
  EXPECT_TRUE(ResolveAllowed(at("rebind.test"), dev, resolver).ok());
}

TEST(EndpointPolicyTest, RefusalNamesTheRange) {
  EXPECT_EQ(RefusedRange("198.18.0.1"), "198.18.0.0/15 (benchmarking)");
  EXPECT_EQ(RefusedRange("64:ff9b::7f00:1"),
            "64:ff9b::/96 (NAT64 well-known prefix) embedding 127.0.0.0/8 (loopback)");
  EXPECT_EQ(RefusedRange("8.8.8.8"), std::nullopt);
  auto e = CheckEndpointUri("https://[fec0::1]/x", EndpointPolicy{});
  EXPECT_THAT(std::string(e.status().message()), ::testing::HasSubstr("fec0::/10"));
}

TEST(EndpointPolicyTest, ParsesThePortAllowList) {
  EXPECT_EQ(*ParsePortList("443"), std::vector<int>{443});
  EXPECT_EQ(*ParsePortList("443, 8443,443"), (std::vector<int>{443, 8443}));
  for (const char* bad : {"", "0", "65536", "https", "443,", "-1"}) {
    EXPECT_EQ(ParsePortList(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// Answers one HTTP request on a loopback port with 204.
class OneShotHttpServer {
 public:
  OneShotHttpServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd_, 1) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      const int conn = accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = read(conn, buf, sizeof(buf));
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      received_ = request;
      const std::string answer =
          "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!write(conn, answer.data(), answer.size());
      shutdown(conn, SHUT_WR);
      while (read(conn, buf, sizeof(buf)) > 0) {
      }
      close(conn);
    });
  }
  ~OneShotHttpServer() {
    shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  // The request's head; read after the delivery returned.
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string received_;
};

TEST(CurlWebhookTransportTest, ConnectsToThePinnedAddressOfAnInjectedResolver) {
  OneShotHttpServer server;
  // "hooks.test" exists only in the fake resolver: the POST reaching the loopback server
  // shows the connection went to the address that was checked.
  FakeResolver resolver(Names{{"hooks.test", {"127.0.0.1"}}});
  EndpointPolicy dev{true, true};
  dev.allowed_ports = {server.port()};
  CurlWebhookTransport transport(dev, absl::Seconds(5), &resolver);
  const WebhookResult result =
      transport.Post({absl::StrCat("http://hooks.test:", server.port(), "/hook"), {}, "{}"});
  EXPECT_EQ(result.http_status, 204) << result.outcome;
  EXPECT_THAT(server.received(), ::testing::HasSubstr("POST /hook"));
}

TEST(CurlWebhookTransportTest, RefusesARefusedAnswerWithoutConnecting) {
  FakeResolver resolver(Names{{"rebind.test", {"93.184.216.34", "::1"}}});
  CurlWebhookTransport transport(EndpointPolicy{}, absl::Seconds(1), &resolver);
  const WebhookResult result = transport.Post({"https://rebind.test/hook", {}, "{}"});
  EXPECT_EQ(result.outcome, "blocked_address");
  EXPECT_EQ(result.http_status, 0);
  EXPECT_EQ(resolver.asked(), std::vector<std::string>{"rebind.test"});
  EXPECT_EQ(transport.Post({"https://rebind.test:8443/hook", {}, "{}"}).outcome,
            "blocked_endpoint");
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
  void Eval(const common::LuaScript&, std::vector<std::string>, std::vector<std::string>,
            common::RedisCallback done) override {
    done(absl::UnavailableError("no redis"));
  }
};
class NoTransport final : public WebhookTransport {
 public:
  WebhookResult Post(const WebhookPost&) override { return {}; }
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
