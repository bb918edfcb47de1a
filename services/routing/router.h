#pragma once

#include "absl/time/time.h"
#include "registry.h"
#include "rogatory/routing/v1/routing.pb.h"

namespace rogatory::routing {

// Decides where a request goes, in which language, by which channel and why. A pure,
// deterministic function of the facts, the registry and the decision time: the same inputs
// always give the same decision (reasons included), so tests and PreviewRouting can rely on
// it. Rules, in order:
//  1. The declaration of (requested state, instrument) is looked up. An unknown state, an
//     instrument the state did not declare or does not apply (Denmark, Ireland: no EIO)
//     makes the decision `unroutable`: a person must route it.
//  2. Language: no translation when the source language is accepted under its condition
//     (always; urgent only: the request is URGENT or EMERGENCY; reciprocity: the issuing
//     state is named). Otherwise the target is the first accepted language whose condition
//     holds (the registry guarantees one accepted always).
//  3. Authority: a competent authority covering the facts' region when one does, else one
//     covering the whole state; none: `unroutable`.
//  4. Channel and central authority come from the declaration.
// Each step adds a RoutingReason carrying the entry's source and confirmation flag.
v1::RoutingDecision DecideRouting(const v1::RoutingFacts& facts, const Registry& registry,
                                  absl::Time now);

}  // namespace rogatory::routing
