#include "router.h"

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

}  // namespace

v1::RoutingDecision DecideRouting(const v1::RoutingFacts& f, const Registry& registry,
                                  absl::Time now) {
  v1::RoutingDecision d;
  d.set_registry_version(registry.version());
  *d.mutable_decide_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(now));
  const std::string instrument = Instrument_Name(f.instrument());
  auto reason = [&](std::string code, std::string detail, const v1::Declaration* decl) {
    auto* r = d.add_reasons();
    r->set_code(std::move(code));
    r->set_detail(std::move(detail));
    if (decl != nullptr) {
      r->set_source(decl->source());
      r->set_confirmed(decl->confirmed());
    }
  };
  auto unroutable = [&](std::string code, std::string detail, const v1::Declaration* decl) {
    d.set_unroutable(true);
    reason(std::move(code), absl::StrCat(detail, "; a person must route this request"), decl);
    return d;
  };

  // 1. The declaration.
  const v1::Declaration* decl = registry.Find(f.requested_state(), f.instrument());
  if (decl == nullptr) {
    if (!registry.HasState(f.requested_state())) {
      return unroutable("UNKNOWN_STATE",
                        absl::StrCat("The registry holds no declaration of ", f.requested_state()),
                        nullptr);
    }
    return unroutable("NO_DECLARATION",
                      absl::StrCat(f.requested_state(), " declared nothing for ", instrument),
                      nullptr);
  }
  if (!decl->applies()) {
    return unroutable("INSTRUMENT_NOT_APPLIED",
                      absl::StrCat(f.requested_state(), " does not apply ", instrument), decl);
  }
  reason("DECLARATION",
         absl::StrCat("Applied the declaration of ", f.requested_state(), " for ", instrument,
                      decl->confirmed() ? " (confirmed)" : " (unconfirmed: check the EJN)"),
         decl);

  // 2. The language.
  const v1::AcceptedLanguage* refused = nullptr;
  const v1::AcceptedLanguage* accepted = nullptr;
  for (const auto& l : decl->accepted_languages()) {
    if (!LanguageMatches(l.language(), f.source_language())) continue;
    if (ConditionHolds(l, f)) {
      accepted = &l;
      break;
    }
    if (refused == nullptr) refused = &l;
  }
  if (accepted != nullptr) {
    reason("SOURCE_LANGUAGE_ACCEPTED",
           absl::StrCat(f.requested_state(), " accepts ", f.source_language(), " for ", instrument,
                        " ", ConditionText(*accepted), "; no translation needed"),
           decl);
  } else {
    if (refused != nullptr) {
      if (refused->condition() == v1::LANGUAGE_CONDITION_URGENT_ONLY) {
        reason("URGENT_ONLY_NOT_URGENT",
               absl::StrCat(f.requested_state(), " accepts ", refused->language(),
                            " in urgent cases only, and this request is not urgent"),
               decl);
      } else {
        reason("RECIPROCITY_NOT_GRANTED",
               absl::StrCat(f.requested_state(), " accepts ", refused->language(), " ",
                            ConditionText(*refused), " only, and the issuing state ",
                            f.issuing_state(), " is not among them"),
               decl);
      }
    } else {
      std::vector<std::string> langs;
      for (const auto& l : decl->accepted_languages()) langs.push_back(l.language());
      reason("SOURCE_LANGUAGE_NOT_ACCEPTED",
             absl::StrCat(f.requested_state(), " does not accept ", f.source_language(), " for ",
                          instrument, " (accepts ", absl::StrJoin(langs, ", "), ")"),
             decl);
    }
    for (const auto& l : decl->accepted_languages()) {
      if (ConditionHolds(l, f)) {
        d.set_translation_required(true);
        d.set_target_language(l.language());
        reason("TRANSLATION_REQUIRED",
               absl::StrCat("Translate from ", f.source_language(), " into ", l.language(),
                            ", the first language ", f.requested_state(), " accepts ",
                            ConditionText(l)),
               decl);
        break;
      }
    }
    if (!d.translation_required()) {  // cannot happen with a validated registry
      return unroutable("NO_TARGET_LANGUAGE",
                        absl::StrCat(f.requested_state(), " accepts no language for ", instrument,
                                     " under these facts"),
                        decl);
    }
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
  if (chosen == nullptr) {
    for (const auto& c : decl->competent_authorities()) {
      if (c.regions().empty()) {
        chosen = &c;
        break;
      }
    }
  }
  if (chosen == nullptr) {
    return unroutable(
        "NO_COMPETENT_AUTHORITY",
        absl::StrCat("No competent authority of ", f.requested_state(), " for ", instrument,
                     " covers ",
                     f.region().empty() ? "the request without a region" : "region " + f.region()),
        decl);
  }
  *d.mutable_competent_authority() = chosen->authority();
  reason(by_region ? "COMPETENT_AUTHORITY_FOR_REGION" : "COMPETENT_AUTHORITY",
         absl::StrCat(
             "Competent: ", chosen->authority().authority_id(),
             by_region ? absl::StrCat(" (covers ", f.region(), ")") : std::string(" (whole state)"),
             ", time zone ", chosen->time_zone()),
         decl);

  // 4. Central authority and channel.
  if (decl->has_central_authority()) {
    *d.mutable_central_authority() = decl->central_authority();
    reason("CENTRAL_AUTHORITY",
           absl::StrCat("Passes through the central authority ",
                        decl->central_authority().authority_id()),
           decl);
  }
  d.set_channel(decl->channel());
  reason("CHANNEL", absl::StrCat("Transmitted by ", common::v1::Channel_Name(decl->channel())),
         decl);
  return d;
}

}  // namespace rogatory::routing
