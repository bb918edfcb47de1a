#include "rogatory/common/audit_chain.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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

absl::StatusOr<AuditKey> AuditKey::FromSecret(std::string secret) {
  absl::StripTrailingAsciiWhitespace(&secret);
  if (secret.size() < kMinKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the audit key must be at least ", kMinKeyBytes, " bytes"));
  }
  return AuditKey(std::move(secret));
}

absl::StatusOr<AuditKey> AuditKey::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("setting 'audit-key-file': cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto key = FromSecret(text.str());
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'audit-key-file': ", path, ": ", key.status().message()));
  }
  return key;
}

std::string AuditKey::Mac(absl::string_view domain, absl::string_view data) const {
  std::string message;
  message.reserve(domain.size() + 1 + data.size());
  absl::StrAppend(&message, domain, "\n", data);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &size);
  return Hex(digest, size);
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

std::string AuditKey::Fingerprint() const { return Mac("fingerprint", "").substr(0, 16); }

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
    if (!SameMac(a.mac, key_.AnchorMac(request_id_, a.sequence, a.chain_mac, a.erased_before_us))) {
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
  if (!SameMac(sealed->entry_mac, key_.EntryMac(sealed->entry))) {
    Fail(expected_sequence, "the entry's content does not match its HMAC (edited)");
    return false;
  }
  if (!SameMac(sealed->chain_mac, key_.ChainMac(previous_mac_, sealed->sequence, sealed->entry))) {
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
