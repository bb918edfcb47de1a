#include "rogatory/common/malformed_requests.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/byte_buffer.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {
namespace {

using grpc::internal::MethodHandler;
using grpc::internal::RpcMethod;
using grpc::internal::RpcServiceMethod;

// grpc::Service keeps its methods, and RpcServiceMethod its handler, private, and its
// protected MarkMethodCallback deletes the handler it replaces. Wrapping the generated
// handler needs both; explicit template instantiations may name private members
// ([temp.spec.general]/6), which is how this reaches them without patching gRPC. Both
// members exist unchanged in gRPC 1.51 (grpcpp/impl/service_type.h, rpc_service_method.h).
using MethodsMember = std::vector<std::unique_ptr<RpcServiceMethod>> grpc::Service::*;
using HandlerMember = std::unique_ptr<MethodHandler> RpcServiceMethod::*;
struct MethodsTag {};
struct HandlerTag {};
MethodsMember MemberOf(MethodsTag);
HandlerMember MemberOf(HandlerTag);
template <typename Tag, auto kMember>
struct PrivateMember {
  friend decltype(kMember) MemberOf(Tag) { return kMember; }
};
template struct PrivateMember<MethodsTag, &grpc::Service::methods_>;
template struct PrivateMember<HandlerTag, &RpcServiceMethod::handler_>;

// The call whose request did not parse, while its handler is being set up on this thread.
struct Malformed {
  const grpc::ServerContextBase* context = nullptr;
  const std::string* method = nullptr;
};
thread_local Malformed t_malformed;

class MalformedRequestHandler final : public MethodHandler {
 public:
  MalformedRequestHandler(std::unique_ptr<MethodHandler> inner, RpcMethod::RpcType type,
                          std::string method)
      : inner_(std::move(inner)), type_(type), method_(std::move(method)) {}

  void* Deserialize(grpc_call* call, grpc_byte_buffer* req, grpc::Status* status,
                    void** handler_data) override {
    void* request = inner_->Deserialize(call, req, status, handler_data);
    if (status->ok() || type_ != RpcMethod::SERVER_STREAMING) return request;
    // A server-streaming handler destroyed the request it could not parse and would hand
    // its reactor a null one: give it an empty message instead. `status` stays failed, so
    // RunHandler still knows. (A unary handler keeps its message holder either way.)
    // Deserialize takes the buffer over (protobuf's GenericDeserialize clears it), as it
    // does the call's own payload.
    grpc::Status empty_status;
    return inner_->Deserialize(call, grpc_raw_byte_buffer_create(nullptr, 0), &empty_status,
                               handler_data);
  }

  void RunHandler(const HandlerParameter& param) override {
    if (param.status.ok()) return inner_->RunHandler(param);
    if (type_ == RpcMethod::SERVER_STREAMING && param.request == nullptr) {
      return inner_->RunHandler(param);  // no request to run with: gRPC's own answer
    }
    // Run the method's handler as if the request had parsed; its first step,
    // Pipeline::Admit, sees the mark and answers INVALID_ARGUMENT.
    t_malformed = {param.server_context, &method_};
    inner_->RunHandler(HandlerParameter(param.call, param.server_context, param.request,
                                        grpc::Status::OK, param.internal_data,
                                        param.call_requester));
    const bool answered = t_malformed.context == nullptr;
    t_malformed = {};
    if (!answered) {
      Log::Error("a request that did not parse reached a handler that does not call "
                 "Pipeline::Admit first",
                 {{"method", method_}});
    }
  }

 private:
  std::unique_ptr<MethodHandler> inner_;
  RpcMethod::RpcType type_;
  std::string method_;
};

}  // namespace

void AnswerMalformedRequestsWithInvalidArgument(grpc::Service& service) {
  for (std::unique_ptr<RpcServiceMethod>& method : service.*MemberOf(MethodsTag{})) {
    if (method == nullptr || method->handler() == nullptr) continue;  // generic or async
    if (method->api_type() != RpcServiceMethod::ApiType::CALL_BACK) continue;
    const RpcMethod::RpcType type = method->method_type();
    if (type != RpcMethod::NORMAL_RPC && type != RpcMethod::SERVER_STREAMING) continue;
    std::unique_ptr<MethodHandler>& handler = (*method).*MemberOf(HandlerTag{});
    if (dynamic_cast<MalformedRequestHandler*>(handler.get()) != nullptr) continue;
    handler = std::make_unique<MalformedRequestHandler>(std::move(handler), type,
                                                        std::string(method->name()));
  }
}

namespace internal {

absl::Status MalformedRequestStatus(const grpc::ServerContextBase& context) {
  if (t_malformed.context != &context) return absl::OkStatus();
  const std::string method = *t_malformed.method;
  t_malformed.context = nullptr;
  return absl::InvalidArgumentError(absl::StrCat(
      "the request is not a valid message for ", method,
      ": its bytes do not parse (truncated, a wrong wire type, or invalid UTF-8 in a "
      "string field)"));
}

}  // namespace internal
}  // namespace rogatory::common
