#include "intake_service.h"

#include <algorithm>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "completeness.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/field_mask_util.h"
#include "google/protobuf/util/time_util.h"
#include "request_validator.h"
#include "rogatory/common/access.h"
#include "rogatory/common/event_builder.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/rpc_roles.h"
#include "rogatory/common/status.h"

namespace rogatory::intake {
namespace {

using common::CallContext;
using common::Pipeline;
using google::protobuf::util::TimeUtil;
namespace commonpb = rogatory::common::v1;

std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

std::string FilterFingerprint(const v1::ListRequestsRequest& r) {
  std::string filters =
      absl::StrCat(static_cast<int>(r.status()), "|", static_cast<int>(r.instrument()), "|",
                   r.issuing_state(), "|", r.requested_state());
  // Filters added later extend the fingerprint only when set, so tokens issued before stay
  // valid for the filters they were issued for.
  if (r.urgency() != 0 || r.has_create_time_from() || r.has_create_time_to() || r.order_by() != 0) {
    absl::StrAppend(&filters, "|", static_cast<int>(r.urgency()), "|",
                    TimeUtil::ToString(r.create_time_from()), "|",
                    TimeUtil::ToString(r.create_time_to()), "|", static_cast<int>(r.order_by()));
  }
  // The worklist filters (issue 20), likewise only when set.
  if (r.statuses_size() > 0 || r.open_only() || !r.counterpart_state().empty() || r.side() != 0 ||
      r.has_next_deadline_before()) {
    absl::StrAppend(
        &filters, "|wl|", absl::StrJoin(r.statuses(), ","), "|", r.open_only() ? 1 : 0, "|",
        r.counterpart_state(), "|", static_cast<int>(r.side()), "|",
        r.has_next_deadline_before() ? TimeUtil::ToString(r.next_deadline_before()) : "");
  }
  return common::Sha256Hex(filters).substr(0, 16);
}

}  // namespace

commonpb::RequestFacts FactsOf(const v1::Request& r) {
  const v1::RequestContent& c = r.content();
  commonpb::RequestFacts f;
  *f.mutable_issuing_authority() = c.issuing_authority();
  f.set_requested_state(c.requested_state());
  f.set_source_language(c.source_language());
  f.set_urgency(c.urgency());
  if (r.has_executing_authority()) *f.mutable_executing_authority() = r.executing_authority();
  if (r.has_notified_authority()) *f.mutable_notified_authority() = r.notified_authority();
  if (c.has_eio() && c.eio().has_execute_by_time()) {
    *f.mutable_issuer_deadline_time() = c.eio().execute_by_time();
  }
  if (c.has_eio() && c.eio().has_execute_on_date()) {
    *f.mutable_issuer_deadline_date() = c.eio().execute_on_date();
  }
  if (c.has_production_order()) {
    // Routing addresses the order to the provider's addressee and notifies the enforcing
    // authority (Reg. 2023/1543 Arts 7, 8) from these facts alone.
    const v1::ProductionOrderDetails& po = c.production_order();
    if (po.has_service_provider()) *f.mutable_service_provider() = po.service_provider();
    f.set_enforcing_state(po.enforcing_state());
    for (int category : po.data_categories()) {
      if (category == v1::DATA_CATEGORY_TRAFFIC || category == v1::DATA_CATEGORY_CONTENT) {
        f.set_traffic_or_content_data(true);
      }
    }
  }
  return f;
}

namespace {

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(t));
}

// intake's events, stamped in whole milliseconds like its requests' times.
const common::EventBuilder& Events() {
  static const auto* builder = new common::EventBuilder("intake", IntakeEmittedEvents());
  return *builder;
}
absl::Time WholeMillis(absl::Time t) { return absl::FromUnixMillis(absl::ToUnixMillis(t)); }

commonpb::AuthorityRole RoleOf(const common::Caller& caller) {
  static const std::pair<const char*, commonpb::AuthorityRole> kRoles[] = {
      {"issuing", commonpb::AUTHORITY_ROLE_ISSUING},
      // Executing before central: a caller holding both acts as the executing authority.
      {"executing", commonpb::AUTHORITY_ROLE_EXECUTING},
      {"central", commonpb::AUTHORITY_ROLE_CENTRAL},
      {"translator", commonpb::AUTHORITY_ROLE_TRANSLATOR},
      {"validating", commonpb::AUTHORITY_ROLE_VALIDATING},
      {"service_provider", commonpb::AUTHORITY_ROLE_SERVICE_PROVIDER},
      {"operator", commonpb::AUTHORITY_ROLE_OPERATOR},
      {"auditor", commonpb::AUTHORITY_ROLE_AUDITOR}};
  for (const auto& [name, role] : kRoles) {
    if (caller.HasRole(name)) return role;
  }
  return commonpb::AUTHORITY_ROLE_UNSPECIFIED;
}

// Need-to-know for changes (common/access.h): the request must be in the caller's reach
// (else NOT_FOUND, as if it did not exist), and the caller must act for a side that may make
// the change (else PERMISSION_DENIED naming that side; an auditor acts for no side):
// - supplements are the issuing side's (the issuing authority, the central authority of the
//   issuing state, or a Rogatory service);
// - each move of the lifecycle is made by the sides its target status names, with the one
//   RPC it names (lifecycle.h, Cause): WITHDRAWN is the issuing side's, with WithdrawRequest;
//   ACKNOWLEDGED the executing side's, with AcknowledgeRequest (an EIO only); OBJECTED also
//   the notified (enforcing) authority's, which reads the request and makes no other move;
//   every other status the executing side's (the executing authority named by the routing
//   decision, or the central authority of the requested state), with TransitionRequest.
//   Rogatory services may make every move.
// The caller Touches the request once the change succeeded (see Touching).
absl::Status CheckIssuerSide(const common::Caller& caller, const v1::Request& r,
                             absl::string_view what) {
  const common::RequestParties parties = PartiesOfRequest(r);
  RETURN_IF_ERROR(common::MayAccess(caller, parties, r.id(), common::AccessKind::kChange));
  if (common::OnIssuingSide(caller, parties)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("only the issuing authority may ", what, " this request"));
}

// Who files a request, checked at submission and again on a supplement's merged content:
// its issuing authority, the central authority of its state, or a Rogatory service (no one
// files a request in another authority's name), and an authority only in its own state's
// name: content.issuing_authority.state must be the caller's `state` claim (else the
// request would reach another state's central authority and not its own). Both are
// PERMISSION_DENIED naming the field.
absl::Status CheckSubmitter(const common::Caller& caller, const v1::RequestContent& content) {
  common::RequestParties parties;
  parties.issuing_authority_id = content.issuing_authority().authority_id();
  parties.issuing_state = content.issuing_authority().state();
  parties.requested_state = content.requested_state();
  if (!common::OnIssuingSide(caller, parties)) {
    return absl::PermissionDeniedError(
        "a request is submitted by its issuing authority (content.issuing_authority) or the "
        "central authority of its state");
  }
  if (!caller.is_service && caller.state != content.issuing_authority().state()) {
    return absl::PermissionDeniedError(
        absl::StrCat("content.issuing_authority.state must be the caller's state (",
                     caller.state.empty() ? "its credentials name none" : caller.state,
                     "): an authority files requests in its own state's name only"));
  }
  return absl::OkStatus();
}

// What a supplement may not change (issue 16 item 2): the parties, the instrument and the
// requested state are fixed at submission (who reaches a request, where routing sent it and
// whom the other services know as its parties follow from them). INVALID_ARGUMENT naming
// each field that differs. The validator already refuses update_mask paths naming the
// top-level ones; this guards the merged result itself, including a production order's
// addressee and enforcing state inside its details.
absl::Status CheckFixedFields(const v1::RequestContent& before, const v1::RequestContent& after) {
  common::FieldViolations v;
  auto same = [](const google::protobuf::Message& a, const google::protobuf::Message& b) {
    return DeterministicBytes(a) == DeterministicBytes(b);
  };
  if (before.instrument() != after.instrument()) {
    v.Add("content.instrument", "is fixed after submission");
  }
  if (!same(before.issuing_authority(), after.issuing_authority())) {
    v.Add("content.issuing_authority", "is fixed after submission");
  }
  if (before.requested_state() != after.requested_state()) {
    v.Add("content.requested_state", "is fixed after submission");
  }
  if (before.has_production_order()) {
    if (!same(before.production_order().service_provider(),
              after.production_order().service_provider())) {
      v.Add("content.production_order.service_provider", "is fixed after submission");
    }
    if (before.production_order().enforcing_state() != after.production_order().enforcing_state()) {
      v.Add("content.production_order.enforcing_state", "is fixed after submission");
    }
  }
  return v.ToStatus();
}

// The sides of the request the caller acts for.
Sides SidesOf(const common::Caller& caller, const common::RequestParties& parties) {
  if (caller.is_service) return kService;
  Sides sides = 0;
  if (common::OnIssuingSide(caller, parties)) sides |= kIssuingSide;
  if (common::OnExecutingSide(caller, parties)) sides |= kExecutingSide;
  if (common::IsNotifiedAuthority(caller, parties)) sides |= kNotifiedAuthority;
  return sides;
}

// Whether the caller may move the request to `target` with the RPC `via`: NOT_FOUND when the
// request is outside its reach; PERMISSION_DENIED when the table names another RPC for that
// move or other sides. A status no move of the instrument leads to (RECEIVED, another
// instrument's) is checked as the executing side's; the lifecycle then refuses the move
// (FAILED_PRECONDITION).
absl::Status CheckMayCause(const common::Caller& caller, const v1::Request& r,
                           commonpb::RequestStatus target, Via via) {
  const common::RequestParties parties = PartiesOfRequest(r);
  // Reach only (kRead): a party who reaches the request but may not make this move learns
  // which side makes it; the notified authority reaches it for reading alone and its
  // objection is a move the table gives it.
  RETURN_IF_ERROR(common::MayAccess(caller, parties, r.id(), common::AccessKind::kRead));
  const Cause cause = Lifecycle::Default()
                          .CauseOf(r.content().instrument(), target)
                          .value_or(Cause{kExecutingSide | kService, via});
  const std::string status = commonpb::RequestStatus_Name(target);
  if (cause.via != via) {
    return absl::PermissionDeniedError(
        absl::StrCat(status, " is caused by ", DescribeSides(cause.sides), ", with ",
                     ViaName(cause.via), ", not with ", ViaName(via)));
  }
  const Sides sides = SidesOf(caller, parties);
  if ((sides & cause.sides) == 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(status, " is caused by ", DescribeSides(cause.sides), "; the caller acts for ",
                     DescribeSides(sides)));
  }
  return absl::OkStatus();
}

// What `caller` may do to `r` now (Request.allowed_actions): the same checks the change RPCs
// make before they look at their input, on the same tables (the role table, the need-to-know
// policy, the lifecycle table), so the list cannot say anything the RPCs do not enforce.
std::vector<v1::AllowedAction> AllowedActions(const common::Caller& caller, const v1::Request& r) {
  std::vector<v1::AllowedAction> out;
  auto add = [&out](v1::RequestAction action, commonpb::RequestStatus target,
                    absl::string_view method) {
    v1::AllowedAction& a = out.emplace_back();
    a.set_action(action);
    a.set_target_status(target);
    a.set_method(std::string(method));
  };
  const commonpb::Instrument instrument = r.content().instrument();
  for (const Move& move : Lifecycle::Default().MovesFrom(instrument, r.status())) {
    const Cause cause = Lifecycle::Default().CauseOf(instrument, move.to).value_or(move.by);
    const char* method = ViaName(cause.via);
    if (!common::CheckRpcRoles(caller, method).ok()) continue;
    if (!CheckMayCause(caller, r, move.to, cause.via).ok()) continue;
    switch (cause.via) {
      case Via::kTransitionRequest:
        add(v1::REQUEST_ACTION_TRANSITION, move.to, method);
        break;
      case Via::kAcknowledgeRequest:
        // AcknowledgeRequest's own conditions (an EIO that reached the competent authority).
        if (instrument == commonpb::INSTRUMENT_EIO &&
            r.status() == commonpb::REQUEST_STATUS_FORWARDED) {
          add(v1::REQUEST_ACTION_ACKNOWLEDGE, move.to, method);
        }
        break;
      case Via::kWithdrawRequest:
        add(v1::REQUEST_ACTION_WITHDRAW, move.to, method);
        break;
    }
  }
  if (common::CheckRpcRoles(caller, "SupplementRequest").ok() &&
      CheckIssuerSide(caller, r, "supplement").ok() &&
      Lifecycle::Default().IsOpen(instrument, r.status())) {
    add(v1::REQUEST_ACTION_SUPPLEMENT, commonpb::REQUEST_STATUS_UNSPECIFIED, "SupplementRequest");
  }
  if (common::CheckRpcRoles(caller, "UploadDocument").ok() &&
      common::MayAccess(caller, PartiesOfRequest(r), r.id(), common::AccessKind::kChange).ok()) {
    add(v1::REQUEST_ACTION_UPLOAD_DOCUMENT, commonpb::REQUEST_STATUS_UNSPECIFIED, "UploadDocument");
  }
  return out;
}

// Wraps a change RPC's completion: a successful change (or replay of one) is noted on the
// call's audit trail.
Pipeline::Done Touching(const CallContext& call, const std::string& id, Pipeline::Done done) {
  return [call, id, done = std::move(done)](absl::Status s) {
    if (s.ok()) call.Touch(id, common::AccessKind::kChange);
    done(std::move(s));
  };
}

absl::Status CheckEtagMatches(const std::string& etag, const Snapshot& snap) {
  if (etag.empty() || etag == snap.request.etag()) return absl::OkStatus();
  return common::StaleEtag(snap.request.id(), snap.request.etag(),
                           absl::StrCat("etag \"", etag, "\" is stale; the request is now at \"",
                                        snap.request.etag(), "\""));
}

// The response Request of a change: the snapshot with its new status and version.
v1::Request After(const Snapshot& snap, commonpb::RequestStatus status, int64_t version,
                  absl::Time now) {
  v1::Request r = snap.request;
  r.set_status(status);
  r.set_etag(absl::StrCat(version));
  *r.mutable_update_time() = ToProto(now);
  return r;
}

// The indexed hash fields of a request's content (see RedisRequestStore).
void IndexFields(const v1::Request& r, Mutation& m) {
  m.fields.emplace_back("urgency", absl::StrCat(static_cast<int>(r.content().urgency())));
  m.fields.emplace_back("issuing_state", r.content().issuing_authority().state());
  m.fields.emplace_back("requested_state", r.content().requested_state());
  m.fields.emplace_back("issuing_authority", r.content().issuing_authority().authority_id());
}

// Plans a lifecycle move: FAILED_PRECONDITION naming the allowed next statuses when the
// table has no such move.
absl::StatusOr<Mutation> PlanMove(const Snapshot& snap, commonpb::RequestStatus target,
                                  const commonpb::Actor& actor, absl::Time now,
                                  const std::string& reason_code, const std::string& legal_basis,
                                  const google::protobuf::RepeatedField<int>& grounds) {
  const v1::Request& r = snap.request;
  const commonpb::Instrument instrument = r.content().instrument();
  auto move = Lifecycle::Default().Find(instrument, r.status(), target);
  if (!move.has_value()) {
    const std::string allowed = Lifecycle::Default().DescribeMovesFrom(instrument, r.status());
    return common::TransitionNotAllowed(
        r.id(), commonpb::RequestStatus_Name(r.status()), allowed,
        absl::StrCat("a ", commonpb::Instrument_Name(instrument), " request cannot move from ",
                     commonpb::RequestStatus_Name(r.status()), " to ",
                     commonpb::RequestStatus_Name(target), "; allowed next statuses: ", allowed));
  }
  const int64_t version = snap.version + 1;
  v1::Request after = After(snap, target, version, now);
  commonpb::Event e = NewIntakeEvent(after, move->event, version, now, actor);
  e.set_status(target);
  e.set_previous_status(r.status());
  e.set_reason_code(reason_code);
  e.set_legal_basis(legal_basis);
  auto* change = e.mutable_status_change();
  for (int g : grounds) change->add_refusal_grounds(static_cast<commonpb::RefusalGround>(g));
  Mutation m;
  m.id = r.id();
  m.expected_version = snap.version;
  m.new_version = version;
  m.updated_ms = absl::ToUnixMillis(now);
  m.fields.emplace_back("status", absl::StrCat(static_cast<int>(target)));
  m.fields_before = IndexedFieldsOf(r);
  m.history.push_back(e);
  m.outbox.push_back(std::move(e));
  m.result = after.SerializeAsString();
  return m;
}

}  // namespace

commonpb::Actor ActorOf(const common::Caller& caller) {
  commonpb::Actor a;
  if (caller.is_service) {
    a.set_service(caller.authority_id);
  } else {
    a.mutable_authority()->set_authority_id(caller.authority_id);
    a.mutable_authority()->set_state(caller.state);
  }
  a.set_role(RoleOf(caller));
  return a;
}

std::vector<commonpb::EventType> IntakeEmittedEvents() {
  std::vector<commonpb::EventType> types = Lifecycle::Default().EventTypes();
  for (commonpb::EventType t :
       {commonpb::EVENT_TYPE_REQUEST_SUBMITTED, commonpb::EVENT_TYPE_DOCUMENT_ADDED,
        commonpb::EVENT_TYPE_REQUEST_SUPPLEMENTED, commonpb::EVENT_TYPE_REQUEST_ERASED}) {
    if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  }
  return types;
}

commonpb::Event NewIntakeEvent(const v1::Request& r, commonpb::EventType type, int64_t sequence,
                               absl::Time now, const commonpb::Actor& actor) {
  const commonpb::RequestFacts facts = FactsOf(r);
  commonpb::Event e = Events().New({r.id(), r.trace_id(), r.content().instrument(), &facts},
                                   {.type = type, .at = WholeMillis(now)});
  e.set_sequence(sequence);
  *e.mutable_actor() = actor;
  return e;
}

std::string Fingerprint(absl::string_view method, const google::protobuf::Message& payload) {
  return common::Sha256Hex(absl::StrCat(method, "\n", DeterministicBytes(payload)));
}

std::string EncodeHistoryToken(int64_t offset, const std::string& id) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("h1|", offset, "|", common::Sha256Hex(id).substr(0, 12)));
}

absl::StatusOr<int64_t> DecodeHistoryToken(const std::string& token, const std::string& id) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, '|');
  int64_t offset = 0;
  // Bounded so that offset + page size cannot overflow on a forged token.
  if (parts.size() != 3 || parts[0] != "h1" || !absl::SimpleAtoi(parts[1], &offset) || offset < 0 ||
      offset > (int64_t{1} << 40) || parts[2] != common::Sha256Hex(id).substr(0, 12)) {
    common::FieldViolations v;
    v.Add("page_token", "is not a token this service issued for this request");
    return v.ToStatus();
  }
  return offset;
}

std::string EncodePageToken(const ListCursor& cursor, const v1::ListRequestsRequest& filters) {
  return absl::WebSafeBase64Escape(
      absl::StrCat("v1|", cursor.create_ms, "|", cursor.id, "|", FilterFingerprint(filters)));
}

absl::StatusOr<ListCursor> DecodePageToken(const std::string& token,
                                           const v1::ListRequestsRequest& filters) {
  std::string raw;
  std::vector<std::string> parts;
  if (absl::WebSafeBase64Unescape(token, &raw)) parts = absl::StrSplit(raw, '|');
  ListCursor cursor;
  if (parts.size() != 4 || parts[0] != "v1" || !absl::SimpleAtoi(parts[1], &cursor.create_ms)) {
    common::FieldViolations v;
    v.Add("page_token", "is not a token this service issued");
    return v.ToStatus();
  }
  if (parts[3] != FilterFingerprint(filters)) {
    common::FieldViolations v;
    v.Add("page_token", "was issued for other filters; start again without a token");
    return v.ToStatus();
  }
  cursor.id = parts[2];
  return cursor;
}

void ApplyView(v1::RequestView view, const common::Caller& caller, v1::Request* request) {
  // The tracked deadlines are intake's bookkeeping; next_deadline's own fields are the API.
  if (request->has_next_deadline()) request->mutable_next_deadline()->clear_tracked();
  request->clear_allowed_actions();
  if (view == v1::REQUEST_VIEW_FULL) {
    for (v1::AllowedAction& a : AllowedActions(caller, *request)) {
      *request->add_allowed_actions() = std::move(a);
    }
    return;
  }
  auto* content = request->mutable_content();
  content->clear_subjects();
  content->clear_statement_of_facts();
  content->clear_issuer_reference();
}

grpc::ServerUnaryReactor* IntakeService::SubmitRequest(grpc::CallbackServerContext* context,
                                                       const v1::SubmitRequestRequest* request,
                                                       v1::SubmitRequestResponse* response) {
  return pipeline_.Unary<v1::SubmitRequestRequest, v1::SubmitRequestResponse>(
      context, "SubmitRequest", request, response,
      [this](const v1::SubmitRequestRequest& r) {
        absl::Status s = ValidateSubmit(r, clock_.Now());
        if (!s.ok() && options_.metrics != nullptr)
          options_.metrics->SubmissionRejected("malformed");
        return s;
      },
      [this](const CallContext& call, const v1::SubmitRequestRequest& r,
             v1::SubmitRequestResponse* resp,
             Pipeline::Done done) { Submit(call, r, resp, std::move(done)); });
}

void IntakeService::Submit(const CallContext& call, const v1::SubmitRequestRequest& in,
                           v1::SubmitRequestResponse* response, Pipeline::Done done) {
  if (absl::Status s = CheckSubmitter(call.caller, in.content()); !s.ok()) return done(s);
  const absl::Time now = clock_.Now();
  v1::RequestContent content = in.content();
  if (content.urgency() == commonpb::URGENCY_UNSPECIFIED) {
    content.set_urgency(commonpb::URGENCY_NORMAL);
  }
  NewRequest nr;
  if (!in.request_id().empty()) {
    nr.idempotency = Idempotency{call.caller.authority_id, in.request_id(),
                                 common::Sha256Hex(DeterministicBytes(content))};
  }
  // An idempotent submission goes to the shard of its key, where its record lives.
  const int shard =
      nr.idempotency.has_value()
          ? sharding_.ShardFor(absl::StrCat(call.caller.authority_id, "\n", in.request_id()))
          : sharding_.ShardFor(common::NewUlid(now));

  v1::Request& r = nr.request;
  r.set_id(common::Sharding::MakeId("rq", shard, now));
  std::vector<v1::MissingElement> missing = FindMissingElements(content);
  r.set_status(missing.empty() ? commonpb::REQUEST_STATUS_RECEIVED
                               : commonpb::REQUEST_STATUS_INCOMPLETE);
  for (auto& m : missing) *r.add_missing_elements() = std::move(m);
  *r.mutable_create_time() = ToProto(now);
  *r.mutable_update_time() = ToProto(now);
  r.set_etag("1");
  r.set_trace_id(call.trace_id);
  *r.mutable_content() = std::move(content);

  const commonpb::RequestFacts facts = FactsOf(r);
  commonpb::Event& e = nr.submitted;
  e = Events().New(
      {r.id(), call.trace_id, r.content().instrument(), &facts},
      {.type = commonpb::EVENT_TYPE_REQUEST_SUBMITTED, .at = WholeMillis(now)});  // create_time
  e.set_sequence(1);
  *e.mutable_actor()->mutable_authority() = r.content().issuing_authority();
  e.mutable_actor()->set_role(commonpb::AUTHORITY_ROLE_ISSUING);
  e.set_legal_basis(r.content().legal_basis());
  e.set_status(r.status());
  for (const auto& m : r.missing_elements()) {
    e.mutable_status_change()->add_missing_elements(m.field());
  }

  store_.Create(std::move(nr), [response, done, call, trace = call.trace_id,
                                metrics = options_.metrics](absl::StatusOr<CreateOutcome> outcome) {
    if (!outcome.ok()) {
      if (metrics != nullptr) {
        const absl::StatusCode code = outcome.status().code();
        metrics->SubmissionRejected(code == absl::StatusCode::kAlreadyExists
                                        ? "idempotency_conflict"
                                    : code == absl::StatusCode::kUnavailable ? "unavailable"
                                                                             : "other");
      }
      return done(outcome.status());
    }
    common::Log::Info(
        outcome->replayed ? "submission replayed" : "request submitted",
        {{"request", outcome->request.id()},
         {"trace_id", trace},
         {"instrument", commonpb::Instrument_Name(outcome->request.content().instrument())},
         {"status", commonpb::RequestStatus_Name(outcome->request.status())}});
    call.Touch(outcome->request.id(), common::AccessKind::kChange, "submitted");
    *response->mutable_request() = std::move(outcome->request);
    done(absl::OkStatus());
  });
}

grpc::ServerUnaryReactor* IntakeService::GetRequest(grpc::CallbackServerContext* context,
                                                    const v1::GetRequestRequest* request,
                                                    v1::GetRequestResponse* response) {
  return pipeline_.Unary<v1::GetRequestRequest, v1::GetRequestResponse>(
      context, "GetRequest", request, response,
      [this](const v1::GetRequestRequest& r) { return ValidateGet(r, sharding_.shard_count()); },
      [this](const CallContext& call, const v1::GetRequestRequest& r, v1::GetRequestResponse* resp,
             Pipeline::Done done) {
        const v1::RequestView view =
            r.view() == v1::REQUEST_VIEW_UNSPECIFIED ? v1::REQUEST_VIEW_FULL : r.view();
        // The read and its audit entry in one Redis round trip when the store can write the
        // entry (the chained audit log) and the caller's reach is a list scope; the access
        // check below still decides what is disclosed.
        RecordedRead read;
        std::optional<common::PreparedAuditEntry> entry;
        if (auto scope = common::ListScopeOf(call.caller); scope.ok()) {
          read.scope = *std::move(scope);
          common::AuditRecord record{call.method,
                                     call.caller,
                                     call.trace_id,
                                     call.justification,
                                     absl::StatusCode::kOk,
                                     absl::ZeroDuration(),
                                     {{r.id(), common::AccessKind::kRead, ""}}};
          entry = pipeline_.auditor().Prepare(record);
        }
        if (!entry.has_value()) {
          return store_.Get(r.id(), [call, resp, done, view](absl::StatusOr<v1::Request> found) {
            if (!found.ok()) return done(found.status());
            if (absl::Status s = common::CheckRequestAccess(call, PartiesOfRequest(*found),
                                                            found->id(), common::AccessKind::kRead);
                !s.ok()) {
              return done(s);
            }
            ApplyView(view, call.caller, &*found);
            *resp->mutable_request() = *std::move(found);
            done(absl::OkStatus());
          });
        }
        read.entry = *std::move(entry);
        store_.GetRecorded(r.id(), read, [call, resp, done, view](absl::StatusOr<ReadOutcome> out) {
          if (!out.ok()) return done(out.status());
          v1::Request& found = out->request;
          absl::Status s = common::MayAccess(call.caller, PartiesOfRequest(found), found.id(),
                                             common::AccessKind::kRead);
          if (out->recorded) {
            call.trail->TouchRecorded(found.id(), common::AccessKind::kRead);
            // The entry says "read"; the policy withheld it after all (the script's reach
            // rule and the policy disagree): a second entry, with the call's NOT_FOUND, says so.
            if (!s.ok()) call.Touch(found.id(), common::AccessKind::kRead, "withheld");
          } else if (s.ok()) {
            call.Touch(found.id(), common::AccessKind::kRead);
          }
          if (!s.ok()) return done(s);
          ApplyView(view, call.caller, &found);
          *resp->mutable_request() = std::move(found);
          done(absl::OkStatus());
        });
      });
}

grpc::ServerUnaryReactor* IntakeService::ListRequests(grpc::CallbackServerContext* context,
                                                      const v1::ListRequestsRequest* request,
                                                      v1::ListRequestsResponse* response) {
  return pipeline_.Unary<v1::ListRequestsRequest, v1::ListRequestsResponse>(
      context, "ListRequests", request, response,
      [](const v1::ListRequestsRequest& r) -> absl::Status {
        RETURN_IF_ERROR(ValidateList(r));
        if (!r.page_token().empty()) return DecodePageToken(r.page_token(), r).status();
        return absl::OkStatus();
      },
      [this](const CallContext& call, const v1::ListRequestsRequest& r,
             v1::ListRequestsResponse* resp, Pipeline::Done done) {
        absl::StatusOr<common::ListScope> scope = common::ListScopeOf(call.caller);
        if (!scope.ok()) return done(scope.status());
        if (absl::Status s = ValidateListScope(r, scope->all); !s.ok()) return done(s);
        ListQuery q;
        q.scope = *scope;
        q.status = r.status();
        q.instrument = r.instrument();
        q.issuing_state = r.issuing_state();
        q.requested_state = r.requested_state();
        q.urgency = r.urgency();
        if (r.has_create_time_from()) {
          q.created_from_ms = TimeUtil::TimestampToMilliseconds(r.create_time_from());
        }
        if (r.has_create_time_to()) {
          q.created_to_ms = TimeUtil::TimestampToMilliseconds(r.create_time_to());
        }
        q.by_update = r.order_by() == v1::REQUEST_ORDER_UPDATE_TIME_DESC;
        q.by_next_due = r.order_by() == v1::REQUEST_ORDER_NEXT_DUE_TIME;
        for (int s : r.statuses()) q.statuses.push_back(static_cast<commonpb::RequestStatus>(s));
        q.open_only = r.open_only();
        q.side = r.side();
        q.counterpart_state = r.counterpart_state();
        if (r.has_next_deadline_before()) {
          q.next_due_before_ms = TimeUtil::TimestampToMilliseconds(r.next_deadline_before());
        }
        q.page_size = r.page_size() == 0 ? 50 : r.page_size();
        if (!r.page_token().empty()) q.after = *DecodePageToken(r.page_token(), r);
        const v1::RequestView view =
            r.view() == v1::REQUEST_VIEW_UNSPECIFIED ? v1::REQUEST_VIEW_BASIC : r.view();
        store_.List(q, [call, resp, done, view, filters = r](absl::StatusOr<ListPage> page) {
          if (!page.ok()) return done(page.status());
          for (auto& req : page->requests) {
            call.Touch(req.id(), common::AccessKind::kRead, "listed");
            ApplyView(view, call.caller, &req);
            *resp->add_requests() = std::move(req);
          }
          if (page->next.has_value()) {
            resp->set_next_page_token(EncodePageToken(*page->next, filters));
          }
          done(absl::OkStatus());
        });
      });
}

void IntakeService::Change(std::string id, std::optional<Idempotency> idempotency, Plan plan,
                           bool retry_stale, int attempts_left,
                           std::function<void(absl::StatusOr<std::string>, bool)> done) {
  store_.Load(id, idempotency,
              [this, id, idempotency, plan = std::move(plan), retry_stale, attempts_left,
               done = std::move(done)](absl::StatusOr<Snapshot> snap) mutable {
                if (!snap.ok()) return done(snap.status(), false);
                if (snap->replay.has_value()) return done(*std::move(snap->replay), false);
                absl::StatusOr<Mutation> m = plan(*snap);
                if (!m.ok()) return done(m.status(), false);
                m->idempotency = idempotency;
                std::string result = m->result;
                store_.Mutate(*std::move(m), [this, id = std::move(id), idempotency,
                                              plan = std::move(plan), retry_stale, attempts_left,
                                              result = std::move(result), done = std::move(done)](
                                                 absl::StatusOr<MutationOutcome> outcome) mutable {
                  if (!outcome.ok()) {
                    if (retry_stale && attempts_left > 1 && IsStaleVersion(outcome.status())) {
                      return Change(std::move(id), std::move(idempotency), std::move(plan),
                                    retry_stale, attempts_left - 1, std::move(done));
                    }
                    return done(outcome.status(), false);
                  }
                  if (outcome->kind == MutationOutcome::Kind::kReplayed)
                    return done(outcome->result, false);
                  done(std::move(result), true);
                });
              });
}

namespace {

// Completes a change RPC: parses the serialized Request into the response.
std::function<void(absl::StatusOr<std::string>, bool)> Respond(v1::Request* out,
                                                               Pipeline::Done done,
                                                               std::string method,
                                                               std::string trace_id,
                                                               IntakeMetrics* metrics) {
  return [out, done = std::move(done), method = std::move(method), trace_id = std::move(trace_id),
          metrics](absl::StatusOr<std::string> result, bool applied) {
    if (!result.ok()) return done(result.status());
    if (!out->ParseFromString(*result)) {
      return done(absl::InternalError("stored result does not parse"));
    }
    if (applied && metrics != nullptr) {
      metrics->StatusReached(
          out->content().instrument(), out->status(),
          absl::Milliseconds(TimeUtil::TimestampToMilliseconds(out->update_time()) -
                             TimeUtil::TimestampToMilliseconds(out->create_time())));
    }
    common::Log::Info("request changed", {{"method", method},
                                          {"request", out->id()},
                                          {"trace_id", trace_id},
                                          {"status", commonpb::RequestStatus_Name(out->status())},
                                          {"etag", out->etag()}});
    done(absl::OkStatus());
  };
}

std::optional<Idempotency> IdempotencyOf(const CallContext& call, const std::string& request_id,
                                         absl::string_view method,
                                         const google::protobuf::Message& payload) {
  if (request_id.empty()) return std::nullopt;
  return Idempotency{call.caller.authority_id, request_id, Fingerprint(method, payload)};
}

}  // namespace

grpc::ServerUnaryReactor* IntakeService::TransitionRequest(
    grpc::CallbackServerContext* context, const v1::TransitionRequestRequest* request,
    v1::TransitionRequestResponse* response) {
  return pipeline_.Unary<v1::TransitionRequestRequest, v1::TransitionRequestResponse>(
      context, "TransitionRequest", request, response,
      [this](const v1::TransitionRequestRequest& r) {
        return ValidateTransition(r, sharding_.shard_count());
      },
      [this](const CallContext& call, const v1::TransitionRequestRequest& r,
             v1::TransitionRequestResponse* resp, Pipeline::Done done) {
        Plan plan = [this, r, caller = call.caller, actor = ActorOf(call.caller)](
                        const Snapshot& snap) -> absl::StatusOr<Mutation> {
          RETURN_IF_ERROR(
              CheckMayCause(caller, snap.request, r.target_status(), Via::kTransitionRequest));
          RETURN_IF_ERROR(CheckEtagMatches(r.etag(), snap));
          return PlanMove(snap, r.target_status(), actor, clock_.Now(), r.reason_code(),
                          r.legal_basis(), r.refusal_grounds());
        };
        Change(r.id(), IdempotencyOf(call, r.request_id(), "TransitionRequest", r), std::move(plan),
               r.etag().empty(), kChangeAttempts,
               Respond(resp->mutable_request(), Touching(call, r.id(), std::move(done)),
                       "TransitionRequest", call.trace_id, options_.metrics));
      });
}

grpc::ServerUnaryReactor* IntakeService::AcknowledgeRequest(
    grpc::CallbackServerContext* context, const v1::AcknowledgeRequestRequest* request,
    v1::AcknowledgeRequestResponse* response) {
  return pipeline_.Unary<v1::AcknowledgeRequestRequest, v1::AcknowledgeRequestResponse>(
      context, "AcknowledgeRequest", request, response,
      [this](const v1::AcknowledgeRequestRequest& r) {
        return ValidateAcknowledge(r, sharding_.shard_count());
      },
      [this](const CallContext& call, const v1::AcknowledgeRequestRequest& r,
             v1::AcknowledgeRequestResponse* resp, Pipeline::Done done) {
        Plan plan = [this, r,
                     caller = call.caller](const Snapshot& snap) -> absl::StatusOr<Mutation> {
          const v1::Request& current = snap.request;
          RETURN_IF_ERROR(CheckMayCause(caller, current, commonpb::REQUEST_STATUS_ACKNOWLEDGED,
                                        Via::kAcknowledgeRequest));
          RETURN_IF_ERROR(CheckEtagMatches(r.etag(), snap));
          if (current.content().instrument() != commonpb::INSTRUMENT_EIO) {
            return absl::FailedPreconditionError(absl::StrCat(
                "only a European Investigation Order is acknowledged (Annex B); this is a ",
                commonpb::Instrument_Name(current.content().instrument()), " request"));
          }
          // The week of Art 16(1) runs from reception by the competent authority: the
          // acknowledgment follows it (FORWARDED) and is made once.
          if (current.status() != commonpb::REQUEST_STATUS_FORWARDED) {
            return common::TransitionNotAllowed(
                current.id(), commonpb::RequestStatus_Name(current.status()),
                Lifecycle::Default().DescribeMovesFrom(current.content().instrument(),
                                                       current.status()),
                absl::StrCat(
                    "an EIO is acknowledged once the competent authority has received it (status "
                    "REQUEST_STATUS_FORWARDED); this one is ",
                    commonpb::RequestStatus_Name(current.status())));
          }
          return PlanMove(snap, commonpb::REQUEST_STATUS_ACKNOWLEDGED, ActorOf(caller),
                          clock_.Now(), "", "Directive 2014/41/EU Art 16(1)", {});
        };
        Change(r.id(), IdempotencyOf(call, r.request_id(), "AcknowledgeRequest", r),
               std::move(plan), r.etag().empty(), kChangeAttempts,
               Respond(resp->mutable_request(), Touching(call, r.id(), std::move(done)),
                       "AcknowledgeRequest", call.trace_id, options_.metrics));
      });
}

grpc::ServerUnaryReactor* IntakeService::WithdrawRequest(grpc::CallbackServerContext* context,
                                                         const v1::WithdrawRequestRequest* request,
                                                         v1::WithdrawRequestResponse* response) {
  return pipeline_.Unary<v1::WithdrawRequestRequest, v1::WithdrawRequestResponse>(
      context, "WithdrawRequest", request, response,
      [this](const v1::WithdrawRequestRequest& r) {
        return ValidateWithdraw(r, sharding_.shard_count());
      },
      [this](const CallContext& call, const v1::WithdrawRequestRequest& r,
             v1::WithdrawRequestResponse* resp, Pipeline::Done done) {
        Plan plan = [this, r,
                     caller = call.caller](const Snapshot& snap) -> absl::StatusOr<Mutation> {
          RETURN_IF_ERROR(CheckMayCause(caller, snap.request, commonpb::REQUEST_STATUS_WITHDRAWN,
                                        Via::kWithdrawRequest));
          RETURN_IF_ERROR(CheckEtagMatches(r.etag(), snap));
          auto m = PlanMove(snap, commonpb::REQUEST_STATUS_WITHDRAWN, ActorOf(caller), clock_.Now(),
                            r.reason_code(), "", {});
          if (!m.ok() && m.status().code() == absl::StatusCode::kFailedPrecondition) {
            const v1::Request& current = snap.request;
            return common::TransitionNotAllowed(
                current.id(), commonpb::RequestStatus_Name(current.status()),
                Lifecycle::Default().DescribeMovesFrom(current.content().instrument(),
                                                       current.status()),
                absl::StrCat("a request in status ", commonpb::RequestStatus_Name(current.status()),
                             " can no longer be withdrawn"));
          }
          return m;
        };
        Change(r.id(), IdempotencyOf(call, r.request_id(), "WithdrawRequest", r), std::move(plan),
               r.etag().empty(), kChangeAttempts,
               Respond(resp->mutable_request(), Touching(call, r.id(), std::move(done)),
                       "WithdrawRequest", call.trace_id, options_.metrics));
      });
}

namespace {

// The paths under "content." whose values differ between two contents; the safeguards
// checklist item by item.
std::vector<std::string> ChangedFields(const v1::RequestContent& before,
                                       const v1::RequestContent& after) {
  std::vector<std::string> out;
  const auto* d = v1::RequestContent::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    // Compare the field alone through copies holding only it.
    v1::RequestContent only_before, only_after;
    google::protobuf::FieldMask mask;
    mask.add_paths(f->name());
    google::protobuf::util::FieldMaskUtil::MergeMessageTo(before, mask, {}, &only_before);
    google::protobuf::util::FieldMaskUtil::MergeMessageTo(after, mask, {}, &only_after);
    if (DeterministicBytes(only_before) == DeterministicBytes(only_after)) continue;
    if (f->name() == "safeguards") {
      const auto* gd = v1::Safeguards::descriptor();
      const auto* gr = v1::Safeguards::GetReflection();
      for (int j = 0; j < gd->field_count(); ++j) {
        if (gr->GetEnumValue(before.safeguards(), gd->field(j)) !=
            gr->GetEnumValue(after.safeguards(), gd->field(j))) {
          out.push_back(absl::StrCat("content.safeguards.", gd->field(j)->name()));
        }
      }
    } else {
      out.push_back(absl::StrCat("content.", f->name()));
    }
  }
  return out;
}

}  // namespace

grpc::ServerUnaryReactor* IntakeService::SupplementRequest(
    grpc::CallbackServerContext* context, const v1::SupplementRequestRequest* request,
    v1::SupplementRequestResponse* response) {
  return pipeline_.Unary<v1::SupplementRequestRequest, v1::SupplementRequestResponse>(
      context, "SupplementRequest", request, response,
      [this](const v1::SupplementRequestRequest& r) {
        return ValidateSupplement(r, sharding_.shard_count());
      },
      [this](const CallContext& call, const v1::SupplementRequestRequest& r,
             v1::SupplementRequestResponse* resp, Pipeline::Done done) {
        Plan plan = [this, r,
                     caller = call.caller](const Snapshot& snap) -> absl::StatusOr<Mutation> {
          const v1::Request& current = snap.request;
          RETURN_IF_ERROR(CheckIssuerSide(caller, current, "supplement"));
          RETURN_IF_ERROR(CheckEtagMatches(r.etag(), snap));
          const commonpb::Instrument instrument = current.content().instrument();
          if (!Lifecycle::Default().IsOpen(instrument, current.status())) {
            return common::TransitionNotAllowed(
                current.id(), commonpb::RequestStatus_Name(current.status()),
                Lifecycle::Default().DescribeMovesFrom(instrument, current.status()),
                absl::StrCat("a request in status ", commonpb::RequestStatus_Name(current.status()),
                             " can no longer be supplemented"));
          }
          // Replace the named fields: a field the mask names but the input leaves unset is
          // cleared.
          v1::RequestContent merged = current.content();
          google::protobuf::util::FieldMaskUtil::MergeOptions options;
          options.set_replace_message_fields(true);
          options.set_replace_repeated_fields(true);
          const auto* d = v1::RequestContent::descriptor();
          const auto* refl = v1::RequestContent::GetReflection();
          for (const std::string& path : r.update_mask().paths()) {
            refl->ClearField(&merged, d->FindFieldByName(path));
          }
          google::protobuf::util::FieldMaskUtil::MergeMessageTo(r.content(), r.update_mask(),
                                                                options, &merged);
          if (merged.urgency() == commonpb::URGENCY_UNSPECIFIED) {
            merged.set_urgency(commonpb::URGENCY_NORMAL);
          }
          RETURN_IF_ERROR(CheckFixedFields(current.content(), merged));
          // The merged content passes every submit-time check again.
          v1::SubmitRequestRequest as_submitted;
          *as_submitted.mutable_content() = merged;
          RETURN_IF_ERROR(ValidateSubmit(as_submitted, clock_.Now()));
          RETURN_IF_ERROR(CheckSubmitter(caller, merged));

          const absl::Time now = clock_.Now();
          const int64_t version = snap.version + 1;
          std::vector<v1::MissingElement> missing = FindMissingElements(merged);
          commonpb::RequestStatus status = current.status();
          if (status == commonpb::REQUEST_STATUS_INCOMPLETE && missing.empty()) {
            status = commonpb::REQUEST_STATUS_RECEIVED;
          } else if (status == commonpb::REQUEST_STATUS_RECEIVED && !missing.empty()) {
            status = commonpb::REQUEST_STATUS_INCOMPLETE;
          }
          v1::Request after = After(snap, status, version, now);
          const std::vector<std::string> changed = ChangedFields(current.content(), merged);
          *after.mutable_content() = std::move(merged);
          after.clear_missing_elements();
          for (auto& m : missing) *after.add_missing_elements() = std::move(m);

          commonpb::Event e = NewIntakeEvent(after, commonpb::EVENT_TYPE_REQUEST_SUPPLEMENTED,
                                             version, now, ActorOf(caller));
          if (status != current.status()) {
            e.set_status(status);
            e.set_previous_status(current.status());
          }
          for (const auto& m : after.missing_elements()) {
            e.mutable_status_change()->add_missing_elements(m.field());
          }
          for (const auto& path : changed) e.mutable_status_change()->add_changed_fields(path);
          e.set_legal_basis(after.content().legal_basis());

          Mutation m;
          m.id = current.id();
          m.expected_version = snap.version;
          m.new_version = version;
          m.updated_ms = absl::ToUnixMillis(now);
          m.request = after;
          m.fields.emplace_back("status", absl::StrCat(static_cast<int>(status)));
          IndexFields(after, m);
          m.fields_before = IndexedFieldsOf(current);
          m.history.push_back(e);
          m.outbox.push_back(std::move(e));
          m.result = after.SerializeAsString();
          return m;
        };
        Change(r.id(), IdempotencyOf(call, r.request_id(), "SupplementRequest", r), std::move(plan),
               r.etag().empty(), kChangeAttempts,
               Respond(resp->mutable_request(), Touching(call, r.id(), std::move(done)),
                       "SupplementRequest", call.trace_id, options_.metrics));
      });
}

grpc::ServerUnaryReactor* IntakeService::GetRequestHistory(
    grpc::CallbackServerContext* context, const v1::GetRequestHistoryRequest* request,
    v1::GetRequestHistoryResponse* response) {
  return pipeline_.Unary<v1::GetRequestHistoryRequest, v1::GetRequestHistoryResponse>(
      context, "GetRequestHistory", request, response,
      [this](const v1::GetRequestHistoryRequest& r) -> absl::Status {
        RETURN_IF_ERROR(ValidateHistory(r, sharding_.shard_count()));
        if (!r.page_token().empty()) return DecodeHistoryToken(r.page_token(), r.id()).status();
        return absl::OkStatus();
      },
      [this](const CallContext& call, const v1::GetRequestHistoryRequest& r,
             v1::GetRequestHistoryResponse* resp, Pipeline::Done done) {
        const int64_t offset =
            r.page_token().empty() ? 0 : *DecodeHistoryToken(r.page_token(), r.id());
        const int size = r.page_size() == 0 ? 100 : r.page_size();
        // Need-to-know first: the request's parties decide whether the caller reaches it.
        store_.Get(r.id(), [this, call, r, resp, done, offset,
                            size](absl::StatusOr<v1::Request> found) {
          if (!found.ok()) return done(found.status());
          if (absl::Status s = common::CheckRequestAccess(call, PartiesOfRequest(*found), r.id(),
                                                          common::AccessKind::kRead, "history");
              !s.ok()) {
            return done(s);
          }
          store_.HistoryRange(r.id(), offset, size,
                              [resp, done, offset, id = r.id()](absl::StatusOr<HistoryPage> page) {
                                if (!page.ok()) return done(page.status());
                                const int64_t next = offset + page->events.size();
                                for (auto& e : page->events) *resp->add_events() = std::move(e);
                                if (next < page->total) {
                                  resp->set_next_page_token(EncodeHistoryToken(next, id));
                                }
                                done(absl::OkStatus());
                              });
        });
      });
}

}  // namespace rogatory::intake
