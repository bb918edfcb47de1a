#include "load_generator.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace rogatory::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "OTHER";
  }
}

// Shared by the starting thread and the completion callbacks (which may outlive RunLoad's
// wait if the drain times out: they hold it by shared_ptr).
struct RunState {
  LatencyRecorder recorder;
  SteadyClock::time_point measure_from;
  SteadyClock::time_point measure_until;
  absl::Mutex mu;
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  int free_slots ABSL_GUARDED_BY(mu) = 0;  // closed loop: calls to start

  bool Measured(SteadyClock::time_point due) const {
    return due >= measure_from && due < measure_until;
  }
};

void StartOne(const std::shared_ptr<RunState>& state, CallSource& source,
              SteadyClock::time_point due, bool closed_loop) {
  {
    absl::MutexLock lock(&state->mu);
    ++state->in_flight;
  }
  source.Start([state, due, closed_loop](const grpc::Status& status) {
    const auto end = SteadyClock::now();
    if (state->Measured(due)) {
      if (status.ok()) {
        state->recorder.RecordOk(absl::FromChrono(end - due));
      } else {
        state->recorder.RecordError(CodeName(status.error_code()));
      }
    }
    absl::MutexLock lock(&state->mu);
    --state->in_flight;
    if (closed_loop) ++state->free_slots;
  });
}

}  // namespace

LatencySummary RunLoad(const LoadOptions& options, CallSource& source) {
  auto state = std::make_shared<RunState>();
  const auto begin = SteadyClock::now();
  state->measure_from = begin + absl::ToChronoNanoseconds(options.warmup);
  state->measure_until = state->measure_from + absl::ToChronoNanoseconds(options.duration);
  const bool closed = options.mode == LoadOptions::Mode::kClosed;

  if (closed) {
    // Completions free a slot; this thread starts the next call. Starting from this one
    // thread (not from the completion callbacks) keeps an inline failure from recursing.
    {
      absl::MutexLock lock(&state->mu);
      state->free_slots = options.concurrency;
    }
    while (true) {
      int to_start = 0;
      {
        absl::MutexLock lock(&state->mu);
        auto ready = [&state]()
                         ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) { return state->free_slots > 0; };
        state->mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(10));
        to_start = state->free_slots;
        state->free_slots = 0;
      }
      if (SteadyClock::now() >= state->measure_until) break;
      for (int i = 0; i < to_start; ++i) StartOne(state, source, SteadyClock::now(), true);
    }
  } else {
    // Call i is due at begin + i / rate; every due call is started, late or not.
    const double interval_ns = 1e9 / options.rate;
    int64_t i = 0;
    while (true) {
      const auto due = begin + std::chrono::nanoseconds(static_cast<int64_t>(i * interval_ns));
      if (due >= state->measure_until) break;
      const auto now = SteadyClock::now();
      if (due > now) {
        const auto wait = due - now;
        if (wait > std::chrono::microseconds(200)) {
          std::this_thread::sleep_for(wait - std::chrono::microseconds(100));
        } else {
          std::this_thread::yield();
        }
        continue;
      }
      bool room = true;
      {
        absl::MutexLock lock(&state->mu);
        room = state->in_flight < options.max_outstanding;
      }
      if (room) {
        StartOne(state, source, due, false);
      } else if (state->Measured(due)) {
        state->recorder.RecordDropped();
      }
      ++i;
    }
  }

  // Drain: wait for the calls still in flight.
  {
    absl::MutexLock lock(&state->mu);
    auto drained = [&state]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) { return state->in_flight == 0; };
    state->mu.AwaitWithTimeout(absl::Condition(&drained), options.drain_timeout);
  }
  return state->recorder.Summarize(options.duration);
}

}  // namespace rogatory::bench
