#include "deadline_store.h"

#include "deadline_logic.h"

namespace rogatory::deadlines {

std::string IndexedAuthority(const v1::Deadline& d) {
  return IsOpen(d.state()) ? d.executing_authority_id() : "";
}

}  // namespace rogatory::deadlines
