#include "rogatory/common/codes.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace rogatory::common {
namespace {

constexpr const char* kCountryCodes =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
    "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
    "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
    "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
    "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
    "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
    "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
    "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK";  // XK: Kosovo, user-assigned

const absl::flat_hash_set<std::string>& CountryCodes() {
  static const auto* codes = [] {
    auto* set = new absl::flat_hash_set<std::string>();
    for (absl::string_view c : absl::StrSplit(kCountryCodes, ' ', absl::SkipEmpty())) {
      set->insert(std::string(c));
    }
    return set;
  }();
  return *codes;
}

bool AllOf(absl::string_view s, bool (*pred)(unsigned char)) {
  return std::all_of(s.begin(), s.end(),
                     [pred](char c) { return pred(static_cast<unsigned char>(c)); });
}

}  // namespace

bool IsCountryCode(absl::string_view code) { return CountryCodes().contains(code); }

bool IsLanguageTag(absl::string_view tag) {
  if (tag.empty() || tag.size() > 35) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(tag, '-');
  size_t i = 0;
  // Language.
  if (parts[i].size() < 2 || parts[i].size() > 3 || !AllOf(parts[i], absl::ascii_isalpha)) {
    return false;
  }
  ++i;
  // Script.
  if (i < parts.size() && parts[i].size() == 4 && AllOf(parts[i], absl::ascii_isalpha)) ++i;
  // Region.
  if (i < parts.size() && ((parts[i].size() == 2 && AllOf(parts[i], absl::ascii_isalpha)) ||
                           (parts[i].size() == 3 && AllOf(parts[i], absl::ascii_isdigit)))) {
    ++i;
  }
  // Variants.
  for (; i < parts.size(); ++i) {
    const absl::string_view v = parts[i];
    const bool long_variant = v.size() >= 5 && v.size() <= 8 && AllOf(v, absl::ascii_isalnum);
    const bool digit_variant = v.size() == 4 &&
                               absl::ascii_isdigit(static_cast<unsigned char>(v[0])) &&
                               AllOf(v, absl::ascii_isalnum);
    if (!long_variant && !digit_variant) return false;
  }
  return true;
}

}  // namespace rogatory::common
