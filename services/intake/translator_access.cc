#include "translator_access.h"

namespace rogatory::intake {

namespace commonpb = rogatory::common::v1;

std::set<std::string> DocumentsHeldBy(const std::vector<commonpb::Event>& history,
                                      absl::string_view translator) {
  std::set<std::string> held;
  for (const commonpb::Event& e : history) {
    if (!e.has_translation_job()) continue;
    const std::string& document = e.translation_job().document_id();
    switch (e.type()) {
      case commonpb::EVENT_TYPE_TRANSLATION_JOB_CLAIMED:
        if (e.actor().authority().authority_id() == translator) {
          held.insert(document);
        } else {
          held.erase(document);
        }
        break;
      case commonpb::EVENT_TYPE_TRANSLATION_JOB_COMPLETED:
      case commonpb::EVENT_TYPE_TRANSLATION_JOB_FAILED:
      case commonpb::EVENT_TYPE_TRANSLATION_JOB_CANCELLED:
        held.erase(document);
        break;
      default:
        break;
    }
  }
  return held;
}

}  // namespace rogatory::intake
