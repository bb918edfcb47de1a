#pragma once

// Included by one test file of each binary that exercises a service declaring the event types
// it emits (intake, deadlines): after the whole run, no event of an undeclared type was made
// (common::EventBuilder::UndeclaredEmits), else the run fails. A type emitted but not declared
// would reach no receiver whose only wanted types are undeclared (no lane: issue 19).
#include "gtest/gtest.h"
#include "rogatory/common/event_builder.h"

namespace rogatory::testing {

class DeclaredEmitsEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    EXPECT_EQ(common::EventBuilder::UndeclaredEmits(), 0)
        << "an event of a type its emitter did not declare was made (see the error log)";
  }
};

inline ::testing::Environment* const kDeclaredEmitsEnvironment =
    ::testing::AddGlobalTestEnvironment(new DeclaredEmitsEnvironment);

}  // namespace rogatory::testing
