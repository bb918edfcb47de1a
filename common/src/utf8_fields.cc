#include "rogatory/common/utf8_fields.h"

#include <cstdint>
#include <map>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/wire_format_lite.h"

namespace rogatory::common {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr char kNotUtf8[] = "is not valid UTF-8";
// Deeper messages are left unchecked (protobuf's own recursion limit is 100).
constexpr int kMaxDepth = 100;

// The check protobuf's parser applies (the same function), so the two never disagree.
bool ValidUtf8(absl::string_view s) {
  return google::protobuf::internal::IsStructurallyValidUTF8(s.data(), static_cast<int>(s.size()));
}

// Only proto3 strings are refused by the parser; proto2 ones are accepted as they are.
bool Checked(const FieldDescriptor& field) {
  return field.type() == FieldDescriptor::TYPE_STRING &&
         field.file()->syntax() == FileDescriptor::SYNTAX_PROTO3;
}

class Walker {
 public:
  std::vector<FieldViolation> Take() { return std::move(found_); }

  // Walks one message's fields in `bytes`; false once the bytes turn out malformed.
  bool Walk(const Descriptor& type, absl::string_view bytes, const std::string& prefix, int depth) {
    CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                        static_cast<int>(bytes.size()));
    std::map<int, int> seen;  // field number -> elements of a repeated field so far
    while (!Full()) {
      const uint32_t tag = in.ReadTag();
      if (tag == 0) return AtEnd(in, bytes);  // the end, or a tag that does not parse
      const FieldDescriptor* field = type.FindFieldByNumber(static_cast<int>(tag >> 3));
      if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        if (!WireFormatLite::SkipField(&in, tag)) return false;
        continue;
      }
      uint32_t length = 0;
      std::string value;
      if (!in.ReadVarint32(&length) || !in.ReadString(&value, static_cast<int>(length))) {
        return false;
      }
      if (field == nullptr) continue;  // unknown: kept as bytes by the parser
      const bool is_string = field->type() == FieldDescriptor::TYPE_STRING;
      const bool is_message = field->type() == FieldDescriptor::TYPE_MESSAGE;
      if (!is_string && !is_message) continue;  // bytes, or a packed repeated scalar
      std::string path = prefix.empty() ? field->name() : absl::StrCat(prefix, ".", field->name());
      if (field->is_map()) {
        if (!WalkMapEntry(*field->message_type(), value, path, depth)) return false;
        continue;
      }
      if (field->is_repeated()) absl::StrAppend(&path, "[", seen[field->number()]++, "]");
      if (is_string) {
        if (Checked(*field) && !ValidUtf8(value)) found_.push_back({path, kNotUtf8});
      } else if (depth < kMaxDepth) {
        if (!Walk(*field->message_type(), value, path, depth + 1)) return false;
      }
    }
    return true;
  }

 private:
  bool Full() const { return found_.size() >= FieldViolations::kMaxReported; }

  static bool AtEnd(CodedInputStream& in, absl::string_view bytes) {
    return in.CurrentPosition() == static_cast<int>(bytes.size());
  }

  // A map entry: its key (field 1) names the value (field 2) in the path, in whichever
  // order they came.
  bool WalkMapEntry(const Descriptor& entry, absl::string_view bytes, const std::string& path,
                    int depth) {
    const FieldDescriptor* key_field = entry.map_key();
    const FieldDescriptor* value_field = entry.map_value();
    std::optional<std::string> key;
    std::optional<std::string> value;
    CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                        static_cast<int>(bytes.size()));
    while (true) {
      const uint32_t tag = in.ReadTag();
      if (tag == 0) break;
      const int number = static_cast<int>(tag >> 3);
      if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        uint32_t length = 0;
        std::string read;
        if (!in.ReadVarint32(&length) || !in.ReadString(&read, static_cast<int>(length))) {
          return false;
        }
        if (number == 1) key = std::move(read);  // the last one wins, as when parsing
        if (number == 2) value = std::move(read);
        continue;
      }
      if (number == 1 && WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT) {
        uint64_t integer = 0;
        if (!in.ReadVarint64(&integer)) return false;
        key = key_field->type() == FieldDescriptor::TYPE_BOOL
                  ? std::string(integer != 0 ? "true" : "false")
                  : IntegerKey(*key_field, integer);
        continue;
      }
      if (!WireFormatLite::SkipField(&in, tag)) return false;
    }
    std::string element = path;
    if (key.has_value() && key_field->type() == FieldDescriptor::TYPE_STRING) {
      if (Checked(*key_field) && !ValidUtf8(*key)) {
        found_.push_back({path, "has a key that is not valid UTF-8"});
        return true;
      }
      absl::StrAppend(&element, "[\"", absl::CEscape(*key), "\"]");
    } else {
      absl::StrAppend(&element, "[", key.value_or(""), "]");
    }
    if (!value.has_value()) return true;
    if (value_field->type() == FieldDescriptor::TYPE_STRING) {
      if (Checked(*value_field) && !ValidUtf8(*value)) found_.push_back({element, kNotUtf8});
    } else if (value_field->type() == FieldDescriptor::TYPE_MESSAGE && depth < kMaxDepth) {
      return Walk(*value_field->message_type(), *value, element, depth + 1);
    }
    return true;
  }

  static std::string IntegerKey(const FieldDescriptor& field, uint64_t raw) {
    switch (field.type()) {
      case FieldDescriptor::TYPE_SINT32:
      case FieldDescriptor::TYPE_SINT64:
        return absl::StrCat(WireFormatLite::ZigZagDecode64(raw));
      case FieldDescriptor::TYPE_INT32:
        return absl::StrCat(static_cast<int32_t>(raw));
      case FieldDescriptor::TYPE_INT64:
        return absl::StrCat(static_cast<int64_t>(raw));
      case FieldDescriptor::TYPE_UINT32:
        return absl::StrCat(static_cast<uint32_t>(raw));
      default:
        return absl::StrCat(raw);
    }
  }

  std::vector<FieldViolation> found_;
};

}  // namespace

std::vector<FieldViolation> FindInvalidUtf8Fields(const Descriptor& type, absl::string_view bytes) {
  Walker walker;
  walker.Walk(type, bytes, "", 0);
  return walker.Take();
}

}  // namespace rogatory::common
