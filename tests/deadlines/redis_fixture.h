#pragma once

// A real redis-server, the reference rules, a simulated clock and the deadline store,
// tracker and event handler wired on them.
#include <future>
#include <memory>

#include "absl/strings/str_cat.h"
#include "deadline_logic.h"
#include "deadline_service.h"
#include "deadline_store.h"
#include "gtest/gtest.h"
#include "redis_deadline_store.h"
#include "redis_server.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/clock.h"
#include "test_rules.h"
#include "timer_engine.h"

namespace rogatory::deadlines::testing {

inline constexpr int kShards = 4;

inline std::unique_ptr<common::RedisClient> NewClient(
    const rogatory::testing::RedisServer& server) {
  return rogatory::testing::ConnectedClient(server);
}

// Waits for an asynchronous callback's value.
template <typename T>
class Waiter {
 public:
  std::function<void(T)> Callback() {
    return [this](T value) { promise_.set_value(std::move(value)); };
  }
  T Get() { return promise_.get_future().get(); }

 private:
  std::promise<T> promise_;
};

class DeadlinesRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Start();
    redis_ = NewClient(server_);
    ASSERT_TRUE(common::RunRedisCommand(*redis_, {"PING"}).ok());
    store_ = std::make_unique<RedisDeadlineStore>(*redis_, common::Sharding(kShards));
    registry_ = std::make_unique<RulesRegistry>(ROGATORY_DEADLINES_DATA_DIR, ReferenceRules());
    tracker_ = std::make_unique<DeadlineTracker>(*store_, *registry_, clock_);
    handler_ = std::make_unique<DeadlineEventHandler>(*tracker_);
  }

  std::string RequestId(int shard) const {
    return common::Sharding::MakeId("rq", shard, clock_.Now());
  }

  absl::StatusOr<v1::Deadline> StartDeadline(const std::string& request_id,
                                             const std::string& rule_id,
                                             const std::string& state = "DE") {
    DeadlineTracker::StartRequest r;
    r.request_id = request_id;
    r.rule_id = rule_id;
    r.trigger_time = clock_.Now();
    r.requested_state = state;
    r.trace_id = "0123456789abcdef0123456789abcdef";
    Waiter<absl::StatusOr<v1::Deadline>> w;
    tracker_->Start(r, w.Callback());
    return w.Get();
  }

  absl::StatusOr<v1::Deadline> Get(const std::string& id) {
    auto s = store_->GetBlocking(id);
    if (!s.ok()) return s.status();
    return s->deadline;
  }

  absl::StatusOr<common::EventHandler::Outcome> Deliver(const common::v1::Event& e) {
    const int shard = *store_->ShardOfRequest(e.request_id());
    common::Dedupe dedupe{common::EventKeys::Seen(shard, "deadlines", e.event_id()), "600000"};
    Waiter<absl::StatusOr<common::EventHandler::Outcome>> w;
    handler_->Handle(e, dedupe, w.Callback());
    return w.Get();
  }

  // The events in the deadlines outboxes of every shard, oldest first per shard.
  std::vector<common::v1::Event> OutboxEvents() {
    std::vector<common::v1::Event> out;
    for (int s = 0; s < kShards; ++s) {
      auto r = common::RunRedisCommand(
          *redis_, {"XRANGE", common::EventKeys::Outbox(s, "deadlines"), "-", "+"});
      EXPECT_TRUE(r.ok());
      if (!r.ok()) continue;
      for (const auto& entry : r->elements) {
        const auto& fields = entry.elements[1].elements;
        for (size_t i = 0; i + 1 < fields.size(); i += 2) {
          if (fields[i].str == common::kOutboxEventField) {
            common::v1::Event e;
            EXPECT_TRUE(e.ParseFromString(fields[i + 1].str));
            out.push_back(std::move(e));
          }
        }
      }
    }
    return out;
  }

  std::vector<common::v1::Event> EventsOf(common::v1::EventType type) {
    std::vector<common::v1::Event> out;
    for (auto& e : OutboxEvents()) {
      if (e.type() == type) out.push_back(std::move(e));
    }
    return out;
  }

  rogatory::testing::RedisServer server_;
  common::SimulatedClock clock_{
      absl::FromCivil(absl::CivilSecond(2026, 3, 5, 10, 0, 0), Zone("Europe/Berlin"))};
  std::unique_ptr<common::RedisClient> redis_;
  std::unique_ptr<DeadlineStore> store_;
  std::unique_ptr<RulesRegistry> registry_;
  std::unique_ptr<DeadlineTracker> tracker_;
  std::unique_ptr<DeadlineEventHandler> handler_;
};

}  // namespace rogatory::deadlines::testing
