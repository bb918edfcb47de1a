#pragma once

#include <functional>
#include <memory>
#include <string>

#include "deadline_store.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/deadlines/v1/deadlines.grpc.pb.h"
#include "rules.h"

namespace rogatory::deadlines {

// Changes of deadlines shared by the API and the event handler: read, change with the pure
// logic, write guarded by the version (retried on a clash), all asynchronous.
class DeadlineTracker {
 public:
  DeadlineTracker(DeadlineStore& store, RulesRegistry& rules, const common::Clock& clock)
      : store_(store), rules_(rules), clock_(clock) {}

  DeadlineStore& store() { return store_; }
  RulesRegistry& rules() { return rules_; }
  const common::Clock& clock() const { return clock_; }

  using Change = std::function<absl::StatusOr<common::v1::EventType>(v1::Deadline&)>;
  using DeadlineCallback = std::function<void(absl::StatusOr<v1::Deadline>)>;

  // Applies `change` to the deadline and writes it with the event it names (none for
  // UNSPECIFIED: the deadline is returned unchanged). With `expected_etag`, only to the
  // deadline at that etag: else ABORTED, reason STALE_ETAG (a replay under
  // `idempotency_key` answers as before, whatever the etag).
  void Mutate(const std::string& deadline_id, const std::string& idempotency_key,
              const std::string& reason_code, Change change, DeadlineCallback done,
              const std::string& expected_etag = "");

  // Starts a deadline under a rule. Idempotent on `idempotency_key` (the same key gives the
  // same deadline).
  struct StartRequest {
    std::string request_id;
    std::string rule_id;
    std::string idempotency_key;  // with the caller: derives the deadline id
    std::string trace_id;
    absl::Time trigger_time;
    common::v1::AuthorityRef executing_authority;
    std::string requested_state;
    common::v1::Instrument instrument = common::v1::INSTRUMENT_UNSPECIFIED;
    std::optional<absl::Time> shortened_due;
  };
  void Start(StartRequest request, DeadlineCallback done);

  // The place a stored deadline counts its days in (its recorded time zone and, when the
  // calendars know its authority, their holidays).
  CountingPlace PlaceOf(const v1::Deadline& d) const;

 private:
  void MutateAttempt(std::shared_ptr<struct MutateState> state);

  DeadlineStore& store_;
  RulesRegistry& rules_;
  const common::Clock& clock_;
};

// rogatory.deadlines.v1.DeadlineService.
class DeadlineService final : public v1::DeadlineService::CallbackService {
 public:
  DeadlineService(DeadlineTracker& tracker, common::Pipeline& pipeline)
      : tracker_(tracker), pipeline_(pipeline) {}

  grpc::ServerUnaryReactor* StartDeadline(grpc::CallbackServerContext* ctx,
                                          const v1::StartDeadlineRequest* req,
                                          v1::StartDeadlineResponse* resp) override;
  grpc::ServerUnaryReactor* ExtendDeadline(grpc::CallbackServerContext* ctx,
                                           const v1::ExtendDeadlineRequest* req,
                                           v1::ExtendDeadlineResponse* resp) override;
  grpc::ServerUnaryReactor* SuspendDeadline(grpc::CallbackServerContext* ctx,
                                            const v1::SuspendDeadlineRequest* req,
                                            v1::SuspendDeadlineResponse* resp) override;
  grpc::ServerUnaryReactor* ResumeDeadline(grpc::CallbackServerContext* ctx,
                                           const v1::ResumeDeadlineRequest* req,
                                           v1::ResumeDeadlineResponse* resp) override;
  grpc::ServerUnaryReactor* CompleteDeadline(grpc::CallbackServerContext* ctx,
                                             const v1::CompleteDeadlineRequest* req,
                                             v1::CompleteDeadlineResponse* resp) override;
  grpc::ServerUnaryReactor* CancelDeadline(grpc::CallbackServerContext* ctx,
                                           const v1::CancelDeadlineRequest* req,
                                           v1::CancelDeadlineResponse* resp) override;
  grpc::ServerUnaryReactor* GetDeadline(grpc::CallbackServerContext* ctx,
                                        const v1::GetDeadlineRequest* req,
                                        v1::GetDeadlineResponse* resp) override;
  grpc::ServerUnaryReactor* ListDeadlines(grpc::CallbackServerContext* ctx,
                                          const v1::ListDeadlinesRequest* req,
                                          v1::ListDeadlinesResponse* resp) override;
  grpc::ServerUnaryReactor* GetDeadlineRules(grpc::CallbackServerContext* ctx,
                                             const v1::GetDeadlineRulesRequest* req,
                                             v1::GetDeadlineRulesResponse* resp) override;

 private:
  DeadlineTracker& tracker_;
  common::Pipeline& pipeline_;
};

// Starts, settles, suspends, resumes and cancels deadlines from intake's events: the
// changes and their events are written with the duplicate marker in one script.
class DeadlineEventHandler final : public common::EventHandler {
 public:
  explicit DeadlineEventHandler(DeadlineTracker& tracker) : tracker_(tracker) {}
  void Handle(const common::v1::Event& event, const common::Dedupe& dedupe,
              std::function<void(absl::StatusOr<Outcome>)> done) override;

 private:
  void Attempt(std::shared_ptr<struct HandleState> state);
  DeadlineTracker& tracker_;
};

}  // namespace rogatory::deadlines
