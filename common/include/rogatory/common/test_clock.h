#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "rogatory/admin/v1/test_clock.grpc.pb.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// A clock shared by every service in development and end-to-end tests: real time plus an
// offset kept in Redis (key rg:testclock:offset, microseconds). Each process refreshes its
// copy of the offset in the background, so moving the clock through one service moves it
// for all of them within one refresh interval. The offset only grows: time never runs
// backwards.
class SharedTestClock final : public Clock {
 public:
  static constexpr char kKey[] = "rg:testclock:offset";

  SharedTestClock(RedisClient& redis, const Clock& base) : redis_(redis), base_(base) {}

  absl::Time Now() const override { return base_.Now() + offset(); }
  // The base's: moving the shared clock moves the calendar, not the time that passes.
  MonotonicTime MonotonicNow() const override { return base_.MonotonicNow(); }
  absl::Duration offset() const { return absl::Microseconds(offset_us_.load()); }
  // Observers run whenever this process learns that the offset grew (a move through any
  // service, seen at the next refresh).
  uint64_t AddMoveObserver(std::function<void()> on_move) const override {
    return observers_.Add(std::move(on_move));
  }
  void RemoveMoveObserver(uint64_t id) const override { observers_.Remove(id); }

  using OffsetDone = std::function<void(absl::StatusOr<absl::Duration>)>;
  // Reads the shared offset into this process.
  void Refresh(OffsetDone done = {});
  // Moves the shared clock forward by a positive duration.
  void Advance(absl::Duration by, OffsetDone done);
  // Moves the shared clock forward so that it reads `now`; INVALID_ARGUMENT if that is in
  // the past of the shared clock.
  void SetNow(absl::Time now, OffsetDone done);

 private:
  void Store(int64_t offset_us);

  RedisClient& redis_;
  const Clock& base_;
  std::atomic<int64_t> offset_us_{0};
  mutable MoveObservers observers_;
};

// rogatory.admin.v1.TestClockService. Every authenticated caller may read the clock
// (GetTime); only operators and Rogatory services may move it (AdvanceTime, SetTime: CheckAdmin,
// PERMISSION_DENIED for everyone else, checked before anything else about the call). With
// `clock` null (the test clock is disabled) every call it lets through answers
// FAILED_PRECONDITION.
class TestClockServiceImpl final : public rogatory::admin::v1::TestClockService::CallbackService {
 public:
  TestClockServiceImpl(SharedTestClock* clock, Pipeline& pipeline)
      : clock_(clock), pipeline_(pipeline) {}

  grpc::ServerUnaryReactor* GetTime(grpc::CallbackServerContext* context,
                                    const rogatory::admin::v1::GetTimeRequest* request,
                                    rogatory::admin::v1::GetTimeResponse* response) override;
  grpc::ServerUnaryReactor* AdvanceTime(
      grpc::CallbackServerContext* context, const rogatory::admin::v1::AdvanceTimeRequest* request,
      rogatory::admin::v1::AdvanceTimeResponse* response) override;
  grpc::ServerUnaryReactor* SetTime(grpc::CallbackServerContext* context,
                                    const rogatory::admin::v1::SetTimeRequest* request,
                                    rogatory::admin::v1::SetTimeResponse* response) override;

 private:
  absl::Status Enabled() const;
  // CheckAdmin, then Enabled.
  absl::Status MayMove(const CallContext& call) const;

  SharedTestClock* clock_;
  Pipeline& pipeline_;
};

}  // namespace rogatory::common
