#pragma once

#include "registry.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/routing/v1/routing.grpc.pb.h"
#include "routing_metrics.h"
#include "routing_store.h"

namespace rogatory::routing {

struct RoutingServiceSettings {
  int max_attempts = 3;  // claims of a job before a failure or expiry dead-letters it
};

// rogatory.routing.v1.TranslationRoutingService on the callback API: every RPC goes through
// the platform pipeline; handlers complete from the store's callbacks and never block.
// Translators (role "translator") claim, heartbeat, complete and fail jobs; the claimer is
// the calling authority, and only it may act on the job it holds.
class RoutingService final : public v1::TranslationRoutingService::CallbackService {
 public:
  RoutingService(RoutingStore& store, const RegistryHolder& registry, const common::Clock& clock,
                 common::Pipeline& pipeline, common::Sharding sharding, RoutingMetrics* metrics,
                 RoutingServiceSettings settings)
      : store_(store),
        registry_(registry),
        clock_(clock),
        pipeline_(pipeline),
        sharding_(sharding),
        metrics_(metrics),
        settings_(settings) {}

  grpc::ServerUnaryReactor* GetRoutingDecision(grpc::CallbackServerContext* ctx,
                                               const v1::GetRoutingDecisionRequest* req,
                                               v1::GetRoutingDecisionResponse* resp) override;
  grpc::ServerUnaryReactor* PreviewRouting(grpc::CallbackServerContext* ctx,
                                           const v1::PreviewRoutingRequest* req,
                                           v1::PreviewRoutingResponse* resp) override;
  grpc::ServerUnaryReactor* GetDeclaration(grpc::CallbackServerContext* ctx,
                                           const v1::GetDeclarationRequest* req,
                                           v1::GetDeclarationResponse* resp) override;
  grpc::ServerUnaryReactor* ListDeclarations(grpc::CallbackServerContext* ctx,
                                             const v1::ListDeclarationsRequest* req,
                                             v1::ListDeclarationsResponse* resp) override;
  grpc::ServerUnaryReactor* ListTranslationJobs(grpc::CallbackServerContext* ctx,
                                                const v1::ListTranslationJobsRequest* req,
                                                v1::ListTranslationJobsResponse* resp) override;
  grpc::ServerUnaryReactor* GetTranslationJob(grpc::CallbackServerContext* ctx,
                                              const v1::GetTranslationJobRequest* req,
                                              v1::GetTranslationJobResponse* resp) override;
  grpc::ServerUnaryReactor* ClaimTranslationJob(grpc::CallbackServerContext* ctx,
                                                const v1::ClaimTranslationJobRequest* req,
                                                v1::ClaimTranslationJobResponse* resp) override;
  grpc::ServerUnaryReactor* HeartbeatTranslationJob(
      grpc::CallbackServerContext* ctx, const v1::HeartbeatTranslationJobRequest* req,
      v1::HeartbeatTranslationJobResponse* resp) override;
  grpc::ServerUnaryReactor* CompleteTranslationJob(
      grpc::CallbackServerContext* ctx, const v1::CompleteTranslationJobRequest* req,
      v1::CompleteTranslationJobResponse* resp) override;
  grpc::ServerUnaryReactor* FailTranslationJob(grpc::CallbackServerContext* ctx,
                                               const v1::FailTranslationJobRequest* req,
                                               v1::FailTranslationJobResponse* resp) override;

  // Checks of RoutingFacts, paths under `prefix` ("facts").
  static void ValidateFacts(const v1::RoutingFacts& f, const std::string& prefix,
                            common::FieldViolations& v);

  static constexpr int kMaxLanguagePairs = 64;

 private:
  // ListTranslationJobs with a queue (validated): the caller's claimable or held jobs.
  void ListQueue(const common::CallContext& call, const v1::ListTranslationJobsRequest& r,
                 v1::ListTranslationJobsResponse* out, common::Pipeline::Done done);

  RoutingStore& store_;
  const RegistryHolder& registry_;
  const common::Clock& clock_;
  common::Pipeline& pipeline_;
  const common::Sharding sharding_;
  RoutingMetrics* metrics_;
  const RoutingServiceSettings settings_;
};

}  // namespace rogatory::routing
