#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/v1/events.pb.h"

namespace rogatory::intake {

// Translators reach only the documents of the translation jobs they hold.
//
// Who holds a job is read from the request's history, where intake records the job events
// translation-routing reports: TRANSLATION_JOB_CLAIMED (its actor is the translator) starts
// a hold on the job's document; a later claim by someone else, or COMPLETED, FAILED or
// CANCELLED, ends it. (A lease that merely expires ends the hold at the next claim.)

// Who else reaches documents is common/access.h's policy (documents.cc's DocumentReach
// applies both).

// The documents whose job `translator` holds now, from a request's history in order.
std::set<std::string> DocumentsHeldBy(const std::vector<common::v1::Event>& history,
                                      absl::string_view translator);

}  // namespace rogatory::intake
