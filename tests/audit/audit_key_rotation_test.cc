// Rotation of the audit HMAC key (issue 21, item 1): every MAC names the key that made it,
// the current key MACs, older keys of the set verify, so a chain written under key A and
// continued under key B verifies with {A, B} and fails clearly without A. A key of id
// "default" (today's single key file) writes bare hex MACs, exactly as before key ids.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rogatory/common/audit_chain.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;

constexpr char kSecretA[] = "audit-key-A-0123456789abcdef0123456789";
constexpr char kSecretB[] = "audit-key-B-0123456789abcdef0123456789";
constexpr char kRequest[] = "rq-3-01hx";

AuditEntry Entry(int i) {
  AuditEntry e;
  e.entry_id = absl::StrCat("entry-", i);
  e.time_us = 1767225600000000 + i;
  e.request_id = kRequest;
  e.method = "GetRequest";
  e.caller = "FR-PARIS-TJ";
  e.caller_roles = "issuing";
  e.kind = "read";
  e.outcome = "OK";
  return e;
}

// Entries `first`..`first + n - 1` MACed and chained with `key` after `head`.
std::vector<SealedAuditEntry> Seal(const AuditKey& key, const AuditChainHead& head, int first,
                                   int n) {
  std::vector<PendingAuditEntry> pending;
  for (int i = first; i < first + n; ++i) {
    const std::string encoded = EncodeAuditEntry(Entry(i));
    pending.push_back({encoded, key.EntryMac(encoded)});
  }
  return SealAfter(key, head, pending);
}

AuditChainVerdict Verify(const AuditKey& key, const std::vector<SealedAuditEntry>& chain,
                         std::optional<AuditAnchor> anchor = std::nullopt) {
  AuditChainVerifier verifier(key, kRequest, anchor);
  for (const SealedAuditEntry& s : chain) verifier.Add(EncodeSealedEntry(s));
  return verifier.Finish(AuditChainHead{chain.back().sequence, chain.back().chain_mac});
}

AuditKey Set(const std::string& current, std::vector<std::pair<std::string, std::string>> keys) {
  auto set = AuditKey::FromKeySet(current, std::move(keys));
  EXPECT_TRUE(set.ok()) << set.status();
  return *set;
}

std::vector<SealedAuditEntry> Concat(std::vector<SealedAuditEntry> a,
                                     const std::vector<SealedAuditEntry>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// What today's single key file wrote before key ids: bare hex HMAC-SHA256, computed here
// without AuditKey.
std::string OldHexMac(absl::string_view secret, absl::string_view domain, absl::string_view data) {
  const std::string message = absl::StrCat(domain, "\n", data);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &size);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(size)));
}

TEST(AuditKeyRotationTest, ChainVerifiesAcrossARotationWithBothKeys) {
  // Written under today's single key A (id "default"), then A is rotated to B.
  const AuditKey a = *AuditKey::FromSecret(kSecretA);
  const std::vector<SealedAuditEntry> under_a = Seal(a, {}, 1, 3);
  const AuditKey rotated = Set("b", {{"default", kSecretA}, {"b", kSecretB}});
  EXPECT_EQ(rotated.current_id(), "b");
  const std::vector<SealedAuditEntry> under_b = Seal(rotated, {3, under_a.back().chain_mac}, 4, 2);
  EXPECT_TRUE(absl::StartsWith(under_b[0].chain_mac, "b:"));
  EXPECT_TRUE(absl::StartsWith(under_b[0].entry_mac, "b:"));
  const std::vector<SealedAuditEntry> chain = Concat(under_a, under_b);

  const AuditChainVerdict both = Verify(rotated, chain);
  EXPECT_TRUE(both.intact) << both.problem;
  EXPECT_EQ(both.entries_checked, 5);

  // Without A: the first entry names the key it lacks.
  const AuditChainVerdict without_a = Verify(Set("b", {{"b", kSecretB}}), chain);
  EXPECT_FALSE(without_a.intact);
  EXPECT_EQ(without_a.first_bad_sequence, 1);
  EXPECT_THAT(without_a.problem, HasSubstr("audit key \"default\""));
  EXPECT_THAT(without_a.problem, HasSubstr("does not hold"));

  // A replica still on A alone verifies up to the rotation and names B after it.
  const AuditChainVerdict without_b = Verify(a, chain);
  EXPECT_FALSE(without_b.intact);
  EXPECT_EQ(without_b.first_bad_sequence, 4);
  EXPECT_THAT(without_b.problem, HasSubstr("audit key \"b\""));
}

TEST(AuditKeyRotationTest, RotationBetweenNamedKeysAndBack) {
  const AuditKey k1 = Set("k1", {{"k1", kSecretA}});
  const AuditKey k2 = Set("k2", {{"k1", kSecretA}, {"k2", kSecretB}});
  const auto first = Seal(k1, {}, 1, 2);
  const auto second = Seal(k2, {2, first.back().chain_mac}, 3, 2);
  // A replica not yet rolled to k2 seals again under k1 (a rolling update): still a chain.
  const auto third = Seal(k1, {4, second.back().chain_mac}, 5, 1);
  const auto chain = Concat(Concat(first, second), third);
  EXPECT_TRUE(Verify(k2, chain).intact) << Verify(k2, chain).problem;
}

TEST(AuditKeyRotationTest, RetaggingAnEntryWithAnotherHeldKeyIsDetected) {
  const AuditKey set = Set("b", {{"default", kSecretA}, {"b", kSecretB}});
  auto chain = Seal(set, {}, 1, 2);
  // Strip B's tag: the bare hex now claims key "default" (A), which did not make it.
  chain[1].entry_mac = chain[1].entry_mac.substr(2);
  const AuditChainVerdict verdict = Verify(set, chain);
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 2);
  EXPECT_THAT(verdict.problem, HasSubstr("does not match its HMAC"));
}

TEST(AuditKeyRotationTest, AnchorWrittenBeforeTheRotationStillVerifies) {
  const AuditKey a = *AuditKey::FromSecret(kSecretA);
  const auto under_a = Seal(a, {}, 1, 3);
  AuditAnchor anchor;
  anchor.sequence = 2;
  anchor.chain_mac = under_a[1].chain_mac;
  anchor.erased_before_us = 1767225600000003;
  anchor.mac = a.AnchorMac(kRequest, anchor.sequence, anchor.chain_mac, anchor.erased_before_us);
  const AuditKey rotated = Set("b", {{"default", kSecretA}, {"b", kSecretB}});
  const auto kept = Concat({under_a[2]}, Seal(rotated, {3, under_a[2].chain_mac}, 4, 1));
  const AuditChainVerdict verdict = Verify(rotated, kept, anchor);
  EXPECT_TRUE(verdict.intact) << verdict.problem;
  const AuditChainVerdict without_a = Verify(Set("b", {{"b", kSecretB}}), kept, anchor);
  EXPECT_FALSE(without_a.intact);
  EXPECT_THAT(without_a.problem, HasSubstr("retention anchor's HMAC"));
}

TEST(AuditKeyRotationTest, EntryWrittenTheOldWayVerifiesUnchanged) {
  // An entry as stored before key ids: bare hex MACs, four fields.
  const std::string encoded = EncodeAuditEntry(Entry(1));
  SealedAuditEntry old;
  old.sequence = 1;
  old.entry = encoded;
  old.entry_mac = OldHexMac(kSecretA, "entry", encoded);
  old.chain_mac = OldHexMac(kSecretA, "chain", absl::StrCat("", "\n", 1, "\n", encoded));
  // Today's single key writes exactly that...
  const AuditKey single = *AuditKey::FromSecret(kSecretA);
  EXPECT_EQ(single.EntryMac(encoded), old.entry_mac);
  EXPECT_EQ(single.current_id(), "default");
  // ...and both it and a rotated set holding it as "default" verify it.
  EXPECT_TRUE(Verify(single, {old}).intact);
  const AuditKey rotated = Set("b", {{"default", kSecretA}, {"b", kSecretB}});
  const auto chain = Concat({old}, Seal(rotated, {1, old.chain_mac}, 2, 1));
  EXPECT_TRUE(Verify(rotated, chain).intact) << Verify(rotated, chain).problem;
}

TEST(AuditKeyRotationTest, KeyFileIsOneSecretOrAKeySet) {
  // One secret, as today (trailing newline not part of it).
  auto single = AuditKey::Parse(absl::StrCat(kSecretA, "\n"));
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->current_id(), "default");
  EXPECT_EQ(single->Fingerprint(), AuditKey::FromSecret(kSecretA)->Fingerprint());

  auto set = AuditKey::Parse(absl::StrCat(R"({"current": "2026-12", "keys": {"default": ")",
                                          kSecretA, R"(", "2026-12": ")", kSecretB, R"("}})"));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->current_id(), "2026-12");
  EXPECT_EQ(set->ids(), (std::vector<std::string>{"2026-12", "default"}));
  // The fingerprint names the current key's secret, whatever its id.
  EXPECT_EQ(set->Fingerprint(), AuditKey::FromSecret(kSecretB)->Fingerprint());

  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"{not json", "must be a JSON object"},
      {absl::StrCat(R"({"keys": {"a": ")", kSecretA, R"("}})"), "needs \"current\""},
      {R"({"current": "a"})", "needs \"keys\""},
      {absl::StrCat(R"({"current": "b", "keys": {"a": ")", kSecretA, R"("}})"),
       "\"current\" names audit key \"b\", which the key set does not hold"},
      {R"({"current": "a", "keys": {"a": "too-short"}})", "audit key \"a\": the audit key must be"},
      {absl::StrCat(R"({"current": "a:b", "keys": {"a:b": ")", kSecretA, R"("}})"),
       "must be 1 to 64 characters"},
      {R"({"current": "a", "keys": {"a": 7}})", "the secret must be a string"},
      {absl::StrCat(R"({"current": "a", "keys": {"a": ")", kSecretA, R"("}, "old": 1})"),
       "unknown member \"old\""},
      {R"({"current": "a", "keys": {}})", "holds no key"},
  };
  for (const Case& c : cases) {
    auto key = AuditKey::Parse(c.text);
    ASSERT_FALSE(key.ok()) << c.text;
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(key.status().message()), HasSubstr(c.error)) << c.text;
  }
}

TEST(AuditKeyRotationTest, MacNamesItsKey) {
  EXPECT_EQ(AuditMacKeyId("0a1b"), "default");
  EXPECT_EQ(AuditMacKeyId("k2:0a1b"), "k2");
  const AuditKey set = Set("k2", {{"default", kSecretA}, {"k2", kSecretB}});
  const std::string mac = set.EntryMac("x");
  EXPECT_EQ(mac.size(), 3u + 64u);
  auto again = set.EntryMacWithKeyOf(mac, "x");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, mac);
  EXPECT_EQ(set.EntryMacWithKeyOf("gone:00", "x").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rogatory::common
