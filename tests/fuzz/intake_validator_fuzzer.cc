// Fuzzes intake's request validators: the first byte picks the RPC, the rest is parsed as
// its request message (bytes that do not parse are what gRPC rejects before any handler).
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "fuzz_check.h"
#include "request_validator.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace v1 = rogatory::intake::v1;
using rogatory::fuzz::CheckRejection;

namespace {

constexpr int kShards = 16;

template <typename Message, typename Validate>
void Run(const uint8_t* data, size_t size, Validate validate) {
  Message request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return;
  CheckRejection(validate(request), /*needs_violations=*/true);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t pick = data[0];
  ++data;
  --size;
  const absl::Time now = absl::FromUnixSeconds(1'790'000'000);
  switch (pick % 7) {
    case 0:
      Run<v1::SubmitRequestRequest>(
          data, size, [&](const auto& r) { return rogatory::intake::ValidateSubmit(r, now); });
      break;
    case 1:
      Run<v1::GetRequestRequest>(
          data, size, [](const auto& r) { return rogatory::intake::ValidateGet(r, kShards); });
      break;
    case 2:
      Run<v1::ListRequestsRequest>(data, size,
                                   [](const auto& r) { return rogatory::intake::ValidateList(r); });
      break;
    case 3:
      Run<v1::TransitionRequestRequest>(data, size, [](const auto& r) {
        return rogatory::intake::ValidateTransition(r, kShards);
      });
      break;
    case 4:
      Run<v1::SupplementRequestRequest>(data, size, [](const auto& r) {
        return rogatory::intake::ValidateSupplement(r, kShards);
      });
      break;
    case 5:
      Run<v1::WithdrawRequestRequest>(
          data, size, [](const auto& r) { return rogatory::intake::ValidateWithdraw(r, kShards); });
      break;
    case 6:
      Run<v1::GetRequestHistoryRequest>(
          data, size, [](const auto& r) { return rogatory::intake::ValidateHistory(r, kShards); });
      break;
  }
  return 0;
}
