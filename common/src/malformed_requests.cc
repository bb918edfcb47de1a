#include "rogatory/common/malformed_requests.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.h"
#include "grpc/byte_buffer.h"
#include "grpc/byte_buffer_reader.h"
#include "grpc/slice.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/status.h"
#include "rogatory/common/utf8_fields.h"

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

// The call whose request did not parse, while its handler is being set up on this thread,
// and its answer.
struct Malformed {
  const grpc::ServerContextBase* context = nullptr;
  absl::Status status;
};
thread_local Malformed t_malformed;

// The request message of "/pkg.Service/Method" in the generated pool; null if unknown.
const google::protobuf::Descriptor* RequestType(absl::string_view method) {
  if (!method.empty() && method[0] == '/') method.remove_prefix(1);
  std::string name(method);
  std::replace(name.begin(), name.end(), '/', '.');
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
  return m == nullptr ? nullptr : m->input_type();
}

std::string Flatten(grpc_byte_buffer* buffer) {
  std::string out;
  grpc_byte_buffer_reader reader;
  if (grpc_byte_buffer_reader_init(&reader, buffer) == 0) return out;
  grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
  out.assign(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)), GRPC_SLICE_LENGTH(slice));
  grpc_slice_unref(slice);
  grpc_byte_buffer_reader_destroy(&reader);
  return out;
}

class MalformedRequestHandler final : public MethodHandler {
 public:
  MalformedRequestHandler(std::unique_ptr<MethodHandler> inner, RpcMethod::RpcType type,
                          std::string method)
      : inner_(std::move(inner)),
        type_(type),
        method_(std::move(method)),
        request_type_(RequestType(method_)) {}

  void* Deserialize(grpc_call* call, grpc_byte_buffer* req, grpc::Status* status,
                    void** handler_data) override {
    // The inner handler consumes `req`; a copy (references to the same slices) keeps the
    // bytes for naming what did not parse.
    grpc_byte_buffer* copy =
        req != nullptr && request_type_ != nullptr ? grpc_byte_buffer_copy(req) : nullptr;
    void* request = inner_->Deserialize(call, req, status, handler_data);
    if (!status->ok()) {
      absl::Status answer = MalformedRequestError(method_, request_type_,
                                                  copy != nullptr ? Flatten(copy) : std::string());
      absl::MutexLock lock(&mu_);
      // RunHandler takes it out. A call that never reaches it (the server at its resource
      // bound) leaves an entry behind: keep the map bounded.
      if (answers_.size() >= 1024) answers_.clear();
      answers_.insert_or_assign(call, std::move(answer));
    }
    if (copy != nullptr) grpc_byte_buffer_destroy(copy);
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
    absl::Status answer;
    {
      absl::MutexLock lock(&mu_);
      auto it = answers_.find(param.call->call());
      if (it != answers_.end()) {
        answer = std::move(it->second);
        answers_.erase(it);
      }
    }
    if (answer.ok()) answer = MalformedRequestError(method_, nullptr, "");
    t_malformed = {param.server_context, std::move(answer)};
    inner_->RunHandler(HandlerParameter(param.call, param.server_context, param.request,
                                        grpc::Status::OK, param.internal_data,
                                        param.call_requester));
    const bool answered = t_malformed.context == nullptr;
    t_malformed = {};
    if (!answered) {
      Log::Error(
          "a request that did not parse reached a handler that does not call "
          "Pipeline::Admit first",
          {{"method", method_}});
    }
  }

 private:
  std::unique_ptr<MethodHandler> inner_;
  RpcMethod::RpcType type_;
  std::string method_;
  const google::protobuf::Descriptor* request_type_;  // null: not in the generated pool
  absl::Mutex mu_;
  // Answers of calls whose request did not parse, from Deserialize to RunHandler (which
  // may run on another thread).
  absl::flat_hash_map<grpc_call*, absl::Status> answers_ ABSL_GUARDED_BY(mu_);
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

std::vector<std::string> ServedMethodNames(grpc::Service& service) {
  std::vector<std::string> names;
  for (const std::unique_ptr<RpcServiceMethod>& method : service.*MemberOf(MethodsTag{})) {
    if (method != nullptr) names.emplace_back(method->name());
  }
  return names;
}

absl::Status MalformedRequestError(absl::string_view method,
                                   const google::protobuf::Descriptor* request_type,
                                   absl::string_view bytes) {
  const std::string what =
      absl::StrCat("the request is not a valid message for ", method, ": its bytes do not parse");
  std::vector<FieldViolation> found;
  if (request_type != nullptr) found = FindInvalidUtf8Fields(*request_type, bytes);
  if (found.empty()) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          what,
                          " (truncated, a wrong wire type, or invalid UTF-8 in a string "
                          "field)")),
                      v1::ERROR_REASON_MALFORMED_REQUEST);
  }
  FieldViolations violations;
  std::vector<std::string> named;
  for (FieldViolation& v : found) {
    named.push_back(absl::StrCat(v.field, ": ", v.description));
    violations.Add(std::move(v.field), std::move(v.description));
  }
  // The validators' form: the message names the fields, a google.rpc.BadRequest carries
  // them for clients.
  absl::Status status =
      absl::InvalidArgumentError(absl::StrCat(what, ": ", absl::StrJoin(named, "; ")));
  violations.ToStatus().ForEachPayload(
      [&status](absl::string_view type_url, const absl::Cord& payload) {
        status.SetPayload(type_url, payload);
      });
  return WithReason(std::move(status), v1::ERROR_REASON_MALFORMED_REQUEST,
                    {{"field", violations.violations().front().field}});
}

namespace internal {

absl::Status MalformedRequestStatus(const grpc::ServerContextBase& context) {
  if (t_malformed.context != &context) return absl::OkStatus();
  t_malformed.context = nullptr;
  return std::move(t_malformed.status);
}

}  // namespace internal
}  // namespace rogatory::common
