#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// The pure part of the tamper-evident audit log (Directive 2016/680 Art 25): how an entry
// is encoded, how it is authenticated and chained, and how a chain is verified. No I/O here,
// so every rule is unit-tested; audit_log.h stores these strings in Redis.
//
// Each entry carries two HMAC-SHA256 values computed with a key kept OUTSIDE Redis:
//   entry_mac = HMAC(key, "entry\n" || entry)               (computed on the call path)
//   chain_mac = HMAC(key, "chain\n" || prev_chain_mac || "\n" || seq || "\n" || entry)
// where `prev_chain_mac` is "" for sequence 1 and, after audit retention erased the oldest
// entries, the chain mac of the last erased one, kept in an anchor that is itself HMAC'd.
// Someone who can write to Redis but lacks the key can neither edit an entry, nor remove
// one from the middle, nor recompute the chain (with another key or plain SHA-256) without
// the verifier noticing; removing the newest entries (and rewriting the head) is only
// noticed against an exported head (see AuditSealer).
//
// Key rotation: each MAC names the key that made it (AuditKey), so a chain whose older
// entries were MACed with key A and newer ones with key B verifies with the set {A, B}; the
// chain MAC of B's first entry covers A's last chain MAC, so the link across the rotation is
// authenticated like any other.

namespace rogatory::common {

// One access to one request. Ids, roles, methods and codes only: never request content.
struct AuditEntry {
  std::string entry_id;  // unique (a ULID)
  int64_t time_us = 0;   // from the injected clock, microseconds since the epoch
  std::string request_id;
  std::string method;  // "GetRequest", or "DeliverNotification" for background work
  std::string caller;  // authority id, or "rogatory-<service>"
  std::string caller_state;
  std::string caller_roles;  // comma-separated
  bool caller_is_service = false;
  std::string kind;           // read | change | disclose
  std::string detail;         // a document id, a delivery id; never personal data
  std::string justification;  // for reads, the caller's stated reason
  std::string outcome;        // the call's status code name: "OK", "NOT_FOUND"...
  std::string trace_id;

  bool operator==(const AuditEntry&) const = default;
};

// A canonical, unambiguous byte string of an entry (length-prefixed fields after a version
// tag). The MACs are computed over exactly these bytes.
std::string EncodeAuditEntry(const AuditEntry& entry);
absl::StatusOr<AuditEntry> DecodeAuditEntry(absl::string_view encoded);

// The audit HMAC keys: one current key that MACs what is written now, and older keys kept
// to verify what they MACed before a rotation. Every MAC records the id of its key: a MAC
// made with the key of id "default" is the bare hex (exactly as before key ids existed, so
// existing chains and a single-key deployment are unchanged); a MAC made with any other key
// is "<id>:<hex>". Verification recomputes a stored MAC with the key it names. Thread-safe
// (immutable).
class AuditKey {
 public:
  // The id of today's single key, and of the key that MACed a MAC without an id.
  static constexpr char kDefaultId[] = "default";

  // One key of id "default". At least 32 bytes; trailing whitespace (a newline at the end of
  // a file) is not part of the key.
  static absl::StatusOr<AuditKey> FromSecret(std::string secret);
  // A key set: `current` names the key that MACs; every key verifies. Ids are 1 to 64 of
  // [A-Za-z0-9._-]; each secret as FromSecret.
  static absl::StatusOr<AuditKey> FromKeySet(
      std::string current, std::vector<std::pair<std::string, std::string>> secrets);
  // A key file's content: a key set document
  //   {"current": "<id>", "keys": {"default": "<old secret>", "<id>": "<new secret>"}}
  // when it starts with '{', else one secret (FromSecret). INVALID_ARGUMENT naming what is
  // wrong.
  static absl::StatusOr<AuditKey> Parse(std::string text);
  // Reads the key file (a mounted Kubernetes Secret) with Parse. INVALID_ARGUMENT naming the
  // file when it cannot be read or is malformed.
  static absl::StatusOr<AuditKey> FromFile(const std::string& path);

  const std::string& current_id() const { return keys_[current_].id; }
  // Every id held, the current one included, in the order given.
  std::vector<std::string> ids() const;

  // HMAC-SHA256 of `domain` "\n" `data` with the current key, tagged with its id (see
  // above); domains keep the uses apart.
  std::string Mac(absl::string_view domain, absl::string_view data) const;
  std::string EntryMac(absl::string_view encoded_entry) const;
  std::string ChainMac(absl::string_view previous_chain_mac, int64_t sequence,
                       absl::string_view encoded_entry) const;
  // Authenticates the anchor that audit retention leaves when it erases the oldest entries.
  std::string AnchorMac(absl::string_view request_id, int64_t sequence, absl::string_view chain_mac,
                        int64_t erased_before_us) const;

  // The same MACs recomputed with the key that `stored_mac` names, for comparison with it.
  // NOT_FOUND naming the key id when this set does not hold that key (a rotation that
  // dropped the old key too early).
  absl::StatusOr<std::string> MacWithKeyOf(absl::string_view stored_mac, absl::string_view domain,
                                           absl::string_view data) const;
  absl::StatusOr<std::string> EntryMacWithKeyOf(absl::string_view stored_mac,
                                                absl::string_view encoded_entry) const;
  absl::StatusOr<std::string> ChainMacWithKeyOf(absl::string_view stored_mac,
                                                absl::string_view previous_chain_mac,
                                                int64_t sequence,
                                                absl::string_view encoded_entry) const;
  absl::StatusOr<std::string> AnchorMacWithKeyOf(absl::string_view stored_mac,
                                                 absl::string_view request_id, int64_t sequence,
                                                 absl::string_view chain_mac,
                                                 int64_t erased_before_us) const;

  // A short public fingerprint of the current key (not secret), logged at start-up so
  // operators can tell which key a replica runs with.
  std::string Fingerprint() const;

 private:
  struct Secret {
    std::string id;
    std::string secret;
  };
  AuditKey(std::vector<Secret> keys, size_t current) : keys_(std::move(keys)), current_(current) {}
  std::string MacWith(const Secret& key, absl::string_view domain, absl::string_view data) const;

  std::vector<Secret> keys_;  // never empty
  size_t current_ = 0;
};

// The key id a stored MAC names: its "<id>:" prefix, or "default" when it has none.
absl::string_view AuditMacKeyId(absl::string_view mac);

// An entry as stored in a request's chain.
struct SealedAuditEntry {
  int64_t sequence = 0;   // 1, 2, 3... per request
  std::string chain_mac;  // hex, "<key id>:" before it unless the key is "default"
  std::string entry_mac;  // likewise
  std::string entry;      // EncodeAuditEntry bytes
};
std::string EncodeSealedEntry(const SealedAuditEntry& sealed);
absl::StatusOr<SealedAuditEntry> DecodeSealedEntry(absl::string_view encoded);

// The last entry of a chain (sequence 0 and an empty mac for an empty chain).
struct AuditChainHead {
  int64_t sequence = 0;
  std::string chain_mac;
  bool operator==(const AuditChainHead&) const = default;
};
std::string EncodeChainHead(const AuditChainHead& head);  // "<seq> <mac>"
absl::StatusOr<AuditChainHead> DecodeChainHead(absl::string_view encoded);

// Left by audit retention in place of the erased oldest entries: the last erased entry's
// sequence and chain mac, so the remaining entries still verify.
struct AuditAnchor {
  int64_t sequence = 0;
  std::string chain_mac;
  int64_t erased_before_us = 0;  // entries older than this were erased
  std::string mac;               // AuditKey::AnchorMac
};
std::string EncodeAnchor(const AuditAnchor& anchor);
absl::StatusOr<AuditAnchor> DecodeAnchor(absl::string_view encoded);

// Chains `entries` (encoded, with their entry macs) after `head`, returning them sealed.
struct PendingAuditEntry {
  std::string entry;      // encoded
  std::string entry_mac;  // hex
};
std::vector<SealedAuditEntry> SealAfter(const AuditKey& key, const AuditChainHead& head,
                                        const std::vector<PendingAuditEntry>& entries);

// The outcome of verifying one request's chain.
struct AuditChainVerdict {
  bool intact = true;
  int64_t entries_checked = 0;
  int64_t first_sequence = 0;      // the first entry still kept (after the anchor)
  int64_t first_bad_sequence = 0;  // 0 when intact
  std::string problem;             // why, when not intact; no personal data
  AuditChainHead head;             // the last entry checked
  // The retention anchor the verification started from, as stored, when audit retention
  // erased the oldest entries (sequences 1 to anchor->sequence). Then an intact verdict
  // means "intact since the anchor", not "intact from the start"; when `intact` is false the
  // anchor itself may be what is wrong (first_bad_sequence == anchor->sequence).
  std::optional<AuditAnchor> anchor;
};

// Verifies a chain incrementally (entries arrive in pages). Not thread-safe.
class AuditChainVerifier {
 public:
  // `anchor` is the request's retention anchor, if any; `expected` an exported head the
  // chain must contain (same sequence, same mac), if any.
  AuditChainVerifier(const AuditKey& key, std::string request_id, std::optional<AuditAnchor> anchor,
                     std::optional<AuditChainHead> expected = std::nullopt);

  // Feeds the next stored element (EncodeSealedEntry bytes), oldest first. Returns false
  // once the chain is known to be broken (further elements are ignored).
  bool Add(absl::string_view stored);

  // Ends verification. `stored_head` is the head recorded in Redis, if any: it must be the
  // last element.
  AuditChainVerdict Finish(const std::optional<AuditChainHead>& stored_head);

 private:
  void Fail(int64_t sequence, std::string problem);

  const AuditKey& key_;
  std::string request_id_;
  std::optional<AuditAnchor> anchor_;
  std::optional<AuditChainHead> expected_;
  AuditChainVerdict verdict_;
  std::string previous_mac_;
  int64_t next_sequence_ = 1;
  bool expected_found_ = false;
  absl::flat_hash_set<std::string> entry_ids_;
};

}  // namespace rogatory::common
