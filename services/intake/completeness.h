#pragma once

#include <vector>

#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::intake {

// What a legally complete request of its instrument needs but this one lacks: the elements
// the executing side would otherwise ask for before it can act (see shared/domain.md).
// Runs on well-formed content only (after ValidateSubmit). An empty result means complete.
std::vector<v1::MissingElement> FindMissingElements(const v1::RequestContent& content);

}  // namespace rogatory::intake
