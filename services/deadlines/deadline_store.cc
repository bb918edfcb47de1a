#include "deadline_store.h"

#include "absl/strings/str_cat.h"
#include "deadline_logic.h"

namespace rogatory::deadlines {

std::string IndexedAuthority(const v1::Deadline& d) {
  return IsOpen(d.state()) ? d.executing_authority_id() : "";
}

std::string DeadlineEtag(int64_t version) { return absl::StrCat(version); }

}  // namespace rogatory::deadlines
