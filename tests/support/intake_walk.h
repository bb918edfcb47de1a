#pragma once

// The parties and the walk through the lifecycle table that intake's access tests share
// (tests/access: intake_authz_test, allowed_actions_test). Needs tests/intake on the include
// path (intake_harness.h).

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "intake_fixtures.h"
#include "intake_harness.h"
#include "lifecycle.h"
#include "request_store.h"

namespace rogatory::testing {

// Who calls, as the walk's requests see them: issued by FR-TJ-PARIS-JI (FR) to Germany,
// routed to DE-STA-MUENCHEN; a production order also names DE-EPOC-ENFORCING to be told.
enum class WalkRole {
  kIssuer,            // the issuing authority
  kIssuingCentral,    // the central authority of the issuing state
  kExecutor,          // the executing authority routing named
  kRequestedCentral,  // the central authority of the requested state
  kNotified,          // the notified (enforcing) authority of a production order
  kService,           // a Rogatory service
  kAuditor,
  kStranger,  // an authority the request does not concern
  kOperator,
  kTranslator,  // holding no job of the request
};

struct WalkParty {
  WalkRole role;
  std::string name;
  CallerId who;
};

inline const std::vector<WalkParty>& WalkParties() {
  static const auto* parties = new std::vector<WalkParty>{
      {WalkRole::kIssuer, "issuer", {"FR-TJ-PARIS-JI", "FR", "issuing"}},
      {WalkRole::kIssuingCentral, "issuing central", {"FR-BEPI", "FR", "central"}},
      {WalkRole::kExecutor, "executor", {"DE-STA-MUENCHEN", "DE", "executing"}},
      {WalkRole::kRequestedCentral, "requested central", {"DE-BFJ", "DE", "central"}},
      {WalkRole::kNotified, "notified", {"DE-EPOC-ENFORCING", "DE", "executing"}},
      {WalkRole::kService, "service", {"rogatory-routing", "", "service"}},
      {WalkRole::kAuditor, "auditor", {"EU-AUDIT-1", "FR", "auditor"}},
      {WalkRole::kStranger, "stranger", {"BE-PARQUET-BRUXELLES", "BE", "issuing"}},
      {WalkRole::kOperator, "operator", {"OPS-1", "", "operator"}},
      {WalkRole::kTranslator, "translator", {"XL-1", "DE", "translator"}},
  };
  return *parties;
}

inline const CallerId kServiceCaller{"rogatory-routing", "", "service"};

// Sets in `store` what the routing decision sets: the executing authority and, for a
// production order (`notified`), the notified authority.
inline void NameWalkParties(intake::RequestStore& store, absl::Time now, const std::string& id,
                            bool notified) {
  auto snap =
      Await<intake::Snapshot>([&](auto done) { store.Load(id, std::nullopt, std::move(done)); });
  ASSERT_TRUE(snap.ok()) << snap.status();
  intake::v1::Request after = snap->request;
  after.mutable_executing_authority()->set_authority_id("DE-STA-MUENCHEN");
  after.mutable_executing_authority()->set_state("DE");
  if (notified) {
    after.mutable_notified_authority()->set_authority_id("DE-EPOC-ENFORCING");
    after.mutable_notified_authority()->set_state("DE");
  }
  intake::Mutation m;
  m.id = id;
  m.expected_version = snap->version;
  m.new_version = snap->version + 1;
  m.updated_ms = absl::ToUnixMillis(now);
  m.request = after;
  m.fields.emplace_back("executing_authority", "DE-STA-MUENCHEN");
  auto done =
      Await<intake::MutationOutcome>([&](auto cb) { store.Mutate(std::move(m), std::move(cb)); });
  ASSERT_TRUE(done.ok()) << done.status();
}

// The statuses to pass through from RECEIVED (excluded) to the first status, in the
// lifecycle table's order of moves, for which `reached` holds; nullopt when none does.
inline std::optional<std::vector<common::v1::RequestStatus>> ShortestWalk(
    common::v1::Instrument instrument,
    const std::function<bool(common::v1::RequestStatus)>& reached) {
  using common::v1::RequestStatus;
  const intake::Lifecycle& l = intake::Lifecycle::Default();
  std::map<RequestStatus, RequestStatus> parent;
  std::deque<RequestStatus> queue = {common::v1::REQUEST_STATUS_RECEIVED};
  parent[common::v1::REQUEST_STATUS_RECEIVED] = common::v1::REQUEST_STATUS_UNSPECIFIED;
  while (!queue.empty()) {
    const RequestStatus at = queue.front();
    queue.pop_front();
    if (reached(at)) {
      std::vector<RequestStatus> path;
      for (RequestStatus s = at; s != common::v1::REQUEST_STATUS_RECEIVED; s = parent[s]) {
        path.insert(path.begin(), s);
      }
      return path;
    }
    for (const intake::Move& m : l.MovesFrom(instrument, at)) {
      if (parent.emplace(m.to, at).second) queue.push_back(m.to);
    }
  }
  return std::nullopt;
}

// A transition of request `id` to `to`, with refusal grounds where the target needs them.
inline intake::v1::TransitionRequestRequest TransitionTo(const std::string& id,
                                                         common::v1::RequestStatus to) {
  intake::v1::TransitionRequestRequest t;
  t.set_id(id);
  t.set_target_status(to);
  if (to == common::v1::REQUEST_STATUS_REFUSED ||
      to == common::v1::REQUEST_STATUS_PARTIALLY_EXECUTED) {
    t.add_refusal_grounds(common::v1::REFUSAL_GROUND_DUAL_CRIMINALITY);
  }
  return t;
}

// One step of a walk, as a service, with the RPC that makes it.
inline grpc::Status StepAsService(IntakeHarness& h, const std::string& id,
                                  common::v1::RequestStatus to, intake::v1::Request* out) {
  if (to == common::v1::REQUEST_STATUS_ACKNOWLEDGED) {
    return h.Acknowledge(id, out, kServiceCaller);
  }
  if (to == common::v1::REQUEST_STATUS_WITHDRAWN) {
    intake::v1::WithdrawRequestRequest w;
    w.set_id(id);
    return h.Withdraw(w, out, kServiceCaller);
  }
  return h.Transition(TransitionTo(id, to), out, kServiceCaller);
}

}  // namespace rogatory::testing
