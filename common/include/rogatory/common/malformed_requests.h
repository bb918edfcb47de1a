#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/server_context.h"

namespace rogatory::common {

// gRPC 1.51's callback API answers a request whose bytes do not parse as the method's
// request message (truncated, a wrong wire type, invalid UTF-8 in a proto3 string field)
// with UNIMPLEMENTED and no message, before any handler runs. This rewrites that for every
// unary and server-streaming callback method of `service` (call before the service is
// registered with a ServerBuilder): the method's own handler runs with an empty request,
// and Pipeline::Admit, which every handler calls first and synchronously, answers
// INVALID_ARGUMENT after authenticating the caller (so the call is also limited and
// audited like any other). When the bytes are a well-formed message whose only fault is
// invalid UTF-8 in string fields, the answer names those fields (see
// MalformedRequestError). Other methods (sync, async, client or bidi streaming) are left
// alone.
void AnswerMalformedRequestsWithInvalidArgument(grpc::Service& service);

// The INVALID_ARGUMENT a request of `method` ("/pkg.Service/Method") answers when `bytes`
// do not parse as `request_type` (null: unknown). It says the bytes do not parse and, if
// string fields hold invalid UTF-8 (FindInvalidUtf8Fields), names each field path in the
// message and in a google.rpc.BadRequest payload, as FieldViolations does.
absl::Status MalformedRequestError(absl::string_view method,
                                   const google::protobuf::Descriptor* request_type,
                                   absl::string_view bytes);

// The full names ("/pkg.Service/Method") of the methods `service` serves. (Here because it
// reads the same private member of grpc::Service as the rewrite above.)
std::vector<std::string> ServedMethodNames(grpc::Service& service);

namespace internal {
// INVALID_ARGUMENT when the request of the call being set up on this thread for `context`
// did not parse; OK otherwise. Pipeline::Admit calls it.
absl::Status MalformedRequestStatus(const grpc::ServerContextBase& context);
}  // namespace internal

}  // namespace rogatory::common
