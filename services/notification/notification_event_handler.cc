#include "notification_event_handler.h"

#include "absl/strings/str_cat.h"
#include "rogatory/common/logging.h"
#include "rogatory/common/metrics.h"

namespace rogatory::notification {
namespace {

using common::v1::AuthorityRole;
using common::v1::Event;

void AddParty(std::vector<std::pair<std::string, std::string>>& updates, const char* id_field,
              const char* state_field, const common::v1::AuthorityRef& ref) {
  if (ref.authority_id().empty()) return;
  updates.emplace_back(id_field, ref.authority_id());
  updates.emplace_back(state_field, ref.state());
}

}  // namespace

const char* CatchUpActionOf(const Event& event) {
  if (!event.has_deadline() || event.deadline().deadline_id().empty()) return "";
  switch (event.type()) {
    case common::v1::EVENT_TYPE_DEADLINE_STARTED:
    case common::v1::EVENT_TYPE_DEADLINE_EXTENDED:
    case common::v1::EVENT_TYPE_DEADLINE_SUSPENDED:
    case common::v1::EVENT_TYPE_DEADLINE_RESUMED:
    case common::v1::EVENT_TYPE_DEADLINE_MISSED:
    case common::v1::EVENT_TYPE_DEADLINE_ESCALATED:
      return "keep";
    case common::v1::EVENT_TYPE_DEADLINE_MET:
    case common::v1::EVENT_TYPE_DEADLINE_CANCELLED:
      return "drop";
    default:  // reminders: the start and changes say all a joining party must know
      return "";
  }
}

bool IsTranslationJobEvent(common::v1::EventType type) {
  return type >= common::v1::EVENT_TYPE_TRANSLATION_JOB_QUEUED &&
         type <= common::v1::EVENT_TYPE_TRANSLATION_JOB_CANCELLED;
}

PartiesSeen PartiesOf(const Event& event) {
  PartiesSeen p;
  if (event.has_request()) {
    p.issuing = event.request().issuing_authority();
    p.executing = event.request().executing_authority();
    p.requested_state = event.request().requested_state();
  }
  if (event.has_routing_decided()) {
    if (p.executing.authority_id().empty()) {
      p.executing = event.routing_decided().competent_authority();
    }
    p.central = event.routing_decided().central_authority();
    p.notified = event.routing_decided().notified_authority();
  }
  // The actor, when an authority acted in a role, is a party in that role. This
  // is how the translator of a job is learned: job events name it as their
  // actor once it claimed the job (the job record itself lives in the routing
  // service).
  const auto& actor = event.actor();
  if (!actor.authority().authority_id().empty()) {
    switch (actor.role()) {
      case common::v1::AUTHORITY_ROLE_ISSUING:
        if (p.issuing.authority_id().empty()) p.issuing = actor.authority();
        break;
      case common::v1::AUTHORITY_ROLE_EXECUTING:
        if (p.executing.authority_id().empty()) p.executing = actor.authority();
        break;
      case common::v1::AUTHORITY_ROLE_CENTRAL:
        if (p.central.authority_id().empty()) p.central = actor.authority();
        break;
      case common::v1::AUTHORITY_ROLE_TRANSLATOR:
        if (IsTranslationJobEvent(event.type())) p.translator = actor.authority();
        break;
      default:
        break;
    }
  }
  return p;
}

NotificationEventHandler::NotificationEventHandler(NotificationStore& store,
                                                   const common::Clock& clock,
                                                   common::Sharding sharding,
                                                   NotificationSettings settings,
                                                   NotificationMetrics& metrics)
    : store_(store), clock_(clock), sharding_(sharding), settings_(settings), metrics_(metrics) {}

void NotificationEventHandler::Handle(const Event& event, const common::Dedupe& dedupe,
                                      std::function<void(absl::StatusOr<Outcome>)> done) {
  HandleWithExtras(event, dedupe, {}, std::move(done));
}

void NotificationEventHandler::HandleWithExtras(
    const Event& event, const common::Dedupe& dedupe,
    const std::vector<common::v1::AuthorityRef>& extra_recipients,
    std::function<void(absl::StatusOr<Outcome>)> done) {
  auto shard = sharding_.ShardOf("rq", event.request_id());
  if (!shard.ok()) return done(shard.status());
  if (event.type() == common::v1::EVENT_TYPE_REQUEST_ERASED) {
    return store_.EraseRequest(*shard, event.request_id(), dedupe,
                               [done = std::move(done)](absl::StatusOr<int> erased) {
                                 if (!erased.ok()) return done(erased.status());
                                 done(*erased < 0 ? Outcome::kDuplicate : Outcome::kHandled);
                               });
  }
  const int64_t now_ms = absl::ToUnixMillis(clock_.Now());
  NotificationStore::ReceivedEvent r;
  r.shard = *shard;
  r.dedupe = dedupe;
  r.event_id = event.event_id();
  r.request_id = event.request_id();
  r.event = event.SerializeAsString();
  r.now_ms = now_ms;
  r.evidence_retention = settings_.evidence_retention;
  r.due_ms = settings_.retrieval_timeout > absl::ZeroDuration()
                 ? now_ms + absl::ToInt64Milliseconds(settings_.retrieval_timeout)
                 : 0;
  r.instrument = static_cast<int>(event.instrument());
  r.type = static_cast<int>(event.type());
  for (const auto& extra : extra_recipients) {
    if (!extra.authority_id().empty()) {
      r.extra_recipients.push_back(absl::StrCat(extra.authority_id(), "@", extra.state()));
    }
  }
  r.tell_translator = IsTranslationJobEvent(event.type());
  r.catch_up_action = CatchUpActionOf(event);
  r.deadline_id = event.has_deadline() ? event.deadline().deadline_id() : "";
  r.catch_up_limit = kCatchUpLimit;
  const PartiesSeen parties = PartiesOf(event);
  AddParty(r.party_updates, "iss", "iss_st", parties.issuing);
  AddParty(r.party_updates, "exe", "exe_st", parties.executing);
  AddParty(r.party_updates, "cen", "cen_st", parties.central);
  AddParty(r.party_updates, "tra", "tra_st", parties.translator);
  AddParty(r.party_updates, "ntf", "ntf_st", parties.notified);
  if (!parties.requested_state.empty()) {
    r.party_updates.emplace_back("req_st", parties.requested_state);
  }
  if (event.instrument() != common::v1::INSTRUMENT_UNSPECIFIED) {
    r.party_updates.emplace_back("inst", absl::StrCat(static_cast<int>(event.instrument())));
  }
  store_.ReceiveEvent(
      r, [this, done = std::move(done), source = event.source(), shard = *shard,
          wakeups = fanout_wakeups_](absl::StatusOr<NotificationStore::ReceiveResult> result) {
        if (!result.ok()) return done(result.status());
        if (result->duplicate) return done(Outcome::kDuplicate);
        if (wakeups != nullptr) wakeups->Wake(shard);
        metrics_.EventReceived(common::EventSourceLabel(source));
        metrics_.FanOut(result->recipients);
        if (result->caught_up > 0) {
          common::Log::Info("parties joined a request and were sent its running deadlines",
                            {{"events", result->caught_up}});
        }
        done(Outcome::kHandled);
      });
}

}  // namespace rogatory::notification
