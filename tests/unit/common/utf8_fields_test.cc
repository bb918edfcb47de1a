// Naming the string fields that hold invalid UTF-8 in request bytes that do not parse
// (issue 22, item 10): nested messages, repeated fields, maps and oneofs.
#include "rogatory/common/utf8_fields.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "rogatory/common/malformed_requests.h"
#include "rogatory/common/status.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace v1 = rogatory::intake::v1;

// A valid UTF-8 placeholder, replaced in the serialized bytes by as many bytes that are not
// UTF-8 (protobuf would not serialize them without complaint).
constexpr char kMark[] = "@@bad@@";
const std::string kInvalid("\xff\xfe\xc0\x80\xed\xa0\x80", 7);  // lone bytes, overlong, surrogate

std::string Corrupt(const google::protobuf::Message& message) {
  std::string bytes = message.SerializeAsString();
  const std::string mark(kMark);
  for (size_t at = bytes.find(mark); at != std::string::npos; at = bytes.find(mark, at)) {
    bytes.replace(at, mark.size(), kInvalid);
  }
  return bytes;
}

std::vector<std::string> Paths(const google::protobuf::Message& message) {
  std::string bytes = Corrupt(message);
  std::vector<std::string> out;
  for (const FieldViolation& v : FindInvalidUtf8Fields(*message.GetDescriptor(), bytes)) {
    out.push_back(v.field);
  }
  return out;
}

v1::SubmitRequestRequest Submit() {
  v1::SubmitRequestRequest r;
  r.set_request_id("key-1");
  auto* content = r.mutable_content();
  content->set_requested_state("DE");
  for (int i = 0; i < 3; ++i) {
    auto* subject = content->add_subjects();
    subject->set_family_name("Dupont");
    subject->add_nationalities("FR");
    subject->add_nationalities("BE");
  }
  content->mutable_eio()->set_deadline_reason("urgent");
  return r;
}

TEST(Utf8FieldsTest, ValidBytesNameNothing) { EXPECT_THAT(Paths(Submit()), ElementsAre()); }

TEST(Utf8FieldsTest, TopLevelField) {
  v1::SubmitRequestRequest r = Submit();
  r.set_request_id(kMark);
  EXPECT_THAT(Paths(r), ElementsAre("request_id"));
}

TEST(Utf8FieldsTest, NestedMessage) {
  v1::SubmitRequestRequest r = Submit();
  r.mutable_content()->set_requested_state(kMark);
  EXPECT_THAT(Paths(r), ElementsAre("content.requested_state"));
}

TEST(Utf8FieldsTest, RepeatedMessagesAndRepeatedStringsCarryTheirIndex) {
  v1::SubmitRequestRequest r = Submit();
  r.mutable_content()->mutable_subjects(2)->set_family_name(kMark);
  r.mutable_content()->mutable_subjects(1)->set_nationalities(1, kMark);
  EXPECT_THAT(Paths(r), ElementsAre("content.subjects[1].nationalities[1]",
                                    "content.subjects[2].family_name"));
}

TEST(Utf8FieldsTest, OneofMemberByItsOwnName) {
  v1::SubmitRequestRequest r = Submit();
  r.mutable_content()->mutable_eio()->set_deadline_reason(kMark);
  EXPECT_THAT(Paths(r), ElementsAre("content.eio.deadline_reason"));
}

TEST(Utf8FieldsTest, MapValueNamedByItsKeyAndBadKeyNamesTheMap) {
  google::rpc::ErrorInfo info;
  info.set_reason("R");
  (*info.mutable_metadata())["good"] = "fine";
  (*info.mutable_metadata())["zone"] = kMark;
  EXPECT_THAT(Paths(info), ElementsAre("metadata[\"zone\"]"));

  google::rpc::ErrorInfo bad_key;
  (*bad_key.mutable_metadata())[kMark] = "value";
  EXPECT_THAT(Paths(bad_key), ElementsAre("metadata"));
}

TEST(Utf8FieldsTest, MapEntryWithValueBeforeKey) {
  // Hand-made entry of metadata (field 3): value (2) first, then key (1).
  std::string entry;
  entry += '\x12';
  entry += static_cast<char>(kInvalid.size());
  entry += kInvalid;
  entry += "\x0a\x01k";
  std::string bytes = "\x1a";
  bytes += static_cast<char>(entry.size());
  bytes += entry;
  std::vector<std::string> paths;
  for (const auto& v : FindInvalidUtf8Fields(*google::rpc::ErrorInfo::descriptor(), bytes)) {
    paths.push_back(v.field);
  }
  EXPECT_THAT(paths, ElementsAre("metadata[\"k\"]"));
}

TEST(Utf8FieldsTest, BytesThatAreBrokenOtherwiseNameNothing) {
  v1::SubmitRequestRequest r = Submit();
  std::string bytes = r.SerializeAsString();
  bytes.resize(bytes.size() - 3);  // truncated
  EXPECT_TRUE(FindInvalidUtf8Fields(*r.GetDescriptor(), bytes).empty());
}

TEST(Utf8FieldsTest, TheParserAgreesTheseBytesDoNotParse) {
  v1::SubmitRequestRequest r = Submit();
  r.mutable_content()->mutable_subjects(0)->set_family_name(kMark);
  v1::SubmitRequestRequest parsed;
  EXPECT_FALSE(parsed.ParseFromString(Corrupt(r)));
}

TEST(MalformedRequestErrorTest, NamesTheFieldInMessageAndBadRequest) {
  v1::SubmitRequestRequest r = Submit();
  r.mutable_content()->mutable_subjects(0)->set_family_name(kMark);
  const absl::Status s = MalformedRequestError("/rogatory.intake.v1.IntakeService/SubmitRequest",
                                               r.GetDescriptor(), Corrupt(r));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("do not parse"));
  EXPECT_THAT(s.message(), HasSubstr("content.subjects[0].family_name"));
  ASSERT_EQ(GetFieldViolations(s).size(), 1u);
  EXPECT_EQ(GetFieldViolations(s)[0].field, "content.subjects[0].family_name");
}

TEST(MalformedRequestErrorTest, WithoutInvalidUtf8SaysTheBytesDoNotParse) {
  const absl::Status s = MalformedRequestError("/rogatory.intake.v1.IntakeService/SubmitRequest",
                                               v1::SubmitRequestRequest::descriptor(),
                                               std::string("\x0a\x10"
                                                           "a",
                                                           3));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("do not parse"));
  EXPECT_TRUE(GetFieldViolations(s).empty());
}

}  // namespace
}  // namespace rogatory::common
