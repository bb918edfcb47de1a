#!/usr/bin/env python3
"""tools/lint/clock_calls.py finds every direct clock read it promises to, and the tree passes.

Each case writes one C++ file into a scratch tree shaped like the repository and checks that
the lint names the read (or nothing, for code that takes the injected Clock).
"""

import importlib.util
import pathlib
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("clock_calls", ROOT / "tools/lint/clock_calls.py")
lint = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lint)

CLOCK_H = """#pragma once
// The only place that calls absl::Now() or std::chrono::steady_clock::now().
class Clock {
 public:
  virtual absl::Time Now() const = 0;
};
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  MonotonicTime MonotonicNow() const override {
    return MonotonicTime::FromOrigin(
        absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch()));
  }
};
class SimulatedClock final : public Clock {
 public:
  absl::Time Now() const override { return now_; }
};
"""

GOOD_SERVICE = """#include "rogatory/common/clock.h"
// Never absl::Now() here: "steady_clock" is only named in comments and strings.
void Poll(const Clock& clock) {
  const MonotonicTime next = clock.MonotonicNow() + absl::Seconds(1);
  const char* why = "not system_clock::now()";
  const absl::Time when = clock.Now();
  int time_left = 0;  // a name containing "time(" is not a call of time()
  (void)time_left;
}
"""


class ClockCallsLintTest(unittest.TestCase):
    def problems_of(self, files, pending=frozenset()):
        """Problems the lint finds in a scratch tree holding clock.h plus `files`."""
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            all_files = {"common/include/rogatory/common/clock.h": CLOCK_H}
            all_files.update(files)
            for rel, text in all_files.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
            (root / "services").mkdir(exist_ok=True)
            saved = lint.PENDING
            lint.PENDING = set(pending)
            try:
                _, problems = lint.check_tree(root)
            finally:
                lint.PENDING = saved
            return problems

    def assertFlagged(self, statement, where="services/probe/probe.cc"):
        source = f"void F() {{\n  {statement}\n}}\n"
        problems = self.problems_of({where: source})
        self.assertTrue(any(p.startswith(f"{where}:2: reads a clock directly") for p in problems),
                        f"expected {statement!r} to be flagged, got {problems}")

    def test_code_taking_the_injected_clock_passes(self):
        self.assertEqual(self.problems_of({"services/probe/probe.cc": GOOD_SERVICE}), [])

    def test_real_clock_may_read_the_system_clocks(self):
        self.assertEqual(self.problems_of({}), [])

    def test_every_kind_of_direct_read_is_flagged(self):
        for statement in (
                "absl::Time t = absl::Now();",
                "auto now = &absl::Now;",
                "int64_t ns = absl::GetCurrentTimeNanos();",
                "auto t = std::chrono::system_clock::now();",
                "auto t = std::chrono::steady_clock::now();",
                "using Steady = std::chrono::steady_clock;",
                "auto t = std::chrono::high_resolution_clock::now();",
                "time_t t = time(nullptr);",
                "time_t t = std::time(NULL);",
                "timeval tv; gettimeofday(&tv, nullptr);",
                "timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);",
                "gpr_timespec t = gpr_now(GPR_CLOCK_REALTIME);"):
            with self.subTest(statement=statement):
                self.assertFlagged(statement)

    def test_common_and_headers_are_checked_too(self):
        self.assertFlagged("auto t = absl::Now();", where="common/src/probe.cc")
        self.assertFlagged("auto t = absl::Now();", where="services/probe/probe.h")

    def test_a_read_outside_real_clock_in_clock_h_is_flagged(self):
        problems = self.problems_of({
            "common/include/rogatory/common/clock.h":
                CLOCK_H.replace("{ return now_; }", "{ return absl::Now(); }")})
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("common/include/rogatory/common/clock.h:17: reads a clock directly",
                      problems[0])

    def test_allowed_class_must_exist(self):
        problems = self.problems_of({
            "common/include/rogatory/common/clock.h": CLOCK_H.replace("RealClock", "WallClock")})
        self.assertTrue(any("has no class RealClock" in p for p in problems), problems)
        self.assertTrue(any("reads a clock directly (absl::Now)" in p for p in problems),
                        problems)

    def test_tools_and_tests_are_not_services(self):
        self.assertEqual(self.problems_of({
            "tools/bench/bench.cc": "auto t = std::chrono::steady_clock::now();\n",
            "tests/unit/probe_test.cc": "auto t = absl::Now();\n"}), [])

    def test_pending_files_may_read_a_clock_until_they_do_not(self):
        reading = {"services/probe/probe.cc": "auto t = absl::Now();\n"}
        self.assertEqual(self.problems_of(reading, pending={"services/probe/probe.cc"}), [])
        stale = self.problems_of({"services/probe/probe.cc": GOOD_SERVICE},
                                 pending={"services/probe/probe.cc"})
        self.assertTrue(any("remove it from PENDING" in p for p in stale), stale)
        missing = self.problems_of({}, pending={"services/probe/gone.cc"})
        self.assertTrue(any("gone.cc: listed in PENDING but does not exist" in p
                            for p in missing), missing)

    def test_the_tree_passes(self):
        checked, problems = lint.check_tree(ROOT)
        self.assertEqual(problems, [])
        self.assertGreater(checked, 0)


if __name__ == "__main__":
    sys.argv[1:] = []
    unittest.main(verbosity=2)
