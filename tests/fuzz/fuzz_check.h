#pragma once

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "rogatory/common/status.h"

namespace rogatory::fuzz {

// Fails the fuzz run (abort: libFuzzer keeps the input) with `what`.
[[noreturn]] inline void Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "fuzz contract broken: %s: %s\n", what, status.ToString().c_str());
  std::abort();
}

// A rejection must be INVALID_ARGUMENT with a message; with `needs_violations`, also with
// the google.rpc.BadRequest field violations the API promises.
inline void CheckRejection(const absl::Status& status, bool needs_violations) {
  if (status.ok()) return;
  if (status.code() != absl::StatusCode::kInvalidArgument) Fail("not INVALID_ARGUMENT", status);
  if (status.message().empty()) Fail("no message", status);
  if (needs_violations && common::GetFieldViolations(status).empty()) {
    Fail("no field violations", status);
  }
}

}  // namespace rogatory::fuzz
