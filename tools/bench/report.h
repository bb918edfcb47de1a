#pragma once

#include <map>
#include <optional>
#include <string>

#include "latency.h"

namespace rogatory::bench {

// One scenario's run, as printed and as written to JSON.
struct ScenarioReport {
  std::string scenario;  // echo | submit | get | list | mixed | e2e
  std::string label;     // free text: "dev", "production"...
  std::string mode;      // closed | open
  int concurrency = 0;   // closed loop
  double rate = 0;       // open loop, calls per second
  size_t payload_bytes = 0;
  absl::Time load_start;  // when the generator started (the window opens a warm-up later)
  LatencySummary calls;   // the calls the generator made
  std::optional<LatencySummary> e2e;  // e2e: submit -> notification on the stream
  std::string e2e_stream_error;       // e2e: why the stream ended early, if it did
};

// A fixed-width table: a header line and one line per summary.
std::string TableHeader();
std::string TableRow(const ScenarioReport& report);
std::string ToJson(const ScenarioReport& report);

}  // namespace rogatory::bench
