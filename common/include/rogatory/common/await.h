#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace rogatory::common {

// Starts an asynchronous call and blocks until its callback has answered, then returns the
// answer: `start` receives the callback (taking one T) and passes it to the call. For
// background threads only: never on a gRPC callback thread or in a Redis callback, whose
// thread the answer needs.
//
// The shared state lives on the heap and the callback holds it: the waiting thread may
// return (and its stack be reused) while the answering thread is still inside the callback,
// and an answer after the first is ignored in live memory. (A stack absl::Notification
// here crashed services under Redis timeouts: Notify() can still touch its mutex after the
// waiter has seen the flag and returned.)
template <typename T, typename Start>
T AwaitCallback(Start&& start) {
  struct State {
    absl::Mutex mu;
    std::optional<T> answer ABSL_GUARDED_BY(mu);
    bool answered() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return answer.has_value(); }
  };
  auto state = std::make_shared<State>();
  std::forward<Start>(start)([state](T value) {
    absl::MutexLock lock(&state->mu);
    if (!state->answer.has_value()) state->answer.emplace(std::move(value));
  });
  absl::MutexLock lock(&state->mu);
  state->mu.Await(absl::Condition(state.get(), &State::answered));
  return std::move(*state->answer);
}

}  // namespace rogatory::common
