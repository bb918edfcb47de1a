// Fuzzes the routing declarations registry loader (protobuf JSON + every declaration's
// checks): any text either loads or is INVALID_ARGUMENT naming the file.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "fuzz_check.h"
#include "registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = rogatory::routing::ParseRegistryFile("fuzz.json", text);
  rogatory::fuzz::CheckRejection(parsed.status(), /*needs_violations=*/false);
  if (!parsed.ok() && !absl::StrContains(parsed.status().message(), "fuzz.json")) {
    rogatory::fuzz::Fail("the error does not name the file", parsed.status());
  }
  return 0;
}
