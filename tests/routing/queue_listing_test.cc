// A translator's queue (ListTranslationJobs with `queue`): who may list it, what a
// claimable job shows, and page tokens bound to their filters.
#include "queue_listing.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rogatory::routing {
namespace {

common::Caller WithRoles(std::vector<std::string> roles) {
  common::Caller c;
  c.authority_id = "XX-SOMEONE";
  c.state = "BE";
  c.roles = std::move(roles);
  return c;
}

TEST(QueueListAccessTest, TranslatorsListBothQueues) {
  const auto t = WithRoles({"translator"});
  EXPECT_TRUE(QueueListAccess(t, v1::TRANSLATION_JOB_QUEUE_CLAIMABLE).ok());
  EXPECT_TRUE(QueueListAccess(t, v1::TRANSLATION_JOB_QUEUE_HELD).ok());
}

TEST(QueueListAccessTest, CallersWithoutTheTranslatorRoleAreRefused) {
  for (const char* role : {"issuing", "executing", "central", "auditor"}) {
    SCOPED_TRACE(role);
    const auto c = WithRoles({role});
    EXPECT_EQ(QueueListAccess(c, v1::TRANSLATION_JOB_QUEUE_CLAIMABLE).code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(QueueListAccess(c, v1::TRANSLATION_JOB_QUEUE_HELD).code(),
              absl::StatusCode::kPermissionDenied);
  }
  EXPECT_EQ(QueueListAccess(WithRoles({}), v1::TRANSLATION_JOB_QUEUE_CLAIMABLE).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(QueueListAccessTest, OperatorsSeeTheClaimableQueueButHoldNothing) {
  const auto op = WithRoles({"operator"});
  EXPECT_TRUE(QueueListAccess(op, v1::TRANSLATION_JOB_QUEUE_CLAIMABLE).ok());
  EXPECT_EQ(QueueListAccess(op, v1::TRANSLATION_JOB_QUEUE_HELD).code(),
            absl::StatusCode::kPermissionDenied);
  common::Caller service;
  service.is_service = true;
  EXPECT_TRUE(QueueListAccess(service, v1::TRANSLATION_JOB_QUEUE_CLAIMABLE).ok());
}

TEST(ClaimableViewTest, ShowsOnlyNonPersonalMetadata) {
  v1::TranslationJob j;
  j.set_id("tj-3-abc");
  j.set_request_id("rq-3-secret");
  j.set_document_id("doc-secret");
  j.set_source_language("es");
  j.set_target_language("nl");
  j.set_status(v1::TRANSLATION_JOB_STATUS_QUEUED);
  j.set_urgency(common::v1::URGENCY_URGENT);
  j.mutable_due_time()->set_seconds(1767225600);
  j.mutable_create_time()->set_seconds(1767225000);
  j.set_attempts(2);
  j.set_failure_code("TOO_HARD");
  j.set_lease_token(7);
  const v1::TranslationJob v = ClaimableView(j);
  EXPECT_EQ(v.id(), "tj-3-abc");
  EXPECT_EQ(v.source_language(), "es");
  EXPECT_EQ(v.target_language(), "nl");
  EXPECT_EQ(v.urgency(), common::v1::URGENCY_URGENT);
  EXPECT_EQ(v.due_time().seconds(), 1767225600);
  EXPECT_TRUE(v.request_id().empty());
  EXPECT_TRUE(v.document_id().empty());
  EXPECT_EQ(v.attempts(), 0);
  EXPECT_TRUE(v.failure_code().empty());
  EXPECT_EQ(v.lease_token(), 0);
}

TEST(QueueTokenTest, RoundTripsAndIsBoundToTheFilters) {
  v1::ListTranslationJobsRequest r;
  r.set_queue(v1::TRANSLATION_JOB_QUEUE_CLAIMABLE);
  r.add_source_languages("fr");
  r.set_page_size(10);
  const std::string fp = QueueFingerprint(r);
  const std::string token = EncodeQueueToken({10000000000123, "tj-3-abc"}, fp);
  auto back = DecodeQueueToken(token, fp);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->score, 10000000000123);
  EXPECT_EQ(back->id, "tj-3-abc");
  // Page size and token are not filters.
  v1::ListTranslationJobsRequest next = r;
  next.set_page_size(20);
  next.set_page_token(token);
  EXPECT_EQ(QueueFingerprint(next), fp);
  // Other filters refuse it; so does garbage.
  v1::ListTranslationJobsRequest other = r;
  other.add_target_languages("nl");
  EXPECT_EQ(DecodeQueueToken(token, QueueFingerprint(other)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeQueueToken("7", fp).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(DecodeQueueToken("!!", fp).status().message()),
              ::testing::HasSubstr("page_token"));
}

}  // namespace
}  // namespace rogatory::routing
