#include "rogatory/common/audit_chain.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "rogatory/common/ids.h"

namespace rogatory::common {
namespace {

constexpr char kEntryVersion[] = "a1";
constexpr size_t kMinKeyBytes = 32;

// Fields are "<length>:<bytes>" one after another: unambiguous whatever the bytes are.
void AppendField(std::string* out, absl::string_view field) {
  absl::StrAppend(out, field.size(), ":", field);
}

absl::StatusOr<std::vector<absl::string_view>> SplitFields(absl::string_view encoded) {
  std::vector<absl::string_view> fields;
  while (!encoded.empty()) {
    const size_t colon = encoded.find(':');
    if (colon == absl::string_view::npos || colon == 0 || colon > 10) {
      return absl::DataLossError("malformed field length");
    }
    uint64_t length = 0;
    if (!absl::SimpleAtoi(encoded.substr(0, colon), &length) ||
        length > encoded.size() - colon - 1) {
      return absl::DataLossError("malformed field length");
    }
    fields.push_back(encoded.substr(colon + 1, length));
    encoded.remove_prefix(colon + 1 + length);
  }
  return fields;
}

absl::StatusOr<int64_t> ParseInt(absl::string_view text) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) return absl::DataLossError("malformed number");
  return v;
}

std::string Hex(const unsigned char* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

// Constant-time comparison of two hex macs.
bool SameMac(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::string EncodeAuditEntry(const AuditEntry& e) {
  std::string out;
  out.reserve(128 + e.detail.size() + e.justification.size());
  AppendField(&out, kEntryVersion);
  AppendField(&out, e.entry_id);
  AppendField(&out, absl::StrCat(e.time_us));
  AppendField(&out, e.request_id);
  AppendField(&out, e.method);
  AppendField(&out, e.caller);
  AppendField(&out, e.caller_state);
  AppendField(&out, e.caller_roles);
  AppendField(&out, e.caller_is_service ? "1" : "0");
  AppendField(&out, e.kind);
  AppendField(&out, e.detail);
  AppendField(&out, e.justification);
  AppendField(&out, e.outcome);
  AppendField(&out, e.trace_id);
  return out;
}

absl::StatusOr<AuditEntry> DecodeAuditEntry(absl::string_view encoded) {
  auto fields = SplitFields(encoded);
  if (!fields.ok()) return fields.status();
  const auto& f = *fields;
  if (f.size() != 14 || f[0] != kEntryVersion) {
    return absl::DataLossError("not an audit entry of a known version");
  }
  AuditEntry e;
  e.entry_id = std::string(f[1]);
  auto time = ParseInt(f[2]);
  if (!time.ok()) return time.status();
  e.time_us = *time;
  e.request_id = std::string(f[3]);
  e.method = std::string(f[4]);
  e.caller = std::string(f[5]);
  e.caller_state = std::string(f[6]);
  e.caller_roles = std::string(f[7]);
  e.caller_is_service = f[8] == "1";
  e.kind = std::string(f[9]);
  e.detail = std::string(f[10]);
  e.justification = std::string(f[11]);
  e.outcome = std::string(f[12]);
  e.trace_id = std::string(f[13]);
  return e;
}

absl::string_view AuditMacKeyId(absl::string_view mac) {
  const size_t colon = mac.find(':');
  if (colon == absl::string_view::npos) return AuditKey::kDefaultId;
  return mac.substr(0, colon);
}

namespace {

bool ValidKeyId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

absl::Status CheckSecret(std::string* secret) {
  absl::StripTrailingAsciiWhitespace(secret);
  if (secret->size() < kMinKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the audit key must be at least ", kMinKeyBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AuditKey> AuditKey::FromSecret(std::string secret) {
  if (absl::Status s = CheckSecret(&secret); !s.ok()) return s;
  return AuditKey({Secret{kDefaultId, std::move(secret)}}, 0);
}

absl::StatusOr<AuditKey> AuditKey::FromKeySet(
    std::string current, std::vector<std::pair<std::string, std::string>> secrets) {
  std::vector<Secret> keys;
  std::optional<size_t> current_index;
  for (auto& [id, secret] : secrets) {
    if (!ValidKeyId(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("audit key id \"", absl::CHexEscape(id),
                       "\": must be 1 to 64 characters of [A-Za-z0-9._-]"));
    }
    for (const Secret& before : keys) {
      if (before.id == id) {
        return absl::InvalidArgumentError(absl::StrCat("audit key id \"", id, "\" appears twice"));
      }
    }
    if (absl::Status s = CheckSecret(&secret); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("audit key \"", id, "\": ", s.message()));
    }
    if (id == current) current_index = keys.size();
    keys.push_back({id, std::move(secret)});
  }
  if (keys.empty()) return absl::InvalidArgumentError("the audit key set holds no key");
  if (!current_index.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("\"current\" names audit key \"",
                                                   absl::CHexEscape(current),
                                                   "\", which the key set does not hold"));
  }
  return AuditKey(std::move(keys), *current_index);
}

absl::StatusOr<AuditKey> AuditKey::Parse(std::string text) {
  if (absl::StripLeadingAsciiWhitespace(text).substr(0, 1) != "{") {
    return FromSecret(std::move(text));
  }
  google::protobuf::Struct root;
  if (!google::protobuf::util::JsonStringToMessage(text, &root).ok()) {
    return absl::InvalidArgumentError(
        "an audit key set must be a JSON object {\"current\": \"<id>\", \"keys\": {\"<id>\": "
        "\"<secret>\", ...}}");
  }
  const auto& fields = root.fields();
  for (const auto& [name, value] : fields) {
    if (name != "current" && name != "keys") {
      return absl::InvalidArgumentError(absl::StrCat("the audit key set has an unknown member \"",
                                                     absl::CHexEscape(name),
                                                     "\" (only \"current\" and \"keys\")"));
    }
  }
  auto current = fields.find("current");
  if (current == fields.end() ||
      current->second.kind_case() != google::protobuf::Value::kStringValue) {
    return absl::InvalidArgumentError(
        "the audit key set needs \"current\": the id of the key that MACs new entries");
  }
  auto keys = fields.find("keys");
  if (keys == fields.end() || keys->second.kind_case() != google::protobuf::Value::kStructValue) {
    return absl::InvalidArgumentError(
        "the audit key set needs \"keys\": an object of key id to secret");
  }
  std::vector<std::pair<std::string, std::string>> secrets;
  for (const auto& [id, value] : keys->second.struct_value().fields()) {
    if (value.kind_case() != google::protobuf::Value::kStringValue) {
      return absl::InvalidArgumentError(
          absl::StrCat("audit key \"", absl::CHexEscape(id), "\": the secret must be a string"));
    }
    secrets.emplace_back(id, value.string_value());
  }
  // protobuf's map has no order: sort by id so ids() is stable.
  std::sort(secrets.begin(), secrets.end());
  return FromKeySet(current->second.string_value(), std::move(secrets));
}

absl::StatusOr<AuditKey> AuditKey::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("setting 'audit-key-file': cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto key = Parse(text.str());
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'audit-key-file': ", path, ": ", key.status().message()));
  }
  return key;
}

std::vector<std::string> AuditKey::ids() const {
  std::vector<std::string> out;
  for (const Secret& k : keys_) out.push_back(k.id);
  return out;
}

std::string AuditKey::MacWith(const Secret& key, absl::string_view domain,
                              absl::string_view data) const {
  std::string message;
  message.reserve(domain.size() + 1 + data.size());
  absl::StrAppend(&message, domain, "\n", data);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &size);
  if (key.id == kDefaultId) return Hex(digest, size);
  return absl::StrCat(key.id, ":", Hex(digest, size));
}

std::string AuditKey::Mac(absl::string_view domain, absl::string_view data) const {
  return MacWith(keys_[current_], domain, data);
}

absl::StatusOr<std::string> AuditKey::MacWithKeyOf(absl::string_view stored_mac,
                                                   absl::string_view domain,
                                                   absl::string_view data) const {
  const absl::string_view id = AuditMacKeyId(stored_mac);
  for (const Secret& k : keys_) {
    if (k.id == id) return MacWith(k, domain, data);
  }
  return absl::NotFoundError(
      absl::StrCat("made with audit key \"", absl::CHexEscape(id),
                   "\", which this service does not hold (keys held: ", absl::StrJoin(ids(), ", "),
                   "; a rotation keeps the retired keys in the key set)"));
}

std::string AuditKey::EntryMac(absl::string_view encoded_entry) const {
  return Mac("entry", encoded_entry);
}

std::string AuditKey::ChainMac(absl::string_view previous_chain_mac, int64_t sequence,
                               absl::string_view encoded_entry) const {
  return Mac("chain", absl::StrCat(previous_chain_mac, "\n", sequence, "\n", encoded_entry));
}

std::string AuditKey::AnchorMac(absl::string_view request_id, int64_t sequence,
                                absl::string_view chain_mac, int64_t erased_before_us) const {
  return Mac("anchor",
             absl::StrCat(request_id, "\n", sequence, "\n", chain_mac, "\n", erased_before_us));
}

absl::StatusOr<std::string> AuditKey::EntryMacWithKeyOf(absl::string_view stored_mac,
                                                        absl::string_view encoded_entry) const {
  return MacWithKeyOf(stored_mac, "entry", encoded_entry);
}

absl::StatusOr<std::string> AuditKey::ChainMacWithKeyOf(absl::string_view stored_mac,
                                                        absl::string_view previous_chain_mac,
                                                        int64_t sequence,
                                                        absl::string_view encoded_entry) const {
  return MacWithKeyOf(stored_mac, "chain",
                      absl::StrCat(previous_chain_mac, "\n", sequence, "\n", encoded_entry));
}

absl::StatusOr<std::string> AuditKey::AnchorMacWithKeyOf(absl::string_view stored_mac,
                                                         absl::string_view request_id,
                                                         int64_t sequence,
                                                         absl::string_view chain_mac,
                                                         int64_t erased_before_us) const {
  return MacWithKeyOf(
      stored_mac, "anchor",
      absl::StrCat(request_id, "\n", sequence, "\n", chain_mac, "\n", erased_before_us));
}

// The bare hex part, so the fingerprint of a key does not depend on its id.
std::string AuditKey::Fingerprint() const {
  const std::string mac = Mac("fingerprint", "");
  const size_t colon = mac.find(':');
  return mac.substr(colon == std::string::npos ? 0 : colon + 1, 16);
}

std::string EncodeSealedEntry(const SealedAuditEntry& s) {
  std::string out;
  AppendField(&out, absl::StrCat(s.sequence));
  AppendField(&out, s.chain_mac);
  AppendField(&out, s.entry_mac);
  AppendField(&out, s.entry);
  return out;
}

absl::StatusOr<SealedAuditEntry> DecodeSealedEntry(absl::string_view encoded) {
  auto fields = SplitFields(encoded);
  if (!fields.ok()) return fields.status();
  if (fields->size() != 4) return absl::DataLossError("not a sealed audit entry");
  SealedAuditEntry s;
  auto seq = ParseInt((*fields)[0]);
  if (!seq.ok()) return seq.status();
  s.sequence = *seq;
  s.chain_mac = std::string((*fields)[1]);
  s.entry_mac = std::string((*fields)[2]);
  s.entry = std::string((*fields)[3]);
  return s;
}

std::string EncodeChainHead(const AuditChainHead& head) {
  return absl::StrCat(head.sequence, " ", head.chain_mac);
}

absl::StatusOr<AuditChainHead> DecodeChainHead(absl::string_view encoded) {
  std::vector<absl::string_view> parts = absl::StrSplit(encoded, absl::MaxSplits(' ', 1));
  if (parts.size() != 2) return absl::DataLossError("malformed chain head");
  auto seq = ParseInt(parts[0]);
  if (!seq.ok()) return seq.status();
  return AuditChainHead{*seq, std::string(parts[1])};
}

std::string EncodeAnchor(const AuditAnchor& a) {
  std::string out;
  AppendField(&out, absl::StrCat(a.sequence));
  AppendField(&out, a.chain_mac);
  AppendField(&out, absl::StrCat(a.erased_before_us));
  AppendField(&out, a.mac);
  return out;
}

absl::StatusOr<AuditAnchor> DecodeAnchor(absl::string_view encoded) {
  auto fields = SplitFields(encoded);
  if (!fields.ok()) return fields.status();
  if (fields->size() != 4) return absl::DataLossError("not an audit anchor");
  AuditAnchor a;
  auto seq = ParseInt((*fields)[0]);
  auto before = ParseInt((*fields)[2]);
  if (!seq.ok()) return seq.status();
  if (!before.ok()) return before.status();
  a.sequence = *seq;
  a.chain_mac = std::string((*fields)[1]);
  a.erased_before_us = *before;
  a.mac = std::string((*fields)[3]);
  return a;
}

std::vector<SealedAuditEntry> SealAfter(const AuditKey& key, const AuditChainHead& head,
                                        const std::vector<PendingAuditEntry>& entries) {
  std::vector<SealedAuditEntry> sealed;
  sealed.reserve(entries.size());
  std::string previous = head.chain_mac;
  int64_t sequence = head.sequence;
  for (const PendingAuditEntry& p : entries) {
    ++sequence;
    SealedAuditEntry s;
    s.sequence = sequence;
    s.chain_mac = key.ChainMac(previous, sequence, p.entry);
    s.entry_mac = p.entry_mac;
    s.entry = p.entry;
    previous = s.chain_mac;
    sealed.push_back(std::move(s));
  }
  return sealed;
}

AuditChainVerifier::AuditChainVerifier(const AuditKey& key, std::string request_id,
                                       std::optional<AuditAnchor> anchor,
                                       std::optional<AuditChainHead> expected)
    : key_(key),
      request_id_(std::move(request_id)),
      anchor_(std::move(anchor)),
      expected_(std::move(expected)) {
  if (anchor_.has_value()) {
    const AuditAnchor& a = *anchor_;
    verdict_.anchor = a;
    auto mac =
        key_.AnchorMacWithKeyOf(a.mac, request_id_, a.sequence, a.chain_mac, a.erased_before_us);
    if (!mac.ok()) {
      Fail(a.sequence, absl::StrCat("the retention anchor's HMAC was ", mac.status().message()));
      return;
    }
    if (!SameMac(a.mac, *mac)) {
      Fail(a.sequence, "the retention anchor is not authentic (bad HMAC)");
      return;
    }
    previous_mac_ = a.chain_mac;
    next_sequence_ = a.sequence + 1;
    verdict_.head = {a.sequence, a.chain_mac};
    if (expected_.has_value() && expected_->sequence == a.sequence) {
      expected_found_ = true;
      if (!SameMac(expected_->chain_mac, a.chain_mac)) {
        Fail(a.sequence, "the exported head does not match the retention anchor");
      }
    }
  }
  verdict_.first_sequence = next_sequence_;
}

void AuditChainVerifier::Fail(int64_t sequence, std::string problem) {
  if (!verdict_.intact) return;
  verdict_.intact = false;
  verdict_.first_bad_sequence = sequence;
  verdict_.problem = std::move(problem);
}

bool AuditChainVerifier::Add(absl::string_view stored) {
  if (!verdict_.intact) return false;
  const int64_t expected_sequence = next_sequence_;
  auto sealed = DecodeSealedEntry(stored);
  if (!sealed.ok()) {
    Fail(expected_sequence, "an entry is not a well-formed sealed audit entry");
    return false;
  }
  if (sealed->sequence != expected_sequence) {
    Fail(expected_sequence,
         absl::StrCat("entry ", expected_sequence, " is missing (found sequence ", sealed->sequence,
                      " in its place)"));
    return false;
  }
  auto entry_mac = key_.EntryMacWithKeyOf(sealed->entry_mac, sealed->entry);
  if (!entry_mac.ok()) {
    Fail(expected_sequence, absl::StrCat("the entry's HMAC was ", entry_mac.status().message()));
    return false;
  }
  if (!SameMac(sealed->entry_mac, *entry_mac)) {
    Fail(expected_sequence, "the entry's content does not match its HMAC (edited)");
    return false;
  }
  auto chain_mac =
      key_.ChainMacWithKeyOf(sealed->chain_mac, previous_mac_, sealed->sequence, sealed->entry);
  if (!chain_mac.ok()) {
    Fail(expected_sequence,
         absl::StrCat("the entry's chain HMAC was ", chain_mac.status().message()));
    return false;
  }
  if (!SameMac(sealed->chain_mac, *chain_mac)) {
    Fail(expected_sequence,
         "the chain HMAC does not link this entry to the previous one (entries removed, "
         "reordered or the chain recomputed without the key)");
    return false;
  }
  auto entry = DecodeAuditEntry(sealed->entry);
  if (!entry.ok()) {
    Fail(expected_sequence, "the entry content is malformed");
    return false;
  }
  if (entry->request_id != request_id_) {
    Fail(expected_sequence, "the entry belongs to another request");
    return false;
  }
  if (!entry_ids_.insert(entry->entry_id).second) {
    Fail(expected_sequence, "the entry repeats an earlier entry (replayed)");
    return false;
  }
  if (expected_.has_value() && expected_->sequence == sealed->sequence) {
    expected_found_ = true;
    if (!SameMac(expected_->chain_mac, sealed->chain_mac)) {
      Fail(expected_sequence, "the exported head does not match this entry (history rewritten)");
      return false;
    }
  }
  previous_mac_ = sealed->chain_mac;
  next_sequence_ = sealed->sequence + 1;
  verdict_.head = {sealed->sequence, sealed->chain_mac};
  ++verdict_.entries_checked;
  return true;
}

AuditChainVerdict AuditChainVerifier::Finish(const std::optional<AuditChainHead>& stored_head) {
  if (verdict_.intact && stored_head.has_value() && !(*stored_head == verdict_.head)) {
    if (stored_head->sequence > verdict_.head.sequence) {
      Fail(verdict_.head.sequence + 1,
           absl::StrCat("the chain ends at ", verdict_.head.sequence, " but its recorded head is ",
                        stored_head->sequence, " (newest entries removed)"));
    } else {
      Fail(stored_head->sequence, "the recorded head does not match the chain's last entry");
    }
  }
  if (verdict_.intact && expected_.has_value() && !expected_found_) {
    if (expected_->sequence > verdict_.head.sequence) {
      Fail(verdict_.head.sequence + 1,
           absl::StrCat("the chain ends at ", verdict_.head.sequence,
                        " but an exported head names entry ", expected_->sequence,
                        " (newest entries removed)"));
    } else {
      Fail(expected_->sequence,
           "the exported head's entry is no longer kept (erased by retention or removed)");
    }
  }
  return verdict_;
}

}  // namespace rogatory::common
