// rogatory-echo: the baseline server of rogatory-bench. It is built with the same service
// platform as the four Rogatory services (ServiceMain: the same settings, authentication,
// rate limits, concurrency bound, handler pipeline, audit log, metrics, health, reflection
// and TLS) and answers EchoService.Echo with the payload it was sent, so that the
// difference between Echo and a Rogatory RPC is what Rogatory's own logic and Redis add.
#include <memory>

#include "rogatory/bench/v1/echo.grpc.pb.h"
#include "rogatory/common/platform.h"
#include "rogatory/common/status.h"

namespace rogatory::bench {
namespace {

constexpr size_t kMaxPayloadBytes = 1 << 20;

class EchoService final : public v1::EchoService::CallbackService {
 public:
  explicit EchoService(common::Pipeline& pipeline) : pipeline_(pipeline) {}

  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request,
                                 v1::EchoResponse* response) override {
    return pipeline_.Unary<v1::EchoRequest, v1::EchoResponse>(
        context, "Echo", request, response,
        [](const v1::EchoRequest& r) -> absl::Status {
          common::FieldViolations violations;
          if (r.payload().size() > kMaxPayloadBytes) violations.Add("payload", "is over 1 MiB");
          return violations.ToStatus();
        },
        [](const common::CallContext&, const v1::EchoRequest& r, v1::EchoResponse* out,
           common::Pipeline::Done done) {
          out->set_payload(r.payload());
          done(absl::OkStatus());
        });
  }

 private:
  common::Pipeline& pipeline_;
};

}  // namespace
}  // namespace rogatory::bench

int main(int argc, char** argv) {
  const rogatory::common::ServiceIdentity identity{
      "rogatory-echo",   "echo",           "rogatory.bench.v1.EchoService",
      "127.0.0.1:50060", "127.0.0.1:9110", ""};
  return rogatory::common::ServiceMain(
      identity, argc, argv, [](rogatory::common::Config&) {},
      [](rogatory::common::Platform& platform) -> absl::StatusOr<rogatory::common::ServiceParts> {
        rogatory::common::ServiceParts parts;
        parts.services.push_back(
            parts.Own(std::make_shared<rogatory::bench::EchoService>(platform.pipeline())));
        return parts;
      });
}
