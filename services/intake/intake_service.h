#pragma once

#include "request_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/intake/v1/intake.grpc.pb.h"

namespace rogatory::intake {

// rogatory.intake.v1.IntakeService. SubmitRequest, GetRequest and ListRequests are served;
// the other RPCs answer UNIMPLEMENTED until the intake lifecycle issue lands.
class IntakeService final : public v1::IntakeService::CallbackService {
 public:
  IntakeService(RequestStore& store, const common::Clock& clock, common::Pipeline& pipeline,
                common::Sharding sharding)
      : store_(store), clock_(clock), pipeline_(pipeline), sharding_(sharding) {}

  grpc::ServerUnaryReactor* SubmitRequest(grpc::CallbackServerContext* context,
                                          const v1::SubmitRequestRequest* request,
                                          v1::SubmitRequestResponse* response) override;
  grpc::ServerUnaryReactor* GetRequest(grpc::CallbackServerContext* context,
                                       const v1::GetRequestRequest* request,
                                       v1::GetRequestResponse* response) override;
  grpc::ServerUnaryReactor* ListRequests(grpc::CallbackServerContext* context,
                                         const v1::ListRequestsRequest* request,
                                         v1::ListRequestsResponse* response) override;

 private:
  void Submit(const common::CallContext& call, const v1::SubmitRequestRequest& request,
              v1::SubmitRequestResponse* response, common::Pipeline::Done done);

  RequestStore& store_;
  const common::Clock& clock_;
  common::Pipeline& pipeline_;
  common::Sharding sharding_;
};

// Opaque page tokens: a list position bound to the filters it was issued for.
std::string EncodePageToken(const ListCursor& cursor, const v1::ListRequestsRequest& filters);
// INVALID_ARGUMENT if the token is malformed or was issued for other filters.
absl::StatusOr<ListCursor> DecodePageToken(const std::string& token,
                                           const v1::ListRequestsRequest& filters);

// The facts about a request that intake's events carry (codes and references only).
common::v1::RequestFacts FactsOf(const v1::Request& request);

// Removes what the BASIC view leaves out: personal data and the statement of facts.
void ApplyView(v1::RequestView view, v1::Request* request);

}  // namespace rogatory::intake
