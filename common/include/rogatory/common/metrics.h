#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/client_interceptor.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "rogatory/common/clock.h"

namespace rogatory::common {

// The grpc_service and grpc_method label value of calls to methods not served.
inline constexpr char kUnknownMethodLabel[] = "unknown";

// The label value naming a service that emitted events: its event name if it is one of
// Rogatory's services ("intake", "routing", "deadlines", "notification"), else "other",
// so that a sender's text never becomes a series of its own.
std::string EventSourceLabel(absl::string_view source);

// A service's Prometheus registry, served on its own port at /metrics, with process metrics
// (CPU, memory, open files) and the standard gRPC server and client metrics
// (grpc_server_started_total, grpc_server_handled_total, grpc_server_handling_seconds and
// their grpc_client_* counterparts) for every method.
class Metrics {
 public:
  // A registry that is not served (tests).
  Metrics();
  // Serves the registry at http://<listen_address>/metrics. Fails if the port is taken.
  static absl::StatusOr<std::unique_ptr<Metrics>> Serve(const std::string& listen_address);
  ~Metrics();

  prometheus::Registry& registry() { return *registry_; }
  const std::shared_ptr<prometheus::Registry>& shared_registry() const { return registry_; }

  // Interceptor factories that record the gRPC metrics into this registry. The factories
  // must not outlive this object. Label values are bounded: a call to a method outside
  // `served_methods` ("/pkg.Service/Method", the methods the server serves) is recorded
  // with grpc_service="unknown" and grpc_method="unknown" (kUnknownMethodLabel), so that no
  // caller can create series at will. Without `served_methods`, and on the client side,
  // the known methods are those of the protobuf services compiled into the binary. Calls
  // are timed with `clock`'s monotonic reading; it must outlive the factories.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewServerInterceptorFactory(const Clock& clock, const std::vector<std::string>& served_methods);
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewServerInterceptorFactory(const Clock& clock);
  std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
  NewClientInterceptorFactory(const Clock& clock);

  // The text exposition of everything registered (what /metrics serves).
  std::string Render() const;

  struct GrpcFamilies;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::unique_ptr<GrpcFamilies> server_;
  std::unique_ptr<GrpcFamilies> client_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

// Process metrics read from /proc/self, as the Prometheus client libraries name them.
std::shared_ptr<prometheus::Collectable> NewProcessCollector();

}  // namespace rogatory::common
