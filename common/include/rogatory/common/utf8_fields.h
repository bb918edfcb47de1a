#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "rogatory/common/status.h"

namespace rogatory::common {

// The proto3 string fields of a serialized `type` message whose bytes are not valid UTF-8,
// the one thing that makes a well-formed message fail to parse: protobuf then refuses the
// whole message without naming the field. This walks the wire format with the descriptor
// instead (a second, lenient parse that reads string fields as bytes), recursing into
// nested messages, repeated fields and maps, and names each offending field by its path as
// the request validators do: `content.subjects[2].family_name`, a map value
// `metadata["key"]` (a map key that is not UTF-8: the map field itself), a oneof member by
// its own name. Unknown fields, proto2 strings (not checked by the parser) and anything
// after bytes that are malformed in another way are left out; at most
// FieldViolations::kMaxReported are named. Never fails: an empty result means no string
// field holds invalid UTF-8 (the message is broken in some other way).
std::vector<FieldViolation> FindInvalidUtf8Fields(const google::protobuf::Descriptor& type,
                                                  absl::string_view bytes);

}  // namespace rogatory::common
