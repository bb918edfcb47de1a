#pragma once

#include "absl/strings/string_view.h"

namespace rogatory::common {

// An officially assigned ISO 3166-1 alpha-2 code, upper case ("DE"). "EL" and "UK" are not
// accepted: use "GR" and "GB".
bool IsCountryCode(absl::string_view code);

// A well-formed BCP 47 language tag of the common shape: language (2-3 letters), optional
// script (4 letters), optional region (2 letters or 3 digits), optional variants
// (5-8 alphanumerics or a digit and 3 alphanumerics). Case-insensitive ("pt-PT", "sr-Latn").
bool IsLanguageTag(absl::string_view tag);

}  // namespace rogatory::common
