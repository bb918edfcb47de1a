// The pure rules of the audit chain: encoding, HMACs, chaining and verification.
#include "rogatory/common/audit_chain.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rogatory/common/audit_log.h"
#include "rogatory/common/audit_service.h"
#include "rogatory/common/ids.h"

namespace rogatory::common {
namespace {

AuditKey Key(const std::string& secret = "0123456789abcdef0123456789abcdef-test-key") {
  return *AuditKey::FromSecret(secret);
}

AuditEntry Entry(int i, const std::string& request = "rq-3-01hx") {
  AuditEntry e;
  e.entry_id = absl::StrCat("entry-", i);
  e.time_us = 1767225600000000 + i;
  e.request_id = request;
  e.method = "GetRequest";
  e.caller = "FR-PARIS-TJ";
  e.caller_state = "FR";
  e.caller_roles = "issuing";
  e.kind = "read";
  e.justification = "case review";
  e.outcome = "OK";
  e.trace_id = "0af7651916cd43dd8448eb211c80319c";
  return e;
}

std::vector<PendingAuditEntry> Pending(const AuditKey& key, int n, int first = 1) {
  std::vector<PendingAuditEntry> out;
  for (int i = first; i < first + n; ++i) {
    const std::string encoded = EncodeAuditEntry(Entry(i));
    out.push_back({encoded, key.EntryMac(encoded)});
  }
  return out;
}

std::vector<std::string> Stored(const std::vector<SealedAuditEntry>& sealed) {
  std::vector<std::string> out;
  for (const auto& s : sealed) out.push_back(EncodeSealedEntry(s));
  return out;
}

AuditChainVerdict Verify(const AuditKey& key, const std::vector<std::string>& stored,
                         std::optional<AuditChainHead> stored_head,
                         std::optional<AuditChainHead> expected = std::nullopt,
                         std::optional<AuditAnchor> anchor = std::nullopt) {
  AuditChainVerifier v(key, "rq-3-01hx", anchor, expected);
  for (const auto& s : stored) v.Add(s);
  return v.Finish(stored_head);
}

AuditChainHead HeadOf(const std::vector<SealedAuditEntry>& sealed) {
  return {sealed.back().sequence, sealed.back().chain_mac};
}

TEST(AuditEntryTest, EncodingRoundTripsWhateverTheBytes) {
  AuditEntry e = Entry(1);
  e.detail = "doc:1:2\n3";
  e.justification = std::string("a\0b:12:", 7);
  e.caller_is_service = true;
  auto decoded = DecodeAuditEntry(EncodeAuditEntry(e));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, e);
}

TEST(AuditEntryTest, FieldsCannotBeShiftedIntoEachOther) {
  AuditEntry a = Entry(1), b = Entry(1);
  a.detail = "x";
  a.justification = "y";
  b.detail = "";
  b.justification = "xy";
  EXPECT_NE(EncodeAuditEntry(a), EncodeAuditEntry(b));
}

TEST(AuditEntryTest, MalformedEncodingIsRejected) {
  EXPECT_FALSE(DecodeAuditEntry("").ok());
  EXPECT_FALSE(DecodeAuditEntry("2:a1999:x").ok());
  EXPECT_FALSE(DecodeSealedEntry("1:1").ok());
}

TEST(AuditKeyTest, ShortKeysAreRefused) {
  EXPECT_FALSE(AuditKey::FromSecret("short").ok());
  EXPECT_FALSE(AuditKey::FromFile("/nonexistent/audit.key").ok());
}

TEST(AuditKeyTest, TrailingNewlineIsNotPartOfTheKey) {
  EXPECT_EQ(Key("0123456789abcdef0123456789abcdef\n").EntryMac("x"),
            Key("0123456789abcdef0123456789abcdef").EntryMac("x"));
}

TEST(AuditKeyTest, DomainsSeparateTheUses) {
  const AuditKey key = Key();
  EXPECT_NE(key.Mac("entry", "x"), key.Mac("chain", "x"));
  EXPECT_EQ(key.EntryMac("x").size(), 64u);
}

TEST(AuditChainTest, SealedChainVerifies) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  ASSERT_EQ(sealed.size(), 5u);
  EXPECT_EQ(sealed[0].sequence, 1);
  EXPECT_EQ(sealed[4].sequence, 5);
  auto verdict = Verify(key, Stored(sealed), HeadOf(sealed), HeadOf(sealed));
  EXPECT_TRUE(verdict.intact) << verdict.problem;
  EXPECT_EQ(verdict.entries_checked, 5);
  EXPECT_EQ(verdict.head, HeadOf(sealed));
}

TEST(AuditChainTest, SealingInBatchesEqualsSealingAtOnce) {
  const AuditKey key = Key();
  auto all = SealAfter(key, {}, Pending(key, 6));
  auto first = SealAfter(key, {}, Pending(key, 2));
  auto rest = SealAfter(key, HeadOf(first), Pending(key, 4, 3));
  first.insert(first.end(), rest.begin(), rest.end());
  EXPECT_EQ(Stored(first), Stored(all));
}

TEST(AuditChainTest, EditedEntryIsDetected) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 4));
  AuditEntry edited = *DecodeAuditEntry(sealed[2].entry);
  edited.caller = "SOMEONE-ELSE";
  sealed[2].entry = EncodeAuditEntry(edited);
  auto verdict = Verify(key, Stored(sealed), HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 3);
  EXPECT_NE(verdict.problem.find("edited"), std::string::npos) << verdict.problem;
}

TEST(AuditChainTest, EditedEntryWithRecomputedEntryMacButNoKeyIsDetected) {
  const AuditKey key = Key();
  const AuditKey wrong = Key("another-key-another-key-another-key-!!");
  auto sealed = SealAfter(key, {}, Pending(key, 3));
  AuditEntry edited = *DecodeAuditEntry(sealed[1].entry);
  edited.outcome = "NOT_FOUND";
  sealed[1].entry = EncodeAuditEntry(edited);
  sealed[1].entry_mac = wrong.EntryMac(sealed[1].entry);
  auto verdict = Verify(key, Stored(sealed), HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 2);
}

TEST(AuditChainTest, ChainRecomputedWithAnotherKeyIsDetected) {
  const AuditKey key = Key();
  const AuditKey wrong = Key("another-key-another-key-another-key-!!");
  std::vector<PendingAuditEntry> forged;
  for (const auto& p : Pending(key, 3)) forged.push_back({p.entry, wrong.EntryMac(p.entry)});
  auto sealed = SealAfter(wrong, {}, forged);
  auto verdict = Verify(key, Stored(sealed), HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 1);
}

TEST(AuditChainTest, ChainRecomputedWithPlainSha256IsDetected) {
  const AuditKey key = Key();
  std::vector<SealedAuditEntry> forged;
  std::string previous;
  int seq = 0;
  for (const auto& p : Pending(key, 3)) {
    ++seq;
    SealedAuditEntry s;
    s.sequence = seq;
    s.entry = p.entry;
    s.entry_mac = Sha256Hex(absl::StrCat("entry\n", p.entry));
    s.chain_mac = Sha256Hex(absl::StrCat("chain\n", previous, "\n", seq, "\n", p.entry));
    previous = s.chain_mac;
    forged.push_back(s);
  }
  auto verdict = Verify(key, Stored(forged), HeadOf(forged));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 1);
}

TEST(AuditChainTest, DeletedMiddleEntryIsDetected) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  auto stored = Stored(sealed);
  stored.erase(stored.begin() + 2);
  auto verdict = Verify(key, stored, HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 3);
}

TEST(AuditChainTest, DeletedMiddleEntryWithRenumberingIsDetected) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  sealed.erase(sealed.begin() + 2);
  for (size_t i = 2; i < sealed.size(); ++i) sealed[i].sequence = static_cast<int64_t>(i) + 1;
  auto verdict = Verify(key, Stored(sealed), HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 3);
}

TEST(AuditChainTest, ReplayedEntryIsDetectedEvenWhenChainedWithTheKey) {
  // A pending entry copied twice gets chained twice by an honest sealer.
  const AuditKey key = Key();
  auto pending = Pending(key, 2);
  pending.push_back(pending[0]);
  auto sealed = SealAfter(key, {}, pending);
  auto verdict = Verify(key, Stored(sealed), HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 3);
}

TEST(AuditChainTest, EntryOfAnotherRequestIsDetected) {
  const AuditKey key = Key();
  const std::string other = EncodeAuditEntry(Entry(9, "rq-3-other"));
  auto sealed = SealAfter(key, {}, {{other, key.EntryMac(other)}});
  auto verdict = Verify(key, Stored(sealed), HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
}

TEST(AuditChainTest, TruncatedTailIsDetectedByTheRecordedHead) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  auto stored = Stored(sealed);
  stored.resize(3);
  auto verdict = Verify(key, stored, HeadOf(sealed));
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 4);
}

TEST(AuditChainTest, TruncatedTailWithRewrittenHeadIsDetectedOnlyByAnExportedHead) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  const AuditChainHead exported = HeadOf(sealed);
  auto stored = Stored(sealed);
  stored.resize(3);
  const AuditChainHead rewritten{3, sealed[2].chain_mac};
  EXPECT_TRUE(Verify(key, stored, rewritten).intact);  // the residual risk, documented
  auto verdict = Verify(key, stored, rewritten, exported);
  EXPECT_FALSE(verdict.intact);
  EXPECT_EQ(verdict.first_bad_sequence, 4);
}

TEST(AuditChainTest, ExportedHeadOfAnOlderEntryStillMatchesAGrownChain) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  const AuditChainHead exported{2, sealed[1].chain_mac};
  EXPECT_TRUE(Verify(key, Stored(sealed), HeadOf(sealed), exported).intact);
  const AuditChainHead wrong{2, sealed[2].chain_mac};
  EXPECT_FALSE(Verify(key, Stored(sealed), HeadOf(sealed), wrong).intact);
}

TEST(AuditChainTest, AnchorLetsTheRestVerifyAfterRetention) {
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  AuditAnchor anchor{2, sealed[1].chain_mac, 99, ""};
  anchor.mac = key.AnchorMac("rq-3-01hx", 2, anchor.chain_mac, 99);
  auto rest = Stored(sealed);
  rest.erase(rest.begin(), rest.begin() + 2);
  auto verdict = Verify(key, rest, HeadOf(sealed), std::nullopt, anchor);
  EXPECT_TRUE(verdict.intact) << verdict.problem;
  EXPECT_EQ(verdict.first_sequence, 3);
  EXPECT_EQ(verdict.entries_checked, 3);
}

TEST(AuditChainTest, ForgedAnchorHidingOldEntriesIsDetected) {
  const AuditKey key = Key();
  const AuditKey wrong = Key("another-key-another-key-another-key-!!");
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  AuditAnchor anchor{2, sealed[1].chain_mac, 99, ""};
  anchor.mac = wrong.AnchorMac("rq-3-01hx", 2, anchor.chain_mac, 99);
  auto rest = Stored(sealed);
  rest.erase(rest.begin(), rest.begin() + 2);
  auto verdict = Verify(key, rest, HeadOf(sealed), std::nullopt, anchor);
  EXPECT_FALSE(verdict.intact);
}

// Issue 16, item 1: a chain that retention trimmed is "intact since the anchor", never
// plain INTACT, and the answer names the erased range and the anchor it verified from.
TEST(AuditVerdictTest, TrimmedChainIsIntactSinceTheAnchorWithTheErasedRange) {
  namespace adminpb = rogatory::admin::v1;
  const AuditKey key = Key();
  auto sealed = SealAfter(key, {}, Pending(key, 50));
  const int64_t cutoff_us = 1767225600000000;
  AuditAnchor anchor{46, sealed[45].chain_mac, cutoff_us, ""};
  anchor.mac = key.AnchorMac("rq-3-01hx", 46, anchor.chain_mac, cutoff_us);
  auto rest = Stored(sealed);
  rest.erase(rest.begin(), rest.begin() + 46);
  adminpb::VerifyAuditChainResponse trimmed;
  FillVerifyAuditChainResponse(Verify(key, rest, HeadOf(sealed), std::nullopt, anchor), &trimmed);
  EXPECT_EQ(trimmed.verdict(), adminpb::AUDIT_VERDICT_INTACT_SINCE_ANCHOR);
  EXPECT_EQ(trimmed.first_sequence(), 47);
  EXPECT_EQ(trimmed.entries_checked(), 4);
  ASSERT_TRUE(trimmed.has_retention_anchor());
  EXPECT_EQ(trimmed.retention_anchor().first_erased_sequence(), 1);
  EXPECT_EQ(trimmed.retention_anchor().last_erased_sequence(), 46);
  EXPECT_EQ(trimmed.retention_anchor().chain_mac(), sealed[45].chain_mac);
  EXPECT_EQ(trimmed.retention_anchor().mac(), anchor.mac);
  EXPECT_EQ(trimmed.retention_anchor().erased_before().seconds(), cutoff_us / 1000000);

  // The whole chain, never trimmed: INTACT from the start, no anchor.
  adminpb::VerifyAuditChainResponse whole;
  FillVerifyAuditChainResponse(Verify(key, Stored(sealed), HeadOf(sealed)), &whole);
  EXPECT_EQ(whole.verdict(), adminpb::AUDIT_VERDICT_INTACT);
  EXPECT_EQ(whole.first_sequence(), 1);
  EXPECT_FALSE(whole.has_retention_anchor());

  // Every entry erased, the anchor alone left: still since the anchor, not EMPTY.
  adminpb::VerifyAuditChainResponse erased;
  FillVerifyAuditChainResponse(
      Verify(key, {}, AuditChainHead{46, sealed[45].chain_mac}, std::nullopt, anchor), &erased);
  EXPECT_EQ(erased.verdict(), adminpb::AUDIT_VERDICT_INTACT_SINCE_ANCHOR);
  EXPECT_EQ(erased.entries_checked(), 0);
  EXPECT_EQ(erased.retention_anchor().last_erased_sequence(), 46);
}

TEST(AuditVerdictTest, ForgedAnchorIsTamperedAndShownAsStored) {
  namespace adminpb = rogatory::admin::v1;
  const AuditKey key = Key();
  const AuditKey wrong = Key("another-key-another-key-another-key-!!");
  auto sealed = SealAfter(key, {}, Pending(key, 5));
  AuditAnchor anchor{2, sealed[1].chain_mac, 99, ""};
  anchor.mac = wrong.AnchorMac("rq-3-01hx", 2, anchor.chain_mac, 99);
  auto rest = Stored(sealed);
  rest.erase(rest.begin(), rest.begin() + 2);
  adminpb::VerifyAuditChainResponse resp;
  FillVerifyAuditChainResponse(Verify(key, rest, HeadOf(sealed), std::nullopt, anchor), &resp);
  EXPECT_EQ(resp.verdict(), adminpb::AUDIT_VERDICT_TAMPERED);
  EXPECT_EQ(resp.first_bad_sequence(), 2);
  EXPECT_EQ(resp.retention_anchor().last_erased_sequence(), 2);
  EXPECT_EQ(resp.retention_anchor().mac(), anchor.mac);
}

TEST(AuditVerdictTest, ChainThatNeverHadAnEntryIsEmpty) {
  namespace adminpb = rogatory::admin::v1;
  adminpb::VerifyAuditChainResponse resp;
  FillVerifyAuditChainResponse(Verify(Key(), {}, std::nullopt), &resp);
  EXPECT_EQ(resp.verdict(), adminpb::AUDIT_VERDICT_EMPTY);
  EXPECT_FALSE(resp.has_retention_anchor());
}

TEST(AuditChainTest, EmptyChainWithoutExpectationsIsIntact) {
  const AuditKey key = Key();
  auto verdict = Verify(key, {}, std::nullopt);
  EXPECT_TRUE(verdict.intact);
  EXPECT_EQ(verdict.entries_checked, 0);
  EXPECT_FALSE(Verify(key, {}, std::nullopt, AuditChainHead{1, std::string(64, 'a')}).intact);
}

TEST(AuditEntriesOfTest, OneEntryPerDistinctSubjectWithTheCallersFacts) {
  AuditRecord record;
  record.method = "GetDocument";
  record.caller.authority_id = "DE-BERLIN-AG";
  record.caller.state = "DE";
  record.caller.roles = {"executing", "central"};
  record.justification = "execution";
  record.code = absl::StatusCode::kOk;
  record.trace_id = "t1";
  record.subjects = {{"rq-1-a", AccessKind::kRead, ""},
                     {"rq-1-a", AccessKind::kRead, ""},
                     {"rq-1-a", AccessKind::kDisclose, "doc-1-x"},
                     {"rq-2-b", AccessKind::kChange, ""}};
  auto entries = AuditEntriesOf(record, absl::FromUnixSeconds(1767225600));
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].caller_roles, "executing,central");
  EXPECT_EQ(entries[1].kind, "disclose");
  EXPECT_EQ(entries[1].detail, "doc-1-x");
  EXPECT_EQ(entries[2].kind, "change");
  EXPECT_EQ(entries[0].time_us, 1767225600000000);
  EXPECT_NE(entries[0].entry_id, entries[1].entry_id);
  EXPECT_EQ(entries[0].justification, "execution");
}

TEST(AuditShardTest, RequestIdsNameTheirShard) {
  Sharding sharding(16);
  EXPECT_EQ(AuditShardOf(sharding, "rq-7-01hx0000000000000000000000"),
            *sharding.ShardOf("rq", "rq-7-01hx0000000000000000000000"));
  const int other = AuditShardOf(sharding, "something-else");
  EXPECT_GE(other, 0);
  EXPECT_LT(other, 16);
}

}  // namespace
}  // namespace rogatory::common
