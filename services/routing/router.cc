#include "router.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"

namespace rogatory::routing {
namespace {

using common::v1::Instrument_Name;

bool IsUrgent(common::v1::Urgency u) {
  return u == common::v1::URGENCY_URGENT || u == common::v1::URGENCY_EMERGENCY;
}

std::string ConditionText(const v1::AcceptedLanguage& l) {
  switch (l.condition()) {
    case v1::LANGUAGE_CONDITION_ALWAYS:
      return "always";
    case v1::LANGUAGE_CONDITION_URGENT_ONLY:
      return "in urgent cases only";
    case v1::LANGUAGE_CONDITION_RECIPROCITY:
      return absl::StrCat("on reciprocity with ", absl::StrJoin(l.reciprocity_states(), ", "));
    default:
      return "under no stated condition";
  }
}

bool ConditionHolds(const v1::AcceptedLanguage& l, const v1::RoutingFacts& f) {
  switch (l.condition()) {
    case v1::LANGUAGE_CONDITION_ALWAYS:
      return true;
    case v1::LANGUAGE_CONDITION_URGENT_ONLY:
      return IsUrgent(f.urgency());
    case v1::LANGUAGE_CONDITION_RECIPROCITY:
      for (const auto& s : l.reciprocity_states()) {
        if (s == f.issuing_state()) return true;
      }
      return false;
    default:
      return false;
  }
}

// The authority as the decision names it: with its ISO 3166-2 region when the registry
// knows it (set on the authority, or the one region the authority covers), so that deadline
// tracking picks the region's holidays. An authority that covers the whole state acts where
// the request is executed: it takes the request's region when that region is of its state.
common::v1::AuthorityRef WithRegion(const v1::CompetentAuthority& c,
                                    const v1::RoutingFacts* executed_in = nullptr) {
  common::v1::AuthorityRef ref = c.authority();
  if (ref.region().empty() && c.regions_size() == 1) ref.set_region(c.regions(0));
  if (ref.region().empty() && c.regions().empty() && executed_in != nullptr &&
      absl::StartsWith(executed_in->region(), absl::StrCat(executed_in->requested_state(), "-"))) {
    ref.set_region(executed_in->region());
  }
  return ref;
}

// Where a source and reason come from: a declaration or a service provider's entry.
struct Origin {
  const std::string* source = nullptr;
  bool confirmed = false;
};
Origin Of(const v1::Declaration* d) {
  return d == nullptr ? Origin{} : Origin{&d->source(), d->confirmed()};
}
Origin Of(const v1::ServiceProviderAddressee* p) {
  return p == nullptr ? Origin{} : Origin{&p->source(), p->confirmed()};
}

class DecisionBuilder {
 public:
  DecisionBuilder(const v1::RoutingFacts& f, const Registry& registry, absl::Time now)
      : f_(f), instrument_(Instrument_Name(f.instrument())) {
    d_.set_registry_version(registry.version());
    *d_.mutable_decide_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(now));
  }

  void Reason(std::string code, std::string detail, Origin origin) {
    auto* r = d_.add_reasons();
    r->set_code(std::move(code));
    r->set_detail(std::move(detail));
    if (origin.source != nullptr) {
      r->set_source(*origin.source);
      r->set_confirmed(origin.confirmed);
    }
  }
  v1::RoutingDecision Unroutable(std::string code, std::string detail, Origin origin) {
    d_.set_unroutable(true);
    Reason(std::move(code), absl::StrCat(detail, "; a person must route this request"), origin);
    return d_;
  }

  // The language rule over `languages` of `who` (a state, or a service provider's
  // addressee). False when no language holds (the registry's checks prevent it).
  bool DecideLanguage(const google::protobuf::RepeatedPtrField<v1::AcceptedLanguage>& languages,
                      const std::string& who, Origin origin) {
    const v1::AcceptedLanguage* refused = nullptr;
    const v1::AcceptedLanguage* accepted = nullptr;
    for (const auto& l : languages) {
      if (!LanguageMatches(l.language(), f_.source_language())) continue;
      if (ConditionHolds(l, f_)) {
        accepted = &l;
        break;
      }
      if (refused == nullptr) refused = &l;
    }
    if (accepted != nullptr) {
      Reason("SOURCE_LANGUAGE_ACCEPTED",
             absl::StrCat(who, " accepts ", f_.source_language(), " for ", instrument_, " ",
                          ConditionText(*accepted), "; no translation needed"),
             origin);
      return true;
    }
    if (refused != nullptr) {
      if (refused->condition() == v1::LANGUAGE_CONDITION_URGENT_ONLY) {
        Reason("URGENT_ONLY_NOT_URGENT",
               absl::StrCat(who, " accepts ", refused->language(),
                            " in urgent cases only, and this request is not urgent"),
               origin);
      } else {
        Reason(
            "RECIPROCITY_NOT_GRANTED",
            absl::StrCat(who, " accepts ", refused->language(), " ", ConditionText(*refused),
                         " only, and the issuing state ", f_.issuing_state(), " is not among them"),
            origin);
      }
    } else {
      std::vector<std::string> langs;
      for (const auto& l : languages) langs.push_back(l.language());
      Reason("SOURCE_LANGUAGE_NOT_ACCEPTED",
             absl::StrCat(who, " does not accept ", f_.source_language(), " for ", instrument_,
                          " (accepts ", absl::StrJoin(langs, ", "), ")"),
             origin);
    }
    for (const auto& l : languages) {
      if (ConditionHolds(l, f_)) {
        d_.set_translation_required(true);
        d_.set_target_language(l.language());
        Reason("TRANSLATION_REQUIRED",
               absl::StrCat("Translate from ", f_.source_language(), " into ", l.language(),
                            ", the first language ", who, " accepts ", ConditionText(l)),
               origin);
        return true;
      }
    }
    return false;
  }

  v1::RoutingDecision& decision() { return d_; }
  const std::string& instrument() const { return instrument_; }

 private:
  const v1::RoutingFacts& f_;
  const std::string instrument_;
  v1::RoutingDecision d_;
};

// The competent authority of a declaration covering the whole state, or null.
const v1::CompetentAuthority* WholeState(const v1::Declaration& decl) {
  for (const auto& c : decl.competent_authorities()) {
    if (c.regions().empty()) return &c;
  }
  return nullptr;
}

// European Production Orders (Reg. 2023/1543): addressed to the service provider's
// designated establishment or legal representative (Art 7), with the enforcing state's
// authority notified where Art 8 asks it (traffic or content data).
v1::RoutingDecision DecideProductionOrder(const v1::RoutingFacts& f, const Registry& registry,
                                          DecisionBuilder& b) {
  const std::string& named = f.service_provider().authority_id();
  if (named.empty()) {
    return b.Unroutable("SERVICE_PROVIDER_REQUIRED",
                        "A production order goes to the service provider's designated "
                        "establishment or legal representative (Reg. 2023/1543 Art 7), and this "
                        "one names none",
                        {});
  }
  const v1::ServiceProviderAddressee* p = registry.FindServiceProvider(named);
  if (p == nullptr) {
    return b.Unroutable(
        "UNKNOWN_SERVICE_PROVIDER",
        absl::StrCat("The registry holds no designated establishment or legal representative '",
                     named, "' of a service provider (Reg. 2023/1543 Art 7)"),
        {});
  }
  const auto& a = p->addressee();
  const bool establishment = p->kind() == v1::ADDRESSEE_KIND_DESIGNATED_ESTABLISHMENT;
  b.Reason("SERVICE_PROVIDER_ADDRESSEE",
           absl::StrCat("Addressed to ", p->provider_name(), " through its ",
                        establishment ? "designated establishment " : "legal representative ",
                        a.authority_id(), " in ", a.state(),
                        " (Reg. 2023/1543 Art 7), not to a state authority",
                        p->confirmed() ? "" : " (unconfirmed: check the provider's notification)"),
           Of(p));
  if (!b.DecideLanguage(p->accepted_languages(), a.authority_id(), Of(p))) {
    return b.Unroutable("NO_TARGET_LANGUAGE",
                        absl::StrCat(a.authority_id(), " accepts no language under these facts"),
                        Of(p));
  }
  v1::RoutingDecision& d = b.decision();
  *d.mutable_competent_authority() = a;
  d.set_competent_authority_time_zone(p->time_zone());
  d.set_channel(common::v1::CHANNEL_SERVICE_PROVIDER);

  // The enforcing state is where the addressee is (Art 2).
  const std::string& enforcing = a.state();
  if (!f.enforcing_state().empty() && f.enforcing_state() != enforcing) {
    b.Reason("ENFORCING_STATE_OF_ADDRESSEE",
             absl::StrCat("The enforcing state is ", enforcing, ", where the addressee is, not ",
                          f.enforcing_state(), " as the order says"),
             Of(p));
  }
  if (f.enforcing_state().empty() && !f.traffic_or_content_data()) {
    b.Reason("NO_ENFORCING_NOTIFICATION",
             "Subscriber or identification data only: the enforcing authority is not notified "
             "(Reg. 2023/1543 Art 8(1))",
             Of(p));
  } else {
    const v1::Declaration* decl = registry.Find(enforcing, common::v1::INSTRUMENT_PRODUCTION_ORDER);
    const v1::CompetentAuthority* c =
        decl != nullptr && decl->applies() ? WholeState(*decl) : nullptr;
    if (c == nullptr) {
      return b.Unroutable(
          "NO_ENFORCING_AUTHORITY",
          absl::StrCat("The registry names no enforcing authority of ", enforcing,
                       " to notify (Reg. 2023/1543 Art 8)",
                       decl != nullptr ? absl::StrCat(": ", decl->source()) : std::string()),
          Of(decl));
    }
    *d.mutable_notified_authority() = WithRegion(*c);
    b.Reason("ENFORCING_AUTHORITY_NOTIFIED",
             absl::StrCat("Notify the enforcing authority ", c->authority().authority_id(), " of ",
                          enforcing,
                          " (Reg. 2023/1543 Art 8: traffic or content data, unless the offence "
                          "and the person's residence are in the issuing state, Art 8(2))"),
             Of(decl));
  }
  b.Reason("CHANNEL", "Transmitted by CHANNEL_SERVICE_PROVIDER", Of(p));
  return d;
}

}  // namespace

v1::RoutingDecision DecideRouting(const v1::RoutingFacts& f, const Registry& registry,
                                  absl::Time now) {
  DecisionBuilder b(f, registry, now);
  v1::RoutingDecision& d = b.decision();
  const std::string& instrument = b.instrument();
  if (f.instrument() == common::v1::INSTRUMENT_PRODUCTION_ORDER) {
    return DecideProductionOrder(f, registry, b);
  }

  // 1. The declaration.
  const v1::Declaration* decl = registry.Find(f.requested_state(), f.instrument());
  if (decl == nullptr) {
    if (!registry.HasState(f.requested_state())) {
      return b.Unroutable(
          "UNKNOWN_STATE",
          absl::StrCat("The registry holds no declaration of ", f.requested_state()), {});
    }
    return b.Unroutable("NO_DECLARATION",
                        absl::StrCat(f.requested_state(), " declared nothing for ", instrument,
                                     " in the registry, which should explain this gap"),
                        {});
  }
  if (!decl->applies()) {
    const std::string& code = decl->not_applied_code();
    if (code.empty() || code == "NOT_BOUND" || code == "INSTRUMENT_NOT_APPLIED") {
      return b.Unroutable(
          code.empty() ? "INSTRUMENT_NOT_APPLIED" : code,
          absl::StrCat(f.requested_state(), " does not apply ", instrument, ": ", decl->source()),
          Of(decl));
    }
    return b.Unroutable(code,
                        absl::StrCat("The registry routes no ", instrument, " to ",
                                     f.requested_state(), ": ", decl->source()),
                        Of(decl));
  }
  b.Reason("DECLARATION",
           absl::StrCat("Applied the declaration of ", f.requested_state(), " for ", instrument,
                        decl->confirmed() ? " (confirmed)" : " (unconfirmed: check the EJN)"),
           Of(decl));

  // 2. The language.
  if (!b.DecideLanguage(decl->accepted_languages(), f.requested_state(), Of(decl))) {
    // Cannot happen with a validated registry.
    return b.Unroutable("NO_TARGET_LANGUAGE",
                        absl::StrCat(f.requested_state(), " accepts no language for ", instrument,
                                     " under these facts"),
                        Of(decl));
  }

  // 3. The competent authority.
  const v1::CompetentAuthority* chosen = nullptr;
  bool by_region = false;
  if (!f.region().empty()) {
    for (const auto& c : decl->competent_authorities()) {
      for (const auto& r : c.regions()) {
        if (r == f.region()) {
          chosen = &c;
          by_region = true;
          break;
        }
      }
      if (chosen != nullptr) break;
    }
  }
  if (chosen == nullptr) chosen = WholeState(*decl);
  if (chosen == nullptr) {
    return b.Unroutable(
        "NO_COMPETENT_AUTHORITY",
        absl::StrCat("No competent authority of ", f.requested_state(), " for ", instrument,
                     " covers ",
                     f.region().empty() ? "the request without a region" : "region " + f.region()),
        Of(decl));
  }
  *d.mutable_competent_authority() = WithRegion(*chosen, &f);
  d.set_competent_authority_time_zone(chosen->time_zone());
  b.Reason(by_region ? "COMPETENT_AUTHORITY_FOR_REGION" : "COMPETENT_AUTHORITY",
           absl::StrCat("Competent: ", chosen->authority().authority_id(),
                        by_region ? absl::StrCat(" (covers ", f.region(), ")")
                                  : std::string(" (whole state)"),
                        ", time zone ", chosen->time_zone()),
           Of(decl));

  // 4. Central authority and channel.
  if (decl->has_central_authority()) {
    *d.mutable_central_authority() = decl->central_authority();
    b.Reason("CENTRAL_AUTHORITY",
             absl::StrCat("Passes through the central authority ",
                          decl->central_authority().authority_id()),
             Of(decl));
  }
  d.set_channel(decl->channel());
  b.Reason("CHANNEL", absl::StrCat("Transmitted by ", common::v1::Channel_Name(decl->channel())),
           Of(decl));
  return d;
}

}  // namespace rogatory::routing
