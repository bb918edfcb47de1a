#pragma once

#include "absl/time/time.h"
#include "registry.h"
#include "rogatory/routing/v1/routing.pb.h"

namespace rogatory::routing {

// Decides where a request goes, in which language, by which channel and why. A pure,
// deterministic function of the facts, the registry and the decision time: the same inputs
// always give the same decision (reasons included), so tests and PreviewRouting can rely on
// it. Rules, in order:
//  0. A production order (Reg. 2023/1543) goes to the service provider's addressee that
//     the facts name (registry's service providers; unknown or none: `unroutable`), in a
//     language the addressee accepts, by CHANNEL_SERVICE_PROVIDER; when the issuer names an
//     enforcing state or traffic/content data are asked for, the enforcing authority of the
//     addressee's state (its PRODUCTION_ORDER declaration) is `notified_authority`.
//  1. The declaration of (requested state, instrument) is looked up. An unknown state, an
//     instrument the state did not declare or does not apply (Denmark, Ireland: no EIO)
//     makes the decision `unroutable`: a person must route it. The reason code is the
//     entry's `not_applied_code` (NOT_BOUND, REPLACED_BY_EU_INSTRUMENT, ...) and the
//     explanation its source.
//  2. Language: no translation when the source language is accepted under its condition
//     (always; urgent only: the request is URGENT or EMERGENCY; reciprocity: the issuing
//     state is named). Otherwise the target is the first accepted language whose condition
//     holds (the registry guarantees one accepted always).
//  3. Authority: a competent authority covering the facts' region when one does, else one
//     covering the whole state; none: `unroutable`. The decision names it with its ISO
//     3166-2 region where the registry knows it, and its time zone.
//  4. Channel and central authority come from the declaration.
// Each step adds a RoutingReason carrying the entry's source and confirmation flag.
v1::RoutingDecision DecideRouting(const v1::RoutingFacts& facts, const Registry& registry,
                                  absl::Time now);

}  // namespace rogatory::routing
