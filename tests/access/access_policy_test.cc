// The one need-to-know policy (common/access.h), role by role.
#include "gtest/gtest.h"
#include "rogatory/common/access.h"

namespace rogatory::common {
namespace {

Caller Make(std::string authority, std::string state, std::vector<std::string> roles) {
  Caller c;
  c.authority_id = std::move(authority);
  c.state = std::move(state);
  c.roles = std::move(roles);
  c.is_service = c.HasRole("service");
  return c;
}

RequestParties Parties() { return {"FR-TJ-PARIS-JI", "FR", "DE-STA-MUENCHEN", "DE", ""}; }

TEST(AccessPolicyTest, ReachFollowsIssuerAddresseeCentralStateAuditorAndService) {
  const RequestParties p = Parties();
  EXPECT_EQ(ReachOf(Make("FR-TJ-PARIS-JI", "FR", {"issuing"}), p), Reach::kFull);
  EXPECT_EQ(ReachOf(Make("DE-STA-MUENCHEN", "DE", {"executing"}), p), Reach::kFull);
  EXPECT_EQ(ReachOf(Make("DE-BFJ", "DE", {"central"}), p), Reach::kFull);
  EXPECT_EQ(ReachOf(Make("FR-BEPI", "FR", {"central"}), p), Reach::kFull);
  EXPECT_EQ(ReachOf(Make("BE-PARQUET", "BE", {"issuing"}), p), Reach::kNone);
  EXPECT_EQ(ReachOf(Make("BE-SPF", "BE", {"central"}), p), Reach::kNone);
  // The state alone reaches nothing without the central role.
  EXPECT_EQ(ReachOf(Make("DE-STA-BERLIN", "DE", {"executing"}), p), Reach::kNone);
  EXPECT_EQ(ReachOf(Make("EU-AUDIT-1", "FR", {"auditor"}), p), Reach::kRead);
  EXPECT_EQ(ReachOf(Make("OPS-1", "", {"operator"}), p), Reach::kNone);
  EXPECT_EQ(ReachOf(Make("XL-1", "DE", {"translator"}), p), Reach::kNone);
  EXPECT_EQ(ReachOf(Make("rogatory-routing", "", {"service"}), p), Reach::kFull);
  // A role without an authority id reaches no request by id match.
  EXPECT_EQ(ReachOf(Make("", "", {"issuing"}), {"", "FR", "", "DE", ""}), Reach::kNone);
}

TEST(AccessPolicyTest, OutOfReachIsTheNotFoundOfAMissingRequestAndAuditorsChangeNothing) {
  CallContext call;
  call.caller = Make("BE-PARQUET", "BE", {"issuing"});
  absl::Status s = CheckRequestAccess(call, Parties(), "rq-1-X", AccessKind::kRead);
  EXPECT_EQ(s, RequestNotFound("rq-1-X"));
  EXPECT_EQ(s.message(), "no request with id rq-1-X");
  EXPECT_TRUE(call.trail->subjects().empty());

  call.caller = Make("EU-AUDIT-1", "FR", {"auditor"});
  EXPECT_TRUE(CheckRequestAccess(call, Parties(), "rq-1-X", AccessKind::kRead).ok());
  EXPECT_EQ(CheckRequestAccess(call, Parties(), "rq-1-X", AccessKind::kChange).code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_EQ(call.trail->subjects().size(), 1u);
  EXPECT_EQ(call.trail->subjects()[0].request_id, "rq-1-X");
  EXPECT_EQ(call.trail->subjects()[0].kind, AccessKind::kRead);
}

TEST(AccessPolicyTest, TranslatorsReachWhatTheyHoldOnly) {
  CallContext call;
  call.caller = Make("XL-1", "DE", {"translator"});
  EXPECT_TRUE(IsTranslatorOnly(call.caller));
  EXPECT_TRUE(
      CheckTranslatorAccess(call, Parties(), "XL-1", "rq-1-X", AccessKind::kRead, "tj", "no job")
          .ok());
  absl::Status other =
      CheckTranslatorAccess(call, Parties(), "XL-2", "rq-1-X", AccessKind::kRead, "tj", "no job");
  EXPECT_EQ(other, absl::NotFoundError("no job"));
  EXPECT_EQ(call.trail->subjects().size(), 1u);
}

// A production order's enforcing authority, named by routing as notified_authority
// (Reg. 2023/1543 Art 8): it reads the request with the executing side's read rights, and
// changes nothing through the common policy (its objection is intake's to allow).
TEST(AccessPolicyTest, NotifiedAuthorityReadsButChangesNothing) {
  RequestParties p = Parties();
  p.notified_authority_id = "IE-EPOC-ENFORCING-AUTHORITY";
  const Caller enforcing = Make("IE-EPOC-ENFORCING-AUTHORITY", "IE", {"executing"});
  EXPECT_EQ(ReachOf(enforcing, p), Reach::kRead);
  EXPECT_TRUE(IsNotifiedAuthority(enforcing, p));
  EXPECT_FALSE(OnExecutingSide(enforcing, p));
  EXPECT_FALSE(IsNotifiedAuthority(Make("IE-EPOC-ENFORCING-AUTHORITY", "IE", {"auditor"}), p));
  EXPECT_EQ(ReachOf(Make("IE-OTHER", "IE", {"executing"}), p), Reach::kNone);
  EXPECT_EQ(ReachOf(enforcing, Parties()), Reach::kNone);  // not named: not a party
  CallContext call;
  call.caller = enforcing;
  EXPECT_TRUE(CheckRequestAccess(call, p, "rq-1-X", AccessKind::kRead).ok());
  absl::Status change = CheckRequestAccess(call, p, "rq-1-X", AccessKind::kChange);
  EXPECT_EQ(change.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(change.message().find("notified authority"), absl::string_view::npos);
  // Lists follow the same rule: the request is in the notified authority's list scope.
  absl::StatusOr<ListScope> scope = ListScopeOf(enforcing);
  ASSERT_TRUE(scope.ok()) << scope.status();
  EXPECT_TRUE(InScope(*scope, p));
  EXPECT_FALSE(InScope(*scope, Parties()));
}

TEST(AccessPolicyTest, SidesListScopesAndAdmin) {
  const RequestParties p = Parties();
  EXPECT_TRUE(OnIssuingSide(Make("FR-TJ-PARIS-JI", "FR", {"issuing"}), p));
  EXPECT_FALSE(OnExecutingSide(Make("FR-TJ-PARIS-JI", "FR", {"issuing"}), p));
  EXPECT_TRUE(OnExecutingSide(Make("DE-STA-MUENCHEN", "DE", {"executing"}), p));
  EXPECT_TRUE(OnExecutingSide(Make("DE-BFJ", "DE", {"central"}), p));
  EXPECT_FALSE(OnIssuingSide(Make("DE-BFJ", "DE", {"central"}), p));
  EXPECT_FALSE(OnExecutingSide(Make("EU-AUDIT-1", "DE", {"auditor"}), p));

  EXPECT_TRUE(ListScopeOf(Make("EU-AUDIT-1", "FR", {"auditor"}))->all);
  auto central = ListScopeOf(Make("DE-BFJ", "DE", {"central"}));
  ASSERT_TRUE(central.ok());
  EXPECT_EQ(central->central_state, "DE");
  EXPECT_TRUE(InScope(*central, p));
  auto stranger = ListScopeOf(Make("BE-PARQUET", "BE", {"issuing"}));
  ASSERT_TRUE(stranger.ok());
  EXPECT_FALSE(InScope(*stranger, p));
  EXPECT_EQ(ListScopeOf(Make("OPS-1", "", {"operator"})).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ListScopeOf(Make("XL-1", "DE", {"translator"})).status().code(),
            absl::StatusCode::kPermissionDenied);

  EXPECT_TRUE(CheckAdmin(Make("OPS-1", "", {"operator"}), "x").ok());
  EXPECT_EQ(CheckAdmin(Make("EU-AUDIT-1", "", {"auditor"}), "x").code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace rogatory::common
