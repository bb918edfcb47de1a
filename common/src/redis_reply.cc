#include "rogatory/common/redis_reply.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rogatory::common {
namespace {

const char* TypeName(RedisReply::Type type) {
  switch (type) {
    case RedisReply::Type::kNil:
      return "nil";
    case RedisReply::Type::kString:
      return "string";
    case RedisReply::Type::kStatus:
      return "status";
    case RedisReply::Type::kInteger:
      return "integer";
    case RedisReply::Type::kArray:
      return "array";
  }
  return "unknown";
}

absl::Status Unexpected(const RedisReply& reply, absl::string_view what,
                        absl::string_view expected) {
  return absl::InternalError(absl::StrCat(what, ": Redis answered a ", TypeName(reply.type),
                                          " where ", expected, " was expected"));
}

}  // namespace

absl::StatusOr<int64_t> ReplyInteger(const RedisReply& reply, absl::string_view what) {
  if (reply.type != RedisReply::Type::kInteger) return Unexpected(reply, what, "an integer");
  return reply.integer;
}

absl::StatusOr<std::string> ReplyString(const RedisReply& reply, absl::string_view what) {
  if (reply.type != RedisReply::Type::kString && reply.type != RedisReply::Type::kStatus) {
    return Unexpected(reply, what, "a string");
  }
  return reply.str;
}

absl::StatusOr<std::optional<std::string>> ReplyOptionalString(const RedisReply& reply,
                                                               absl::string_view what) {
  if (reply.is_nil()) return std::optional<std::string>();
  auto text = ReplyString(reply, what);
  if (!text.ok()) return text.status();
  return std::optional<std::string>(*std::move(text));
}

absl::StatusOr<const std::vector<RedisReply>*> ReplyArray(const RedisReply& reply,
                                                          absl::string_view what) {
  if (reply.type != RedisReply::Type::kArray) return Unexpected(reply, what, "an array");
  return &reply.elements;
}

absl::StatusOr<std::vector<std::string>> ReplyStrings(const RedisReply& reply,
                                                      absl::string_view what) {
  auto elements = ReplyArray(reply, what);
  if (!elements.ok()) return elements.status();
  std::vector<std::string> out;
  out.reserve((*elements)->size());
  for (const RedisReply& element : **elements) {
    if (element.is_nil()) {
      out.emplace_back();
      continue;
    }
    auto text = ReplyString(element, what);
    if (!text.ok()) return text.status();
    out.push_back(*std::move(text));
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ReplyFields(const RedisReply& reply,
                                                               absl::string_view what) {
  auto strings = ReplyStrings(reply, what);
  if (!strings.ok()) return strings.status();
  if (strings->size() % 2 != 0) {
    return absl::InternalError(
        absl::StrCat(what, ": Redis answered an odd number of field/value elements"));
  }
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < strings->size(); i += 2) {
    out[(*strings)[i]] = std::move((*strings)[i + 1]);
  }
  return out;
}

absl::StatusOr<int64_t> ParseDecimal(absl::string_view text, absl::string_view what) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InternalError(absl::StrCat(what, ": not a decimal integer"));
  }
  return value;
}

}  // namespace rogatory::common
