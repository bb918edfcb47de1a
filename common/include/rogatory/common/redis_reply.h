#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// Reading Redis replies into typed values: the one place reply shapes are checked (issue 17,
// item 2). A store's typed call (one C++ entry point per script) parses its script's reply
// with these; a reply of another shape than the script promises is INTERNAL, naming `what`
// (the script or command, never a value), so a changed script fails loudly, not silently.

// An integer reply.
absl::StatusOr<int64_t> ReplyInteger(const RedisReply& reply, absl::string_view what);

// A bulk or status string.
absl::StatusOr<std::string> ReplyString(const RedisReply& reply, absl::string_view what);

// A bulk string, or nothing for a nil reply.
absl::StatusOr<std::optional<std::string>> ReplyOptionalString(const RedisReply& reply,
                                                               absl::string_view what);

// An array of strings (nil elements read as empty strings).
absl::StatusOr<std::vector<std::string>> ReplyStrings(const RedisReply& reply,
                                                      absl::string_view what);

// An array of field, value, field, value... (HGETALL, XRANGE entries, a script's flat
// table) as a map. An odd-length array is INTERNAL.
absl::StatusOr<std::map<std::string, std::string>> ReplyFields(const RedisReply& reply,
                                                               absl::string_view what);

// An array reply's elements; INTERNAL for anything else.
absl::StatusOr<const std::vector<RedisReply>*> ReplyArray(const RedisReply& reply,
                                                          absl::string_view what);

// A decimal integer held in a string field (a hash field, an argument echoed back).
absl::StatusOr<int64_t> ParseDecimal(absl::string_view text, absl::string_view what);

}  // namespace rogatory::common
