// The notification service on a real redis-server, through its gRPC API on a
// loopback port: resumable streams, retention, duplicates, retrieval evidence,
// re-announcement, escalation, and who is told about what.
#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "fanout_worker.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "inbox_append_listener.h"
#include "notification_event_handler.h"
#include "notification_keys.h"
#include "notification_service.h"
#include "redis_commands.h"
#include "redis_notification_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/notification/v1/notification.grpc.pb.h"
#include "webhook_dispatcher.h"

namespace rogatory::notification {
namespace {

using common::v1::Event;
using Steady = std::chrono::steady_clock;
constexpr int kShards = 4;
constexpr char kIssuer[] = "FR-TJ-PARIS";
constexpr char kExecutor[] = "DE-STA-BERLIN";
constexpr char kCentral[] = "DE-BFJ";
constexpr char kTranslator[] = "TR-FR-DE-7";

// Legal time moves only when a test says so; elapsed time is real, because the stream
// timer's heartbeats and maximum age, and the fan-out's polls, are what these tests watch
// happen against a real Redis.
class SimulatedWallClock final : public common::Clock {
 public:
  explicit SimulatedWallClock(absl::Time start) : wall_(start) {}
  absl::Time Now() const override { return wall_.Now(); }
  common::MonotonicTime MonotonicNow() const override { return real_.MonotonicNow(); }
  void Advance(absl::Duration d) { wall_.Advance(d); }

 private:
  common::SimulatedClock wall_;
  common::RealClock real_;
};

class NotificationRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = rogatory::testing::ConnectedClient(redis_server_);
    ASSERT_TRUE(common::RunRedisCommand(*redis_, {"FLUSHALL"}).ok());
    settings_.poll_interval = absl::Milliseconds(10);
    settings_.fanout_recheck_interval = absl::Milliseconds(10);
    settings_.heartbeat_interval = absl::Seconds(30);
    settings_.inbox_retention_age = absl::Hours(1);
    settings_.retrieval_timeout = absl::Hours(1);
    settings_.escalation_timeout = absl::Hours(1);
  }
  void TearDown() override {
    replica_.reset();
    listener_.reset();  // it wakes service_'s streams
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    service_.reset();
    server_.reset();
  }

  void StartService() {
    metrics_ = std::make_unique<NotificationMetrics>(registry_);
    store_ = std::make_unique<RedisNotificationStore>(*redis_);
    handler_ = std::make_unique<NotificationEventHandler>(*store_, clock_, sharding_, settings_,
                                                          *metrics_);
    fanout_ = std::make_unique<FanoutWorker>(*store_, clock_, sharding_, settings_, *metrics_);
    service_ = std::make_unique<NotificationService>(*redis_, clock_, pipeline_, sharding_,
                                                     settings_, *metrics_, *handler_);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = v1::NotificationService::NewStub(channel_);
  }

  std::string Request(int n) {
    return common::Sharding::MakeId("rq", n % kShards, absl::FromUnixSeconds(1767225600 + n));
  }

  Event MakeEvent(const std::string& id, const std::string& request,
                  common::v1::EventType type = common::v1::EVENT_TYPE_REQUEST_SUBMITTED) {
    Event e;
    e.set_event_id(id);
    e.set_request_id(request);
    e.set_type(type);
    e.set_source("intake");
    e.set_instrument(common::v1::INSTRUMENT_EIO);
    e.mutable_request()->mutable_issuing_authority()->set_authority_id(kIssuer);
    e.mutable_request()->mutable_issuing_authority()->set_state("FR");
    e.mutable_request()->set_requested_state("DE");
    return e;
  }

  absl::StatusOr<common::EventHandler::Outcome> Receive(const Event& e) {
    const int shard = *sharding_.ShardOf("rq", e.request_id());
    absl::Notification done;
    absl::StatusOr<common::EventHandler::Outcome> out;
    handler_->Handle(e, {common::EventKeys::Seen(shard, "notification", e.event_id()), "3600000"},
                     [&](absl::StatusOr<common::EventHandler::Outcome> r) {
                       out = r;
                       done.Notify();
                     });
    done.WaitForNotification();
    return out;
  }
  // Runs the fan-out until it has nothing left.
  void Drain() {
    while (fanout_->RunOnce() > 0) {
    }
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& authority) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-rogatory-authority", authority);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ctx;
  }

  int64_t XLen(const std::string& authority) {
    return common::RunRedisCommand(*redis_,
                                   {"XLEN", Keys::Inbox(sharding_.ShardFor(authority), authority)})
        ->integer;
  }

  // The event ids in an authority's inbox, in inbox order.
  std::vector<std::string> InboxEvents(const std::string& authority) {
    std::vector<std::string> out;
    auto all = common::RunRedisCommand(
        *redis_, {"XRANGE", Keys::Inbox(sharding_.ShardFor(authority), authority), "-", "+"});
    if (!all.ok()) return out;
    for (const auto& entry : all->elements) {
      const auto& f = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < f.size(); i += 2) {
        Event e;
        if (f[i].str == "ev" && e.ParseFromString(f[i + 1].str)) out.push_back(e.event_id());
      }
    }
    return out;
  }

  // A deadline event of deadline-tracking, which names no executing authority (its rule
  // started before routing decided).
  Event DeadlineEvent(const std::string& id, const std::string& request, common::v1::EventType type,
                      const std::string& deadline_id) {
    Event e = MakeEvent(id, request, type);
    e.set_source("deadlines");
    e.mutable_actor()->set_service("rogatory-deadlines");
    e.mutable_deadline()->set_deadline_id(deadline_id);
    e.mutable_deadline()->set_rule_id("EIO_ACKNOWLEDGE");
    return e;
  }

  // Routing names the competent (executing) authority, through the central authority.
  Event RoutingDecided(const std::string& id, const std::string& request) {
    Event e = MakeEvent(id, request, common::v1::EVENT_TYPE_ROUTING_DECIDED);
    e.set_source("routing");
    auto* competent = e.mutable_routing_decided()->mutable_competent_authority();
    competent->set_authority_id(kExecutor);
    competent->set_state("DE");
    e.mutable_routing_decided()->mutable_central_authority()->set_authority_id(kCentral);
    e.mutable_routing_decided()->mutable_central_authority()->set_state("DE");
    return e;
  }

  // Reads `n` notifications (skipping heartbeats).
  // Streams are pushed as in production: the fan-out of this process wakes them, and so does
  // a pub/sub listener (every replica's appends).
  void EnablePush() {
    auto wakeups = std::make_shared<InboxWakeups>();
    fanout_->SetInboxWakeups(wakeups);
    service_->SetInboxWakeups(wakeups);
    listener_ = Listen(wakeups, service_.get());
  }
  std::unique_ptr<InboxAppendListener> Listen(std::shared_ptr<InboxWakeups> wakeups,
                                              NotificationService* service) {
    auto listener = std::make_unique<InboxAppendListener>(
        *common::ParseRedisUrl(redis_server_.url()),
        InboxAppendListener::Callbacks{
            [wakeups](const std::string& inbox, const std::string& entry_id) {
              wakeups->Notify(inbox, entry_id);
            },
            [service] { service->WakeAllStreams(); }},
        absl::Milliseconds(200));
    const auto deadline = Steady::now() + std::chrono::seconds(10);
    while (listener->subscriptions() == 0 && Steady::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_GT(listener->subscriptions(), 0) << "the listener did not subscribe within 10 s";
    return listener;
  }

  // Another notification replica on the same Redis: its own Redis client and service, no
  // fan-out of its own; its streams learn of appends only through its pub/sub listener.
  struct Replica {
    std::unique_ptr<common::RedisClient> redis;
    prometheus::Registry registry;
    std::unique_ptr<NotificationMetrics> metrics;
    std::unique_ptr<NotificationStore> store;
    std::unique_ptr<NotificationEventHandler> handler;
    std::unique_ptr<NotificationService> service;
    std::unique_ptr<grpc::Server> server;
    std::unique_ptr<v1::NotificationService::Stub> stub;
    std::unique_ptr<InboxAppendListener> listener;
    ~Replica() {
      listener.reset();
      if (server) server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
      service.reset();
    }
  };
  Replica& StartReplica() {
    replica_ = std::make_unique<Replica>();
    Replica& r = *replica_;
    r.redis = rogatory::testing::ConnectedClient(redis_server_);
    r.metrics = std::make_unique<NotificationMetrics>(r.registry);
    r.store = std::make_unique<RedisNotificationStore>(*r.redis);
    r.handler = std::make_unique<NotificationEventHandler>(*r.store, clock_, sharding_, settings_,
                                                           *r.metrics);
    r.service = std::make_unique<NotificationService>(*r.redis, clock_, pipeline_, sharding_,
                                                      settings_, *r.metrics, *r.handler);
    auto wakeups = std::make_shared<InboxWakeups>();
    r.service->SetInboxWakeups(wakeups);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(r.service.get());
    r.server = b.BuildAndStart();
    EXPECT_NE(r.server, nullptr);
    r.stub = v1::NotificationService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    r.listener = Listen(wakeups, r.service.get());
    return r;
  }

  // Reads until a heartbeat: the stream is open, has read its inbox and is idle. False if
  // the stream ended or sent a notification first.
  static bool AwaitHeartbeat(grpc::ClientReader<v1::SubscribeResponse>& reader) {
    v1::SubscribeResponse r;
    while (reader.Read(&r)) {
      if (r.has_heartbeat()) return true;
      if (r.has_notification()) return false;
    }
    return false;
  }

  std::vector<v1::Notification> ReadN(grpc::ClientReader<v1::SubscribeResponse>& reader, int n) {
    std::vector<v1::Notification> out;
    v1::SubscribeResponse r;
    while (static_cast<int>(out.size()) < n && reader.Read(&r)) {
      if (r.has_notification()) out.push_back(r.notification());
    }
    return out;
  }

  testing::RedisServer redis_server_;
  std::unique_ptr<common::RedisClient> redis_;
  std::unique_ptr<NotificationStore> store_;
  SimulatedWallClock clock_{absl::FromUnixSeconds(1767225600)};
  common::Sharding sharding_{kShards};
  NotificationSettings settings_;
  prometheus::Registry registry_;
  common::MetadataAuthenticator auth_;
  common::NoRateLimiter limiter_;
  common::LogAuditor auditor_;
  common::Pipeline pipeline_{auth_, limiter_, auditor_, clock_};
  std::unique_ptr<NotificationMetrics> metrics_;
  std::unique_ptr<NotificationEventHandler> handler_;
  std::unique_ptr<FanoutWorker> fanout_;
  std::unique_ptr<NotificationService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::NotificationService::Stub> stub_;
  std::unique_ptr<InboxAppendListener> listener_;
  std::unique_ptr<Replica> replica_;
};

TEST_F(NotificationRedisTest, ReconnectWithCursorAfterEvent50Receives51To100ExactlyOnce) {
  StartService();
  for (int i = 1; i <= 100; ++i) {
    clock_.Advance(absl::Milliseconds(3));
    ASSERT_TRUE(Receive(MakeEvent(absl::StrCat("ev-", 1000 + i), Request(i))).ok());
  }
  Drain();
  ASSERT_EQ(XLen(kIssuer), 100);

  // The inbox's order (per request, the order of receipt; across requests,
  // fan-out order).
  auto all = common::RunRedisCommand(
      *redis_, {"XRANGE", Keys::Inbox(sharding_.ShardFor(kIssuer), kIssuer), "-", "+"});
  std::vector<std::string> order;
  for (const auto& entry : all->elements) {
    Event e;
    const auto& f = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < f.size(); i += 2) {
      if (f[i].str == "ev") e.ParseFromString(f[i + 1].str);
    }
    order.push_back(e.event_id());
  }
  ASSERT_EQ(order.size(), 100u);
  ASSERT_EQ(std::set<std::string>(order.begin(), order.end()).size(), 100u);

  std::string cursor;
  {
    auto ctx = Ctx(kIssuer);
    v1::SubscribeRequest req;
    req.set_start_position(v1::START_POSITION_OLDEST);
    auto reader = stub_->Subscribe(ctx.get(), req);
    auto first = ReadN(*reader, 50);
    ASSERT_EQ(first.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(first[i].event().event_id(), order[i]);
    cursor = first.back().cursor();
    ctx->TryCancel();  // the subscriber disconnects after event 50
  }
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  req.set_cursor(cursor);
  auto reader = stub_->Subscribe(ctx.get(), req);
  auto rest = ReadN(*reader, 50);
  ASSERT_EQ(rest.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(rest[i].event().event_id(), order[50 + i]);
  // Nothing repeats after 100: the next notification is the next event.
  ASSERT_TRUE(Receive(MakeEvent("ev-1101", Request(101))).ok());
  Drain();
  auto next = ReadN(*reader, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].event().event_id(), "ev-1101");
  ctx->TryCancel();
}

TEST_F(NotificationRedisTest, LiveStartSeesOnlyNewNotificationsAndHeartbeatsWhenIdle) {
  settings_.heartbeat_interval = absl::Milliseconds(200);
  StartService();
  ASSERT_TRUE(Receive(MakeEvent("ev-old", Request(1))).ok());
  Drain();
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;  // no cursor, no position: live end
  auto reader = stub_->Subscribe(ctx.get(), req);
  v1::SubscribeResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_TRUE(r.has_heartbeat());  // idle stream kept alive; the old event is
                                   // not replayed
  ASSERT_TRUE(Receive(MakeEvent("ev-new", Request(2))).ok());
  Drain();
  auto got = ReadN(*reader, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event().event_id(), "ev-new");
  ctx->TryCancel();
}

TEST_F(NotificationRedisTest, CursorOlderThanRetentionIsOutOfRange) {
  StartService();
  ASSERT_TRUE(Receive(MakeEvent("ev-1", Request(1))).ok());
  ASSERT_TRUE(Receive(MakeEvent("ev-2", Request(2))).ok());
  Drain();
  auto first = common::RunRedisCommand(
      *redis_, {"XRANGE", Keys::Inbox(sharding_.ShardFor(kIssuer), kIssuer), "-", "+"});
  ASSERT_EQ(first->elements.size(), 2u);
  const std::string old_cursor = first->elements[0].elements[0].str;

  clock_.Advance(absl::Hours(2));  // both notifications are now past the 1 h retention
  ASSERT_TRUE(Receive(MakeEvent("ev-3", Request(3))).ok());
  Drain();

  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  req.set_cursor(old_cursor);
  auto reader = stub_->Subscribe(ctx.get(), req);
  v1::SubscribeResponse r;
  EXPECT_FALSE(reader->Read(&r));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::OUT_OF_RANGE);

  // The oldest retained is ev-3, and a malformed cursor is INVALID_ARGUMENT.
  auto ctx2 = Ctx(kIssuer);
  req.Clear();
  req.set_start_position(v1::START_POSITION_OLDEST);
  auto reader2 = stub_->Subscribe(ctx2.get(), req);
  auto got = ReadN(*reader2, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event().event_id(), "ev-3");
  ctx2->TryCancel();
  auto ctx3 = Ctx(kIssuer);
  req.set_cursor("not-a-cursor");
  auto reader3 = stub_->Subscribe(ctx3.get(), req);
  EXPECT_FALSE(reader3->Read(&r));
  EXPECT_EQ(reader3->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(NotificationRedisTest, DuplicateEventIdReachesNoOneTwice) {
  StartService();
  Event e = MakeEvent("ev-dup", Request(1));
  e.mutable_request()->mutable_executing_authority()->set_authority_id(kExecutor);
  ASSERT_EQ(*Receive(e), common::EventHandler::Outcome::kHandled);
  Drain();
  ASSERT_EQ(*Receive(e), common::EventHandler::Outcome::kDuplicate);
  // Even a fan-out entry delivered twice (a crash before its acknowledgement)
  // adds nothing.
  const int shard = *sharding_.ShardOf("rq", e.request_id());
  ASSERT_TRUE(common::RunRedisCommand(
                  *redis_, {"XADD", Keys::Fanout(shard), "*", "ev", e.SerializeAsString(), "to",
                            absl::StrCat(kIssuer, "@FR,", kExecutor, "@DE"), "acc", "1", "kind",
                            "n", "st", "", "inst", "2", "typ", "1"})
                  .ok());
  Drain();
  EXPECT_EQ(XLen(kIssuer), 1);
  EXPECT_EQ(XLen(kExecutor), 1);
}

// Issue 16, item 5: an event rewrites notification's record of a request's parties, so only
// Rogatory services publish; an operator's (or anyone else's) forged event is refused and
// leaves no trace, not even its event id (the genuine event with that id still gets through).
TEST_F(NotificationRedisTest, PublishEventIsForServicesOnlyAndARefusedEventLeavesNoTrace) {
  StartService();
  Event forged = MakeEvent("ev-forged", Request(2), common::v1::EVENT_TYPE_REQUEST_REFUSED);
  forged.mutable_request()->mutable_executing_authority()->set_authority_id(kExecutor);
  const int shard = *sharding_.ShardOf("rq", forged.request_id());
  struct Who {
    const char* authority;
    const char* roles;
  };
  for (const Who& who :
       {Who{"OPS-1", "operator"}, Who{kIssuer, "issuing"}, Who{kCentral, "central"},
        Who{"EU-AUDIT-1", "auditor"}, Who{kTranslator, "translator"}}) {
    auto ctx = Ctx(who.authority);
    ctx->AddMetadata("x-rogatory-roles", who.roles);
    v1::PublishEventRequest req;
    *req.mutable_event() = forged;
    req.add_extra_recipients()->set_authority_id("IT-PROCURA-ROMA");
    v1::PublishEventResponse resp;
    const grpc::Status s = stub_->PublishEvent(ctx.get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << who.roles;
    EXPECT_THAT(s.error_message(), ::testing::HasSubstr("Rogatory services only")) << who.roles;
  }
  Drain();
  EXPECT_EQ(XLen(kIssuer), 0);
  EXPECT_EQ(XLen(kExecutor), 0);
  EXPECT_EQ(XLen("IT-PROCURA-ROMA"), 0);
  EXPECT_EQ(common::RunRedisCommand(
                *redis_, {"EXISTS", common::EventKeys::Seen(shard, "notification", "ev-forged")})
                ->integer,
            0);

  // A Rogatory service publishes the same event id: handled as new.
  auto ctx = Ctx("rogatory-intake");
  ctx->AddMetadata("x-rogatory-roles", "service");
  v1::PublishEventRequest req;
  *req.mutable_event() = forged;
  v1::PublishEventResponse resp;
  const grpc::Status s = stub_->PublishEvent(ctx.get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.accepted());
  Drain();
  EXPECT_EQ(XLen(kIssuer), 1);
  EXPECT_EQ(XLen(kExecutor), 1);
}

TEST_F(NotificationRedisTest, AckRecordsRetrievalAndEvidenceShowsAllStages) {
  StartService();
  Event e = MakeEvent("ev-ack", Request(1));
  e.mutable_request()->mutable_executing_authority()->set_authority_id(kExecutor);
  ASSERT_TRUE(Receive(e).ok());
  Drain();
  clock_.Advance(absl::Seconds(5));
  auto ctx = Ctx(kExecutor);
  v1::SubscribeRequest req;
  req.set_start_position(v1::START_POSITION_OLDEST);
  auto reader = stub_->Subscribe(ctx.get(), req);
  auto got = ReadN(*reader, 1);
  ASSERT_EQ(got.size(), 1u);

  // Delivered evidence is written when the stream send completes: poll for it.
  v1::GetDeliveryStatusResponse status;
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  bool delivered = false;
  while (!delivered && Steady::now() < deadline) {
    auto c = Ctx(kIssuer);
    v1::GetDeliveryStatusRequest q;
    q.set_event_id("ev-ack");
    status.Clear();
    ASSERT_TRUE(stub_->GetDeliveryStatus(c.get(), q, &status).ok());
    for (const auto& ev : status.evidences()) {
      if (ev.stage() == v1::DELIVERY_STAGE_DELIVERED &&
          ev.recipient().authority_id() == kExecutor) {
        delivered = true;
      }
    }
    if (!delivered) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(delivered);
  clock_.Advance(absl::Seconds(5));

  v1::AckRequest ack;
  ack.set_cursor(got[0].cursor());
  v1::AckResponse ack_resp;
  auto c1 = Ctx(kExecutor);
  ASSERT_TRUE(stub_->Ack(c1.get(), ack, &ack_resp).ok());
  EXPECT_EQ(ack_resp.retrieved_count(), 1);
  auto c2 = Ctx(kExecutor);
  ASSERT_TRUE(stub_->Ack(c2.get(), ack, &ack_resp).ok());
  EXPECT_EQ(ack_resp.retrieved_count(), 0);  // idempotent

  auto c3 = Ctx(kIssuer);
  v1::GetDeliveryStatusRequest q;
  q.set_request_id(e.request_id());
  ASSERT_TRUE(stub_->GetDeliveryStatus(c3.get(), q, &status).ok());
  std::map<v1::DeliveryStage, int64_t> executor_stages;
  for (const auto& ev : status.evidences()) {
    if (ev.recipient().authority_id() == kExecutor) {
      executor_stages[ev.stage()] = ev.record_time().seconds();
    }
  }
  const int64_t t0 = 1767225600;
  EXPECT_EQ(executor_stages[v1::DELIVERY_STAGE_ACCEPTED], t0);
  EXPECT_EQ(executor_stages[v1::DELIVERY_STAGE_DELIVERED], t0 + 5);
  EXPECT_EQ(executor_stages[v1::DELIVERY_STAGE_RETRIEVED], t0 + 10);

  // Someone who is not a party learns nothing.
  auto c4 = Ctx("IT-PROC-ROMA");
  EXPECT_EQ(stub_->GetDeliveryStatus(c4.get(), q, &status).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ctx->TryCancel();
}

TEST_F(NotificationRedisTest, UnretrievedNotificationIsReannouncedThenEscalated) {
  settings_.inbox_retention_age = absl::Hours(24);
  StartService();
  Event e = MakeEvent("ev-late", Request(1));
  e.mutable_request()->mutable_executing_authority()->set_authority_id(kExecutor);
  ASSERT_TRUE(Receive(e).ok());
  // The issuer retrieves its copy; the executor does not.
  Drain();
  auto issuer_entry = common::RunRedisCommand(
      *redis_, {"XRANGE", Keys::Inbox(sharding_.ShardFor(kIssuer), kIssuer), "-", "+"});
  v1::AckRequest ack;
  ack.set_cursor(issuer_entry->elements[0].elements[0].str);
  v1::AckResponse ack_resp;
  auto c = Ctx(kIssuer);
  ASSERT_TRUE(stub_->Ack(c.get(), ack, &ack_resp).ok());

  clock_.Advance(absl::Minutes(61));
  Drain();
  fanout_->RunOnce();
  Drain();
  EXPECT_EQ(XLen(kExecutor), 2);  // re-announced
  EXPECT_EQ(XLen(kIssuer), 1);    // retrieved: not re-announced

  clock_.Advance(absl::Minutes(61));
  fanout_->RunOnce();
  Drain();
  // Escalated: the issuer (no central authority known) is told who did not
  // retrieve what.
  auto entries = common::RunRedisCommand(
      *redis_, {"XRANGE", Keys::Inbox(sharding_.ShardFor(kIssuer), kIssuer), "-", "+"});
  ASSERT_EQ(entries->elements.size(), 2u);
  Event notice;
  const auto& fields = entries->elements[1].elements[1].elements;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].str == "ev") {
      ASSERT_TRUE(notice.ParseFromString(fields[i + 1].str));
    }
  }
  EXPECT_EQ(notice.type(), common::v1::EVENT_TYPE_NOTIFICATION_NOT_RETRIEVED);
  EXPECT_EQ(notice.notification().delivered_event_id(), "ev-late");
  EXPECT_EQ(notice.notification().recipient().authority_id(), kExecutor);

  auto c2 = Ctx(kIssuer);
  v1::GetDeliveryStatusRequest q;
  q.set_event_id("ev-late");
  v1::GetDeliveryStatusResponse status;
  ASSERT_TRUE(stub_->GetDeliveryStatus(c2.get(), q, &status).ok());
  std::set<v1::DeliveryStage> stages;
  for (const auto& ev : status.evidences()) {
    if (ev.recipient().authority_id() == kExecutor) stages.insert(ev.stage());
  }
  EXPECT_THAT(stages, ::testing::UnorderedElementsAre(v1::DELIVERY_STAGE_ACCEPTED,
                                                      v1::DELIVERY_STAGE_REANNOUNCED,
                                                      v1::DELIVERY_STAGE_ESCALATED));
}

TEST_F(NotificationRedisTest, PartiesLearnedEarlierReceiveLaterEventsAndTranslatorGetsJobEvents) {
  StartService();
  const std::string rq = Request(1);
  Event routed = MakeEvent("ev-route", rq, common::v1::EVENT_TYPE_ROUTING_DECIDED);
  routed.set_source("routing");
  routed.mutable_routing_decided()->mutable_competent_authority()->set_authority_id(kExecutor);
  routed.mutable_actor()->mutable_authority()->set_authority_id(kCentral);
  routed.mutable_actor()->set_role(common::v1::AUTHORITY_ROLE_CENTRAL);
  ASSERT_TRUE(Receive(routed).ok());
  Event job;
  job.set_event_id("ev-job");
  job.set_request_id(rq);
  job.set_type(common::v1::EVENT_TYPE_TRANSLATION_JOB_CLAIMED);
  job.mutable_actor()->mutable_authority()->set_authority_id(kTranslator);
  job.mutable_actor()->set_role(common::v1::AUTHORITY_ROLE_TRANSLATOR);
  ASSERT_TRUE(Receive(job).ok());
  Event deadline;  // carries no parties at all
  deadline.set_event_id("ev-deadline");
  deadline.set_request_id(rq);
  deadline.set_type(common::v1::EVENT_TYPE_DEADLINE_MISSED);
  ASSERT_TRUE(Receive(deadline).ok());
  Drain();
  EXPECT_EQ(XLen(kIssuer), 3);
  EXPECT_EQ(XLen(kExecutor), 3);
  EXPECT_EQ(XLen(kCentral), 3);
  EXPECT_EQ(XLen(kTranslator), 1);  // the job event only
  EXPECT_EQ(XLen("IT-PROC-ROMA"), 0);
}

TEST_F(NotificationRedisTest, SubscriptionSeesOnlyMatchingEventsOfItsOwner) {
  settings_.webhook_allow_http = true;
  settings_.webhook_allow_private_addresses = true;
  settings_.webhook_allowed_ports = {9};
  StartService();
  v1::CreateSubscriptionRequest create;
  create.set_request_id("create-1");
  create.set_endpoint_uri("http://127.0.0.1:9/hook");
  create.mutable_filter()->add_event_types(common::v1::EVENT_TYPE_REQUEST_RECOGNISED);
  v1::CreateSubscriptionResponse created;
  auto c1 = Ctx(kExecutor);
  ASSERT_TRUE(stub_->CreateSubscription(c1.get(), create, &created).ok());
  ASSERT_TRUE(created.signing_secret().rfind("whsec_", 0) == 0);
  v1::CreateSubscriptionResponse again;
  auto c2 = Ctx(kExecutor);
  ASSERT_TRUE(stub_->CreateSubscription(c2.get(), create, &again).ok());
  EXPECT_EQ(again.subscription().id(),
            created.subscription().id());  // idempotent

  Event mine = MakeEvent("ev-mine", Request(1), common::v1::EVENT_TYPE_REQUEST_RECOGNISED);
  mine.mutable_request()->mutable_executing_authority()->set_authority_id(kExecutor);
  Event other_type = MakeEvent("ev-other-type", Request(1), common::v1::EVENT_TYPE_REQUEST_CLOSED);
  Event not_mine = MakeEvent("ev-not-mine", Request(2), common::v1::EVENT_TYPE_REQUEST_RECOGNISED);
  ASSERT_TRUE(Receive(mine).ok());
  ASSERT_TRUE(Receive(other_type).ok());
  ASSERT_TRUE(Receive(not_mine).ok());
  Drain();
  const int shard = sharding_.ShardFor(kExecutor);
  auto jobs = common::RunRedisCommand(*redis_, {"ZRANGE", Keys::WebhookDue(shard), "0", "-1"});
  ASSERT_EQ(jobs->elements.size(), 1u);
  EXPECT_EQ(jobs->elements[0].str, absl::StrCat(created.subscription().id(), "/ev-mine"));

  v1::ListSubscriptionsResponse list;
  auto c3 = Ctx(kExecutor);
  ASSERT_TRUE(stub_->ListSubscriptions(c3.get(), {}, &list).ok());
  ASSERT_EQ(list.subscriptions_size(), 1);
  auto c4 = Ctx(kIssuer);
  v1::DeleteSubscriptionRequest del;
  del.set_subscription_id(created.subscription().id());
  v1::DeleteSubscriptionResponse del_resp;
  EXPECT_EQ(stub_->DeleteSubscription(c4.get(), del, &del_resp).error_code(),
            grpc::StatusCode::NOT_FOUND);  // not the owner
  auto c5 = Ctx(kExecutor);
  EXPECT_TRUE(stub_->DeleteSubscription(c5.get(), del, &del_resp).ok());
  auto c6 = Ctx(kExecutor);
  ASSERT_TRUE(stub_->ListSubscriptions(c6.get(), {}, &list).ok());
  EXPECT_EQ(list.subscriptions_size(), 0);
}

TEST_F(NotificationRedisTest, ListSubscriptionsPagesCoverEverySubscriptionOnce) {
  settings_.webhook_allow_http = true;
  settings_.webhook_allow_private_addresses = true;
  settings_.webhook_allowed_ports = {9};
  StartService();
  std::set<std::string> created_ids;
  for (int i = 0; i < 7; ++i) {
    v1::CreateSubscriptionRequest create;
    create.set_request_id(absl::StrCat("page-", i));
    create.set_endpoint_uri(absl::StrCat("http://127.0.0.1:9/hook", i));
    v1::CreateSubscriptionResponse created;
    auto c = Ctx(kExecutor);
    ASSERT_TRUE(stub_->CreateSubscription(c.get(), create, &created).ok());
    created_ids.insert(created.subscription().id());
  }
  std::vector<std::string> listed;
  v1::ListSubscriptionsRequest req;
  req.set_page_size(3);
  int pages = 0;
  std::string first_token;
  do {
    v1::ListSubscriptionsResponse page;
    auto c = Ctx(kExecutor);
    ASSERT_TRUE(stub_->ListSubscriptions(c.get(), req, &page).ok());
    EXPECT_LE(page.subscriptions_size(), 3);
    for (const auto& sub : page.subscriptions()) listed.push_back(sub.id());
    if (first_token.empty()) first_token = page.next_page_token();
    req.set_page_token(page.next_page_token());
    ++pages;
  } while (!req.page_token().empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), created_ids);
  EXPECT_EQ(listed.size(), created_ids.size());  // no duplicates

  // Another caller's token, and a tampered one, are refused naming page_token.
  for (const auto& [caller, token] : std::vector<std::pair<std::string, std::string>>{
           {kIssuer, first_token}, {kExecutor, "x" + first_token}}) {
    v1::ListSubscriptionsRequest bad;
    bad.set_page_token(token);
    v1::ListSubscriptionsResponse page;
    auto c = Ctx(caller);
    grpc::Status st = stub_->ListSubscriptions(c.get(), bad, &page);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << caller;
    EXPECT_THAT(st.error_message(), ::testing::HasSubstr("page_token")) << caller;
  }
}

TEST_F(NotificationRedisTest, EndpointOnPrivateAddressOrPlainHttpIsRefusedByDefault) {
  StartService();  // production-like defaults: https only, no private addresses
  for (const char* uri :
       {"https://127.0.0.1/hook", "https://169.254.169.254/latest", "https://10.0.0.5/hook",
        "http://hooks.example.org/hook", "https://[::127.0.0.1]/hook",
        "https://[::ffff:0:a00:5]/hook", "https://[64:ff9b::a9fe:a9fe]/hook",
        "https://[2002:a00:5::1]/hook", "https://[fec0::1]/hook", "https://198.18.0.1/hook",
        "https://hooks.example.org:8443/hook"}) {
    v1::CreateSubscriptionRequest create;
    create.set_endpoint_uri(uri);
    v1::CreateSubscriptionResponse created;
    auto c = Ctx(kExecutor);
    EXPECT_EQ(stub_->CreateSubscription(c.get(), create, &created).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT)
        << uri;
  }
}

TEST_F(NotificationRedisTest, SlowConsumerWithTinyBufferStillGetsEverythingInOrder) {
  settings_.subscriber_buffer = 2;  // the reader waits for room instead of reading ahead
  StartService();
  for (int i = 1; i <= 40; ++i) {
    ASSERT_TRUE(Receive(MakeEvent(absl::StrCat("ev-", 100 + i), Request(0))).ok());
  }
  Drain();
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  req.set_start_position(v1::START_POSITION_OLDEST);
  auto reader = stub_->Subscribe(ctx.get(), req);
  auto got = ReadN(*reader, 40);
  ASSERT_EQ(got.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(got[i].event().event_id(), absl::StrCat("ev-", 101 + i));
  ctx->TryCancel();
}

TEST_F(NotificationRedisTest, StreamsBeyondTheLimitAreRefused) {
  settings_.max_subscribers = 1;
  settings_.heartbeat_interval = absl::Milliseconds(100);
  StartService();
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  auto first = stub_->Subscribe(ctx.get(), req);
  v1::SubscribeResponse r;
  ASSERT_TRUE(first->Read(&r));  // the first stream is open (a heartbeat came)
  auto ctx2 = Ctx(kExecutor);
  auto second = stub_->Subscribe(ctx2.get(), req);
  EXPECT_FALSE(second->Read(&r));
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ctx->TryCancel();
}

// The fan-out delivers a batch with all its scripts in flight at once, yet a failed
// delivery still holds back what must follow it: only the prefix of entries before it is
// acknowledged, and a later entry for the same inbox is refused until the failed one is in.
TEST_F(NotificationRedisTest, FailedDeliveryInBatchAcknowledgesOnlyThePrefixAndKeepsInboxOrder) {
  StartService();
  constexpr char kOther[] = "DE-AG-MUENCHEN";
  const int shard = 0;
  const std::string stream = Keys::Fanout(shard);
  auto add = [&](const std::string& id, const std::string& to) {
    const std::string pb = MakeEvent(id, Request(0)).SerializeAsString();
    ASSERT_TRUE(
        common::RunRedisCommand(*redis_, {"XADD", stream, "*", "ev", pb, "to", to, "acc",
                                          absl::StrCat(absl::ToUnixMillis(clock_.Now())), "kind",
                                          "n", "st", ",FR,", "inst", "1", "typ", "1"})
            .ok());
  };
  add("ev-1", absl::StrCat(kIssuer, "@FR"));
  add("ev-2", absl::StrCat(kOther, "@DE"));
  add("ev-3", absl::StrCat(kOther, "@DE"));
  add("ev-4", absl::StrCat(kIssuer, "@FR"));
  // The other authority's inbox cannot take anything: ev-2's delivery fails.
  const std::string other_inbox = Keys::Inbox(sharding_.ShardFor(kOther), kOther);
  ASSERT_TRUE(common::RunRedisCommand(*redis_, {"SET", other_inbox, "not a stream"}).ok());
  auto inbox_events = [&](const std::string& authority) {
    std::vector<std::string> out;
    auto all = common::RunRedisCommand(
        *redis_, {"XRANGE", Keys::Inbox(sharding_.ShardFor(authority), authority), "-", "+"});
    if (!all.ok()) return out;
    for (const auto& entry : all->elements) {
      const auto& f = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < f.size(); i += 2) {
        Event e;
        if (f[i].str == "ev" && e.ParseFromString(f[i + 1].str)) out.push_back(e.event_id());
      }
    }
    return out;
  };
  auto pending = [&] {
    return common::RunRedisCommand(*redis_, {"XPENDING", stream, "fanout"})->elements[0].integer;
  };

  EXPECT_EQ(fanout_->RunOnce(), 1);  // ev-1 only
  EXPECT_THAT(inbox_events(kIssuer), ::testing::ElementsAre("ev-1", "ev-4"));
  EXPECT_EQ(common::RunRedisCommand(*redis_, {"XLEN", stream})->integer, 3);  // ev-1 deleted
  EXPECT_EQ(pending(), 3);  // ev-2 failed; ev-3 (blocked behind it) and ev-4 wait for it

  // The inbox recovers: the retry delivers ev-2 then ev-3, and ev-4 once only.
  ASSERT_TRUE(common::RunRedisCommand(*redis_, {"DEL", other_inbox}).ok());
  EXPECT_EQ(fanout_->RunOnce(), 3);
  EXPECT_THAT(inbox_events(kOther), ::testing::ElementsAre("ev-2", "ev-3"));
  EXPECT_THAT(inbox_events(kIssuer), ::testing::ElementsAre("ev-1", "ev-4"));
  EXPECT_EQ(common::RunRedisCommand(*redis_, {"XLEN", stream})->integer, 0);
  EXPECT_EQ(pending(), 0);
}

// Counts the fan-out's inbox deliveries (script runs) and its reads of owners'
// subscriptions (SMEMBERS) on their way to Redis.
class CountingRedisClient final : public common::RedisClient {
 public:
  explicit CountingRedisClient(common::RedisClient& inner) : inner_(inner) {}
  void Command(std::vector<std::string> args, common::RedisCallback done) override {
    if (!args.empty() && args[0] == "SMEMBERS") ++reads_;
    inner_.Command(std::move(args), std::move(done));
  }
  void Eval(const common::LuaScript& script, std::vector<std::string> keys,
            std::vector<std::string> args, common::RedisCallback done) override {
    if (script.source().find("-- Delivers one notification into an authority's inbox") !=
        std::string::npos) {
      ++deliveries_;
    }
    inner_.Eval(script, std::move(keys), std::move(args), std::move(done));
  }
  // {deliveries, reads} since the last call.
  std::pair<int, int> Take() { return {deliveries_.exchange(0), reads_.exchange(0)}; }

 private:
  common::RedisClient& inner_;
  std::atomic<int> deliveries_{0};
  std::atomic<int> reads_{0};
};

// Issue 17's budget: a delivery into an inbox is one round trip, as it was when the script
// filtered the owner's subscriptions itself. The fan-out filters them in C++ from what it
// knows of the owner; a change of the owner's subscriptions costs one retry (and a read when
// one was added), and a webhook job goes to matching subscriptions only.
TEST_F(NotificationRedisTest, InboxDeliveryTakesOneRoundTripOnceTheOwnersSubscriptionsAreKnown) {
  StartService();
  CountingRedisClient counting(*redis_);
  RedisNotificationStore store(counting);
  FanoutWorker worker(store, clock_, sharding_, settings_, *metrics_);
  const int shard = sharding_.ShardFor(kIssuer);
  auto subscribe = [&](const std::string& id, const std::string& types) {
    NotificationStore::NewSubscription s;
    s.shard = shard;
    s.id = id;
    s.owner = kIssuer;
    s.owner_state = "FR";
    s.endpoint_uri = "https://hooks.example/" + id;
    s.filter.types = types;
    s.create_ms = absl::ToUnixMillis(clock_.Now());
    s.secret = "whsec_" + id;
    s.max_per_owner = 10;
    absl::Notification done;
    store_->CreateSubscription(s, [&](absl::StatusOr<NotificationStore::CreateResult> r) {
      EXPECT_TRUE(r.ok() && r->outcome == NotificationStore::CreateOutcome::kCreated);
      done.Notify();
    });
    done.WaitForNotification();
  };
  subscribe("sub-all", "");
  subscribe("sub-closed", absl::StrCat(",", common::v1::EVENT_TYPE_REQUEST_CLOSED, ","));
  // One fan-out entry to the issuer alone, then one pass.
  auto deliver = [&](const std::string& id) {
    const std::string pb = MakeEvent(id, Request(0)).SerializeAsString();
    EXPECT_TRUE(
        common::RunRedisCommand(
            *redis_,
            {"XADD", Keys::Fanout(0), "*", "ev", pb, "to", absl::StrCat(kIssuer, "@FR"), "acc",
             absl::StrCat(absl::ToUnixMillis(clock_.Now())), "kind", "n", "st", ",FR,", "inst", "1",
             "typ", absl::StrCat(common::v1::EVENT_TYPE_REQUEST_SUBMITTED)})
            .ok());
    counting.Take();
    EXPECT_EQ(worker.RunOnce(/*all=*/false), 1);
    return counting.Take();
  };
  using Trips = std::pair<int, int>;  // {deliveries, subscription reads}
  EXPECT_EQ(deliver("ev-1"), Trips(1, 1)) << "the owner's subscriptions read once";
  EXPECT_EQ(deliver("ev-2"), Trips(1, 0)) << "steady state: one round trip";
  subscribe("sub-new", "");
  EXPECT_EQ(deliver("ev-3"), Trips(2, 1)) << "a subscription added: retried after a read";
  absl::Notification deleted;
  store_->DeleteSubscription(shard, kIssuer, "sub-new",
                             [&](absl::StatusOr<NotificationStore::DeleteOutcome> r) {
                               EXPECT_TRUE(r.ok());
                               deleted.Notify();
                             });
  deleted.WaitForNotification();
  EXPECT_EQ(deliver("ev-4"), Trips(2, 0)) << "a subscription deleted: retried, nothing read";
  EXPECT_EQ(deliver("ev-5"), Trips(1, 0));

  EXPECT_THAT(InboxEvents(kIssuer), ::testing::ElementsAre("ev-1", "ev-2", "ev-3", "ev-4", "ev-5"));
  auto jobs = common::RunRedisCommand(*redis_, {"ZRANGE", Keys::WebhookDue(shard), "0", "-1"});
  ASSERT_TRUE(jobs.ok());
  std::set<std::string> queued;
  for (const auto& job : jobs->elements) queued.insert(job.str);
  EXPECT_EQ(queued, (std::set<std::string>{"sub-all/ev-1", "sub-all/ev-2", "sub-all/ev-3",
                                           "sub-new/ev-3", "sub-all/ev-4", "sub-all/ev-5"}));
}

// With the poll interval at 10 s, an event still reaches an open stream at once: the
// handler wakes the fan-out worker, which wakes the inbox's stream reader.
TEST_F(NotificationRedisTest, WakeUpsDeliverWithoutWaitingForThePollInterval) {
  settings_.poll_interval = absl::Seconds(10);
  settings_.fanout_recheck_interval = absl::Seconds(10);
  StartService();
  auto inbox_wakeups = std::make_shared<InboxWakeups>();
  fanout_->SetInboxWakeups(inbox_wakeups);
  service_->SetInboxWakeups(inbox_wakeups);
  handler_->SetFanoutWakeups(fanout_->wakeups());
  fanout_->Start();  // one pass over every shard, then idle until woken or 10 s pass

  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  req.set_start_position(v1::START_POSITION_OLDEST);
  auto reader = stub_->Subscribe(ctx.get(), req);
  for (int i = 1; i <= 2; ++i) {
    // The second time, both the worker and the stream's reader are idle.
    const auto start = Steady::now();
    const std::string id = absl::StrCat("ev-wake-", i);
    ASSERT_TRUE(Receive(MakeEvent(id, Request(i))).ok());
    auto got = ReadN(*reader, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].event().event_id(), id);
    EXPECT_LT(Steady::now() - start, std::chrono::seconds(1)) << id;
  }
  ctx->TryCancel();
}

// Issue 19 item 4: an idle Subscribe stream costs Redis nothing. Over 2 s, 50 idle streams
// send no more commands than 1 (the old streams re-read their inbox every poll interval:
// here 10 ms, 100 commands/s each).
TEST_F(NotificationRedisTest, IdleStreamsSendRedisNoCommandsWhateverTheirNumber) {
  settings_.heartbeat_interval = absl::Milliseconds(200);
  settings_.stream_recheck_interval = absl::Seconds(60);
  StartService();
  EnablePush();
  auto commands_over_two_seconds = [&](int streams) -> int64_t {
    std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
    std::vector<std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>>> readers;
    for (int i = 0; i < streams; ++i) {
      contexts.push_back(Ctx(kIssuer));
      v1::SubscribeRequest req;
      readers.push_back(stub_->Subscribe(contexts.back().get(), req));
    }
    for (auto& reader : readers) EXPECT_TRUE(AwaitHeartbeat(*reader));
    testing::CommandCounter counter(*redis_);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const int64_t commands = counter.Total();
    for (auto& ctx : contexts) ctx->TryCancel();
    return commands;
  };
  const int64_t one = commands_over_two_seconds(1);
  const int64_t fifty = commands_over_two_seconds(50);
  EXPECT_LE(one, 2) << "1 idle stream";
  EXPECT_LE(fifty, 2) << "50 idle streams";
}

// Issue 19 item 4: with the safety net at 60 s (and the poll interval too), notifications
// reach an idle stream at once, in order and once each: appends wake it.
TEST_F(NotificationRedisTest, IdleStreamIsWokenByAnAppendNotByItsSafetyNet) {
  settings_.poll_interval = absl::Seconds(60);
  settings_.heartbeat_interval = absl::Milliseconds(200);
  settings_.stream_recheck_interval = absl::Seconds(60);
  StartService();
  EnablePush();
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  auto reader = stub_->Subscribe(ctx.get(), req);
  ASSERT_TRUE(AwaitHeartbeat(*reader));
  for (int i = 1; i <= 3; ++i) {
    const auto start = Steady::now();
    const std::string id = absl::StrCat("ev-push-", i);
    ASSERT_TRUE(Receive(MakeEvent(id, Request(i))).ok());
    Drain();
    auto got = ReadN(*reader, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].event().event_id(), id);
    EXPECT_LT(Steady::now() - start, std::chrono::seconds(2)) << id;
    ASSERT_TRUE(AwaitHeartbeat(*reader)) << "idle again, nothing sent twice";
  }
  for (int i = 4; i <= 8; ++i) {
    ASSERT_TRUE(Receive(MakeEvent(absl::StrCat("ev-push-", i), Request(i))).ok());
  }
  Drain();
  auto got = ReadN(*reader, 5);
  ASSERT_EQ(got.size(), 5u);
  // In inbox order (the fan-out of different request shards may append in any order).
  const std::vector<std::string> inbox = InboxEvents(kIssuer);
  ASSERT_EQ(inbox.size(), 8u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i].event().event_id(), inbox[i + 3]);
  EXPECT_TRUE(AwaitHeartbeat(*reader)) << "nothing sent twice";
  ctx->TryCancel();
}

// Issue 19 item 4: a stream open on one replica receives at once what another replica's
// fan-out wrote into its inbox (Redis pub/sub; the safety net is 60 s).
TEST_F(NotificationRedisTest, AppendOnAnotherReplicaWakesTheStreamThroughPubSub) {
  settings_.poll_interval = absl::Seconds(60);
  settings_.heartbeat_interval = absl::Milliseconds(200);
  settings_.stream_recheck_interval = absl::Seconds(60);
  StartService();  // replica A: its handler and fan-out deliver
  fanout_->SetInboxWakeups(std::make_shared<InboxWakeups>());
  Replica& b = StartReplica();  // replica B: the stream
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  auto reader = b.stub->Subscribe(ctx.get(), req);
  ASSERT_TRUE(AwaitHeartbeat(*reader));
  for (int i = 1; i <= 3; ++i) {
    const auto start = Steady::now();
    const std::string id = absl::StrCat("ev-remote-", i);
    ASSERT_TRUE(Receive(MakeEvent(id, Request(i))).ok());
    Drain();
    auto got = ReadN(*reader, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].event().event_id(), id);
    EXPECT_LT(Steady::now() - start, std::chrono::seconds(2)) << id;
    ASSERT_TRUE(AwaitHeartbeat(*reader)) << "nothing sent twice";
  }
  ctx->TryCancel();
}

// Issue 19 item 4: after Redis restarts, the pub/sub listener subscribes again and streams
// are woken by appends as before.
TEST_F(NotificationRedisTest, StreamsAreWokenAgainAfterARedisRestart) {
  settings_.poll_interval = absl::Seconds(60);
  settings_.heartbeat_interval = absl::Milliseconds(200);
  settings_.stream_recheck_interval = absl::Seconds(60);
  StartService();
  fanout_->SetInboxWakeups(std::make_shared<InboxWakeups>());
  Replica& b = StartReplica();
  redis_server_.Stop();
  redis_server_.Start();
  ASSERT_TRUE(rogatory::testing::AwaitPong(*redis_));
  ASSERT_TRUE(rogatory::testing::AwaitPong(*b.redis));
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  while (b.listener->subscriptions() < 2 && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(b.listener->subscriptions(), 2) << "the listener did not subscribe again";
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  auto reader = b.stub->Subscribe(ctx.get(), req);
  ASSERT_TRUE(AwaitHeartbeat(*reader));
  const auto start = Steady::now();
  ASSERT_TRUE(Receive(MakeEvent("ev-after-restart", Request(1))).ok());
  Drain();
  auto got = ReadN(*reader, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event().event_id(), "ev-after-restart");
  EXPECT_LT(Steady::now() - start, std::chrono::seconds(2));
  ctx->TryCancel();
}

// Issue 16, item 10: a stream open longer than stream-max-age ends with UNAVAILABLE (which
// clients answer by subscribing again with their last cursor), after what it had to send.
TEST_F(NotificationRedisTest, StreamEndsAtItsMaximumAgeWithARetryableStatus) {
  settings_.stream_max_age = absl::Milliseconds(300);
  StartService();
  ASSERT_TRUE(Receive(MakeEvent("ev-aged", Request(1))).ok());
  Drain();
  auto ctx = Ctx(kIssuer);
  v1::SubscribeRequest req;
  req.set_start_position(v1::START_POSITION_OLDEST);
  auto reader = stub_->Subscribe(ctx.get(), req);
  auto got = ReadN(*reader, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event().event_id(), "ev-aged");
  v1::SubscribeResponse r;
  while (reader->Read(&r)) {
    EXPECT_FALSE(r.has_notification());  // heartbeats only
  }
  grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(ended.error_message(), ::testing::HasSubstr("stream-max-age"));
  // Resuming with the last cursor sends nothing twice and nothing is lost.
  ASSERT_TRUE(Receive(MakeEvent("ev-after", Request(2))).ok());
  Drain();
  auto ctx2 = Ctx(kIssuer);
  req.set_cursor(got[0].cursor());
  auto resumed = stub_->Subscribe(ctx2.get(), req);
  auto next = ReadN(*resumed, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].event().event_id(), "ev-after");
  ctx2->TryCancel();
}

// Issue 22 item 4: the deadline start reaches notification before the routing decision
// names the executing authority. The authority joins with the decision and receives the
// deadlines still running against the request, before the decision, in the same step.
TEST_F(NotificationRedisTest, DeadlineStartedBeforeRoutingReachesTheAuthorityWhenItJoins) {
  StartService();
  const std::string rq = Request(1);
  ASSERT_TRUE(Receive(MakeEvent("ev-submitted", rq)).ok());
  ASSERT_TRUE(Receive(DeadlineEvent("ev-ack-started", rq, common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                    "dl-ack"))
                  .ok());
  // Another deadline started and met before routing: no longer owed to anyone joining.
  ASSERT_TRUE(Receive(DeadlineEvent("ev-other-started", rq, common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                    "dl-other"))
                  .ok());
  ASSERT_TRUE(
      Receive(DeadlineEvent("ev-other-met", rq, common::v1::EVENT_TYPE_DEADLINE_MET, "dl-other"))
          .ok());
  // The running one was extended: its change is owed too.
  ASSERT_TRUE(Receive(DeadlineEvent("ev-ack-extended", rq, common::v1::EVENT_TYPE_DEADLINE_EXTENDED,
                                    "dl-ack"))
                  .ok());
  Drain();
  EXPECT_TRUE(InboxEvents(kExecutor).empty());  // not a party yet

  clock_.Advance(absl::Minutes(1));
  const Event routed = RoutingDecided("ev-routed", rq);
  ASSERT_TRUE(Receive(routed).ok());
  Drain();
  EXPECT_THAT(InboxEvents(kExecutor),
              ::testing::ElementsAre("ev-ack-started", "ev-ack-extended", "ev-routed"));
  EXPECT_THAT(InboxEvents(kCentral),
              ::testing::ElementsAre("ev-ack-started", "ev-ack-extended", "ev-routed"));
  EXPECT_THAT(InboxEvents(kIssuer),
              ::testing::ElementsAre("ev-submitted", "ev-ack-started", "ev-other-started",
                                     "ev-other-met", "ev-ack-extended", "ev-routed"));
  // The caught-up delivery has its evidence ("accepted" for the executing authority).
  const int shard = *sharding_.ShardOf("rq", rq);
  auto accepted = common::RunRedisCommand(
      *redis_,
      {"HEXISTS", Keys::Evidence(shard, "ev-ack-started"), absl::StrCat("1|", kExecutor, "|")});
  ASSERT_TRUE(accepted.ok());
  EXPECT_EQ(accepted->integer, 1);

  // A repeated decision reaches no one twice; a later one is not a join: no catch-up again.
  EXPECT_EQ(*Receive(routed), common::EventHandler::Outcome::kDuplicate);
  ASSERT_TRUE(Receive(RoutingDecided("ev-routed-again", rq)).ok());
  Drain();
  EXPECT_THAT(InboxEvents(kExecutor), ::testing::ElementsAre("ev-ack-started", "ev-ack-extended",
                                                             "ev-routed", "ev-routed-again"));
  // Once met, a deadline is not owed to a party joining later (another executing authority
  // after a new routing decision).
  ASSERT_TRUE(
      Receive(DeadlineEvent("ev-ack-met", rq, common::v1::EVENT_TYPE_DEADLINE_MET, "dl-ack")).ok());
  Event rerouted = RoutingDecided("ev-rerouted", rq);
  rerouted.mutable_routing_decided()->mutable_competent_authority()->set_authority_id(
      "DE-STA-MUENCHEN");
  ASSERT_TRUE(Receive(rerouted).ok());
  Drain();
  EXPECT_THAT(InboxEvents("DE-STA-MUENCHEN"), ::testing::ElementsAre("ev-rerouted"));
}

// The reverse order: the authority is a party when the deadline starts and is told once.
TEST_F(NotificationRedisTest, DeadlineStartedAfterRoutingReachesTheAuthorityOnce) {
  StartService();
  const std::string rq = Request(2);
  ASSERT_TRUE(Receive(MakeEvent("ev-submitted", rq)).ok());
  ASSERT_TRUE(Receive(RoutingDecided("ev-routed", rq)).ok());
  Drain();
  ASSERT_TRUE(Receive(DeadlineEvent("ev-ack-started", rq, common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                    "dl-ack"))
                  .ok());
  Drain();
  EXPECT_THAT(InboxEvents(kExecutor), ::testing::ElementsAre("ev-routed", "ev-ack-started"));
  EXPECT_THAT(InboxEvents(kCentral), ::testing::ElementsAre("ev-routed", "ev-ack-started"));
  EXPECT_THAT(InboxEvents(kIssuer),
              ::testing::ElementsAre("ev-submitted", "ev-routed", "ev-ack-started"));
}

// Both orders without a drain in between: the catch-up entries and the decision's entry are
// in one fan-out batch and reach the inbox in order.
TEST_F(NotificationRedisTest, CatchUpKeepsInboxOrderWithinOneFanoutBatch) {
  StartService();
  const std::string rq = Request(3);
  ASSERT_TRUE(Receive(MakeEvent("ev-submitted", rq)).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        Receive(DeadlineEvent(absl::StrCat("ev-started-", i), rq,
                              common::v1::EVENT_TYPE_DEADLINE_STARTED, absl::StrCat("dl-", i)))
            .ok());
  }
  ASSERT_TRUE(Receive(RoutingDecided("ev-routed", rq)).ok());
  ASSERT_TRUE(
      Receive(DeadlineEvent("ev-started-5", rq, common::v1::EVENT_TYPE_DEADLINE_STARTED, "dl-5"))
          .ok());
  Drain();
  EXPECT_THAT(InboxEvents(kExecutor),
              ::testing::ElementsAre("ev-started-0", "ev-started-1", "ev-started-2", "ev-started-3",
                                     "ev-started-4", "ev-routed", "ev-started-5"));
}

// A production order (Reg. 2023/1543): routing names the enforcing state's authority as
// notified_authority (Art 8). It joins the request's parties with the decision: it receives
// the running deadlines' catch-up, the decision and every later event, and reads the
// evidence of the request's deliveries (the executing side's read rights).
TEST_F(NotificationRedisTest, NotifiedAuthorityOfRoutingDecisionIsAPartyAndIsCaughtUp) {
  StartService();
  const std::string rq = Request(4);
  const std::string enforcing = "IE-EPOC-ENFORCING-AUTHORITY";
  ASSERT_TRUE(Receive(MakeEvent("ev-submitted", rq)).ok());
  ASSERT_TRUE(Receive(DeadlineEvent("ev-epoc-started", rq, common::v1::EVENT_TYPE_DEADLINE_STARTED,
                                    "dl-epoc"))
                  .ok());
  Drain();
  Event routed = RoutingDecided("ev-routed", rq);
  auto* notified = routed.mutable_routing_decided()->mutable_notified_authority();
  notified->set_authority_id(enforcing);
  notified->set_state("IE");
  ASSERT_TRUE(Receive(routed).ok());
  ASSERT_TRUE(Receive(MakeEvent("ev-sent", rq, common::v1::EVENT_TYPE_SENT_TO_PROVIDER)).ok());
  Drain();
  EXPECT_THAT(InboxEvents(enforcing),
              ::testing::ElementsAre("ev-epoc-started", "ev-routed", "ev-sent"));
  EXPECT_THAT(InboxEvents(kExecutor),
              ::testing::ElementsAre("ev-epoc-started", "ev-routed", "ev-sent"));

  // Its delivery evidence, and the request's, are its to read.
  auto c = Ctx(enforcing);
  v1::GetDeliveryStatusRequest q;
  q.set_request_id(rq);
  v1::GetDeliveryStatusResponse status;
  ASSERT_TRUE(stub_->GetDeliveryStatus(c.get(), q, &status).ok());
  bool told = false, others = false;
  for (const auto& ev : status.evidences()) {
    if (ev.recipient().authority_id() == enforcing && ev.event_id() == "ev-sent") told = true;
    if (ev.recipient().authority_id() == kIssuer) others = true;
  }
  EXPECT_TRUE(told);
  EXPECT_TRUE(others);
  // A stranger does not.
  auto stranger = Ctx("IE-SOMEONE-ELSE");
  v1::GetDeliveryStatusResponse none;
  EXPECT_EQ(stub_->GetDeliveryStatus(stranger.get(), q, &none).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Records the webhooks posted and answers 204.
class RecordingTransport final : public WebhookTransport {
 public:
  WebhookResult Post(const WebhookPost& post) override {
    absl::MutexLock lock(&mu_);
    uris_.push_back(post.uri);
    return {204, "http_2xx"};
  }
  int posted() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(uris_.size());
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> uris_;
};

// Issue 19 item 1: a webhook queue with no job costs Redis nothing between its safety-net
// passes (the old poller: one ZRANGEBYSCORE per shard every poll interval, ~160 commands/s
// with 16 shards at 100 ms).
TEST_F(NotificationRedisTest, IdleWebhookDispatcherSendsNoCommandsBetweenItsSafetyNets) {
  settings_.webhook_recheck_interval = absl::Seconds(5);
  metrics_ = std::make_unique<NotificationMetrics>(registry_);
  RecordingTransport transport;
  WebhookDispatcher dispatcher(*redis_, clock_, sharding_, settings_, *metrics_, transport);
  dispatcher.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its first pass
  testing::CommandCounter commands(*redis_);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(commands.Total(), 0);
}

// Issue 19 item 1: with its safety net at 60 s, a webhook job the fan-out enqueues is posted
// at once: the delivery wakes the dispatcher's shard.
TEST_F(NotificationRedisTest, WebhookJobIsPostedAtOnceAlthoughTheSafetyNetIs60s) {
  settings_.webhook_allow_http = true;
  settings_.webhook_allow_private_addresses = true;
  settings_.webhook_allowed_ports = {9};
  settings_.webhook_recheck_interval = absl::Seconds(60);
  settings_.poll_interval = absl::Seconds(60);  // what the old poller waited between passes
  settings_.fanout_recheck_interval = absl::Seconds(60);
  StartService();
  RecordingTransport transport;
  WebhookDispatcher dispatcher(*redis_, clock_, sharding_, settings_, *metrics_, transport);
  fanout_->SetWebhookWakeups(dispatcher.wakeups());
  dispatcher.Start();
  v1::CreateSubscriptionRequest create;
  create.set_request_id("create-1");
  create.set_endpoint_uri("http://127.0.0.1:9/hook");
  create.mutable_filter()->add_event_types(common::v1::EVENT_TYPE_REQUEST_RECOGNISED);
  v1::CreateSubscriptionResponse created;
  auto c1 = Ctx(kExecutor);
  ASSERT_TRUE(stub_->CreateSubscription(c1.get(), create, &created).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its first pass is over
  for (int round = 1; round <= 2; ++round) {
    Event mine = MakeEvent(absl::StrCat("ev-hook-", round), Request(round),
                           common::v1::EVENT_TYPE_REQUEST_RECOGNISED);
    mine.mutable_request()->mutable_executing_authority()->set_authority_id(kExecutor);
    const auto start = Steady::now();
    ASSERT_TRUE(Receive(mine).ok());
    Drain();
    while (transport.posted() < round && Steady::now() - start < std::chrono::seconds(3)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(transport.posted(), round);
    EXPECT_LT(Steady::now() - start, std::chrono::seconds(1)) << "round " << round;
  }
}

// Issue 19 item 1: an idle fan-out costs Redis (almost) nothing between its safety-net
// passes, although a retrieval timer is pending (the old worker polled every shard each
// poll interval and ran every shard's timers each second).
TEST_F(NotificationRedisTest, IdleFanoutSendsAtMostAFewCommandsBetweenItsSafetyNets) {
  settings_.fanout_recheck_interval = absl::Seconds(5);
  settings_.poll_interval = absl::Milliseconds(100);  // the old default fan-out poll
  StartService();
  handler_->SetFanoutWakeups(fanout_->wakeups());
  ASSERT_TRUE(Receive(MakeEvent("ev-idle-1", Request(1))).ok());  // a timer due in an hour
  fanout_->Start();
  const auto deadline = Steady::now() + std::chrono::seconds(10);
  while (XLen(kIssuer) < 1 && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(XLen(kIssuer), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its first pass is over
  testing::CommandCounter counter(*redis_);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_LE(counter.Total(), 3);
}

// Issue 19 item 1: with the fan-out's safety net at 60 s, an entry written by another
// process (its own store and Redis connection, nothing shared but Redis) is delivered at
// once: the store announces it on the fan-out channel, the worker's listener wakes it.
TEST_F(NotificationRedisTest, FanoutEntryOfAnotherProcessIsDeliveredAlthoughTheSafetyNetIs60s) {
  settings_.fanout_recheck_interval = absl::Seconds(60);
  settings_.poll_interval = absl::Seconds(60);
  StartService();  // this process: the handler writes the entries; its fan-out never runs
  auto other_redis = rogatory::testing::ConnectedClient(redis_server_);
  RedisNotificationStore other_store(*other_redis);
  prometheus::Registry other_registry;
  NotificationMetrics other_metrics(other_registry);
  FanoutWorker other(other_store, clock_, sharding_, settings_, other_metrics);
  other.ListenForAppends(*common::ParseRedisUrl(redis_server_.url()), other_store.publisher_id());
  auto deadline = Steady::now() + std::chrono::seconds(10);
  while (other.append_subscriptions() == 0 && Steady::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(other.append_subscriptions(), 0);
  other.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its first pass is over
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(Receive(MakeEvent(absl::StrCat("ev-other-", i), Request(i))).ok());
    deadline = Steady::now() + std::chrono::seconds(10);
    while (XLen(kIssuer) < i && Steady::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(XLen(kIssuer), i) << "not delivered within 10 s (the safety net is 60 s)";
  }
}

// Issue 19 item 1: in the same process, the handler's wake-up is enough (safety net 60 s).
TEST_F(NotificationRedisTest, FanoutEntryOfThisProcessIsDeliveredAlthoughTheSafetyNetIs60s) {
  settings_.fanout_recheck_interval = absl::Seconds(60);
  settings_.poll_interval = absl::Seconds(60);
  StartService();
  handler_->SetFanoutWakeups(fanout_->wakeups());
  fanout_->Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its first pass is over
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(Receive(MakeEvent(absl::StrCat("ev-same-", i), Request(i))).ok());
    const auto deadline = Steady::now() + std::chrono::seconds(10);
    while (XLen(kIssuer) < i && Steady::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(XLen(kIssuer), i) << "not delivered within 10 s (the safety net is 60 s)";
  }
}

}  // namespace
}  // namespace rogatory::notification
