#include "intake_service.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "completeness.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "request_validator.h"
#include "rogatory/common/logging.h"
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
  return common::Sha256Hex(absl::StrCat(static_cast<int>(r.status()), "|",
                                        static_cast<int>(r.instrument()), "|", r.issuing_state(),
                                        "|", r.requested_state()))
      .substr(0, 16);
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
  if (c.has_eio() && c.eio().has_execute_by_time()) {
    *f.mutable_issuer_deadline_time() = c.eio().execute_by_time();
  }
  if (c.has_eio() && c.eio().has_execute_on_date()) {
    *f.mutable_issuer_deadline_date() = c.eio().execute_on_date();
  }
  return f;
}

namespace {

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(t));
}

}  // namespace

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

void ApplyView(v1::RequestView view, v1::Request* request) {
  if (view == v1::REQUEST_VIEW_FULL) return;
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
      [this](const v1::SubmitRequestRequest& r) { return ValidateSubmit(r, clock_.Now()); },
      [this](const CallContext& call, const v1::SubmitRequestRequest& r,
             v1::SubmitRequestResponse* resp, Pipeline::Done done) {
        Submit(call, r, resp, std::move(done));
      });
}

void IntakeService::Submit(const CallContext& call, const v1::SubmitRequestRequest& in,
                           v1::SubmitRequestResponse* response, Pipeline::Done done) {
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
  const int shard = nr.idempotency.has_value()
                        ? sharding_.ShardFor(absl::StrCat(call.caller.authority_id, "\n",
                                                          in.request_id()))
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

  commonpb::Event& e = nr.submitted;
  e.set_event_id(common::NewUlid(now));
  e.set_request_id(r.id());
  e.set_sequence(1);
  e.set_type(commonpb::EVENT_TYPE_REQUEST_SUBMITTED);
  *e.mutable_occur_time() = r.create_time();
  *e.mutable_actor()->mutable_authority() = r.content().issuing_authority();
  e.mutable_actor()->set_role(commonpb::AUTHORITY_ROLE_ISSUING);
  e.set_legal_basis(r.content().legal_basis());
  e.set_trace_id(call.trace_id);
  e.set_instrument(r.content().instrument());
  e.set_status(r.status());
  e.set_source("intake");
  *e.mutable_request() = FactsOf(r);
  for (const auto& m : r.missing_elements()) {
    e.mutable_status_change()->add_missing_elements(m.field());
  }

  store_.Create(std::move(nr), [response, done, trace = call.trace_id](
                                   absl::StatusOr<CreateOutcome> outcome) {
    if (!outcome.ok()) return done(outcome.status());
    common::Log::Info(outcome->replayed ? "submission replayed" : "request submitted",
                      {{"request", outcome->request.id()},
                       {"trace_id", trace},
                       {"instrument", commonpb::Instrument_Name(
                                          outcome->request.content().instrument())},
                       {"status", commonpb::RequestStatus_Name(outcome->request.status())}});
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
      [this](const CallContext&, const v1::GetRequestRequest& r, v1::GetRequestResponse* resp,
             Pipeline::Done done) {
        const v1::RequestView view =
            r.view() == v1::REQUEST_VIEW_UNSPECIFIED ? v1::REQUEST_VIEW_FULL : r.view();
        store_.Get(r.id(), [resp, done, view](absl::StatusOr<v1::Request> found) {
          if (!found.ok()) return done(found.status());
          ApplyView(view, &*found);
          *resp->mutable_request() = *std::move(found);
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
      [this](const CallContext&, const v1::ListRequestsRequest& r,
             v1::ListRequestsResponse* resp, Pipeline::Done done) {
        ListQuery q;
        q.status = r.status();
        q.instrument = r.instrument();
        q.issuing_state = r.issuing_state();
        q.requested_state = r.requested_state();
        q.page_size = r.page_size() == 0 ? 50 : r.page_size();
        if (!r.page_token().empty()) q.after = *DecodePageToken(r.page_token(), r);
        const v1::RequestView view =
            r.view() == v1::REQUEST_VIEW_UNSPECIFIED ? v1::REQUEST_VIEW_BASIC : r.view();
        store_.List(q, [resp, done, view, filters = r](absl::StatusOr<ListPage> page) {
          if (!page.ok()) return done(page.status());
          for (auto& req : page->requests) {
            ApplyView(view, &req);
            *resp->add_requests() = std::move(req);
          }
          if (page->next.has_value()) {
            resp->set_next_page_token(EncodePageToken(*page->next, filters));
          }
          done(absl::OkStatus());
        });
      });
}

}  // namespace rogatory::intake
