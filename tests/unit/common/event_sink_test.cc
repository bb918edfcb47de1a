// EventSinkServiceImpl through a real in-process gRPC server, with a handler that answers
// later on its own thread: a batch's requests are handled at once, each request's events in
// order, and the answer counts the prefix of the batch that was handled.
#include "rogatory/common/event_sink.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rogatory/common/metrics.h"
#include "rogatory/common/pipeline.h"

namespace rogatory::common {
namespace {

namespace eventspb = rogatory::events::v1;

// Answers every event 20 ms later from a thread of its own; fails the events named in
// `fail`. Records the order of the calls and how many were in flight at most.
class SlowHandler final : public EventHandler {
 public:
  explicit SlowHandler(std::set<std::string> fail) : fail_(std::move(fail)) {}
  ~SlowHandler() override {
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  void Handle(const v1::Event& event, const Dedupe&,
              std::function<void(absl::StatusOr<Outcome>)> done) override {
    {
      absl::MutexLock lock(&mu_);
      order_.push_back(event.event_id());
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
      threads_.emplace_back([this, id = event.event_id(), done = std::move(done)] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        {
          absl::MutexLock lock(&mu_);
          --in_flight_;
        }
        if (fail_.count(id) > 0) return done(absl::UnavailableError("store down"));
        done(Outcome::kHandled);
      });
    }
  }
  std::vector<std::string> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }
  int max_in_flight() {
    absl::MutexLock lock(&mu_);
    return max_in_flight_;
  }

 private:
  const std::set<std::string> fail_;
  absl::Mutex mu_;
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

class EventSinkTest : public ::testing::Test {
 protected:
  void Start(std::set<std::string> fail) {
    handler_ = std::make_unique<SlowHandler>(std::move(fail));
    sink_ = std::make_unique<EventSinkServiceImpl>("tester", *handler_, pipeline_, Sharding(4),
                                                   absl::Hours(1), metrics_);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(sink_.get());
    server_ = b.BuildAndStart();
    stub_ = eventspb::EventSinkService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }
  // Event `n` of request `r` (shard 1).
  static v1::Event Event(int r, int n) {
    v1::Event e;
    e.set_event_id(absl::StrCat("e", r, "-", n));
    e.set_request_id(absl::StrCat("rq-1-01hx00000000000000000000r", r));
    e.set_type(v1::EVENT_TYPE_REQUEST_SUBMITTED);
    return e;
  }
  grpc::Status Deliver(const std::vector<v1::Event>& events, eventspb::DeliverEventsResponse* out) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-rogatory-authority", "rogatory-intake");
    ctx.AddMetadata("x-rogatory-roles", "service");
    eventspb::DeliverEventsRequest req;
    req.set_source("intake");
    for (const auto& e : events) *req.add_events() = e;
    return stub_->DeliverEvents(&ctx, req, out);
  }

  MetadataAuthenticator auth_;
  NoRateLimiter limiter_;
  LogAuditor auditor_;
  SimulatedClock clock_;
  Pipeline pipeline_{auth_, limiter_, auditor_, clock_};
  Metrics metrics_;
  std::unique_ptr<SlowHandler> handler_;
  std::unique_ptr<EventSinkServiceImpl> sink_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<eventspb::EventSinkService::Stub> stub_;
};

TEST_F(EventSinkTest, RequestsAreHandledAtOnceAndEachRequestsEventsInOrder) {
  Start({});
  std::vector<v1::Event> batch;
  for (int n = 0; n < 3; ++n) {
    for (int r = 0; r < 4; ++r) batch.push_back(Event(r, n));
  }
  eventspb::DeliverEventsResponse out;
  ASSERT_TRUE(Deliver(batch, &out).ok());
  EXPECT_EQ(out.handled_count(), 12);
  // Four requests' chains in flight together (sequential handling would show 1).
  EXPECT_EQ(handler_->max_in_flight(), 4);
  std::map<std::string, std::vector<std::string>> per_request;
  for (const std::string& id : handler_->order()) {
    per_request[id.substr(0, id.find('-'))].push_back(id);
  }
  ASSERT_EQ(per_request.size(), 4u);
  for (const auto& [r, ids] : per_request) {
    EXPECT_EQ(ids, (std::vector<std::string>{r + "-0", r + "-1", r + "-2"}));
  }
}

TEST_F(EventSinkTest, AFailureStopsItsRequestAndTheAnswerCountsThePrefix) {
  Start({"e1-1"});
  // Batch order: e0-0 e1-0 e0-1 e1-1 e0-2 e1-2; e1-1 fails, so e1-2 is never attempted.
  std::vector<v1::Event> batch;
  for (int n = 0; n < 3; ++n) {
    for (int r = 0; r < 2; ++r) batch.push_back(Event(r, n));
  }
  eventspb::DeliverEventsResponse out;
  ASSERT_TRUE(Deliver(batch, &out).ok());
  EXPECT_EQ(out.handled_count(), 3);  // e0-0 e1-0 e0-1; the relay sends e1-1 onwards again
  std::vector<std::string> order = handler_->order();
  EXPECT_EQ(std::count(order.begin(), order.end(), "e1-2"), 0);
  EXPECT_EQ(std::count(order.begin(), order.end(), "e0-2"), 1);
}

TEST_F(EventSinkTest, FirstEventFailingAnswersItsError) {
  Start({"e0-0"});
  eventspb::DeliverEventsResponse out;
  grpc::Status s = Deliver({Event(0, 0), Event(1, 0)}, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace rogatory::common
