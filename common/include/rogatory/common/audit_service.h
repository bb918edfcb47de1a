#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "rogatory/admin/v1/audit.grpc.pb.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/redis.h"

namespace rogatory::common {

// The answer of VerifyAuditChain for `verdict`: TAMPERED when it is not intact; EMPTY for a
// chain that never had an entry; INTACT_SINCE_ANCHOR, with the erased range and the anchor,
// when audit retention erased its oldest entries (never INTACT then, so an auditor can tell
// "intact since the anchor" from "intact from the start"); INTACT otherwise.
void FillVerifyAuditChainResponse(const AuditChainVerdict& verdict,
                                  rogatory::admin::v1::VerifyAuditChainResponse* response);

// rogatory.admin.v1.AuditService, served by every service through the platform. Reachable
// by callers with the auditor or operator role; anyone else gets PERMISSION_DENIED whatever
// the request id (so the answer says nothing about the request). Reading a request's audit
// log is itself recorded in that request's chain (a read, detail "audit-log").
//
// Verification reads a whole chain in pages with blocking Redis calls, so calls run on one
// worker thread of this service (never on gRPC's callback threads); at most `max_queued`
// wait, beyond which calls get RESOURCE_EXHAUSTED. With `key` null (audit=log) every call
// answers FAILED_PRECONDITION.
class AuditServiceImpl final : public rogatory::admin::v1::AuditService::CallbackService {
 public:
  AuditServiceImpl(Pipeline& pipeline, RedisClient& redis, const Sharding& sharding,
                   std::shared_ptr<const AuditKey> key, int max_queued = 32);
  // Stops the worker; calls still queued answer UNAVAILABLE.
  ~AuditServiceImpl() override;
  void Stop();

  grpc::ServerUnaryReactor* VerifyAuditChain(
      grpc::CallbackServerContext* context,
      const rogatory::admin::v1::VerifyAuditChainRequest* request,
      rogatory::admin::v1::VerifyAuditChainResponse* response) override;
  grpc::ServerUnaryReactor* ListAuditEntries(
      grpc::CallbackServerContext* context,
      const rogatory::admin::v1::ListAuditEntriesRequest* request,
      rogatory::admin::v1::ListAuditEntriesResponse* response) override;
  // A caller's denial log (denial_log.h); served with audit=log too.
  grpc::ServerUnaryReactor* ListDenials(
      grpc::CallbackServerContext* context, const rogatory::admin::v1::ListDenialsRequest* request,
      rogatory::admin::v1::ListDenialsResponse* response) override;

 private:
  using Job = std::function<void(bool stopping)>;
  absl::Status Permitted(const CallContext& call) const;
  // Queues `job` for the worker; RESOURCE_EXHAUSTED when full.
  absl::Status Enqueue(Job job);
  void Work();

  Pipeline& pipeline_;
  RedisClient& redis_;
  const Sharding& sharding_;
  std::shared_ptr<const AuditKey> key_;
  const size_t max_queued_;

  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace rogatory::common
