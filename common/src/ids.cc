#include "rogatory/common/ids.h"

#include <openssl/evp.h>

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace rogatory::common {
namespace {

std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }()};
  return rng;
}

std::string Digest(absl::string_view data, const EVP_MD* md) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, md, nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

}  // namespace

std::string NewUlid(absl::Time now) {
  static constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(now)) & ((1ULL << 48) - 1);
  uint64_t hi = Rng()(), lo = Rng()();
  // 128 bits: 48 time bits then 80 random bits; emitted 5 bits at a time (130 bits, the
  // first 2 always zero).
  unsigned __int128 v = (static_cast<unsigned __int128>(ms) << 80) |
                        ((static_cast<unsigned __int128>(hi & 0xffff) << 64) | lo);
  std::string out(26, '0');
  for (int i = 25; i >= 0; --i) {
    out[i] = kAlphabet[static_cast<int>(v & 31)];
    v >>= 5;
  }
  return out;
}

std::string NewTraceId() { return absl::StrFormat("%016x%016x", Rng()(), Rng()()); }

std::string Sha1Hex(absl::string_view data) { return Digest(data, EVP_sha1()); }
std::string Sha256Hex(absl::string_view data) { return Digest(data, EVP_sha256()); }

int Sharding::ShardFor(absl::string_view stable_key) const {
  return static_cast<int>(Fnv1a(stable_key) % static_cast<uint64_t>(shard_count_));
}

std::string Sharding::Prefix(int shard) { return absl::StrCat("rg:{s", shard, "}:"); }

std::string Sharding::MakeId(absl::string_view kind, int shard, absl::Time now) {
  return absl::StrCat(kind, "-", shard, "-", NewUlid(now));
}

absl::StatusOr<int> Sharding::ShardOf(absl::string_view kind, absl::string_view id) const {
  absl::string_view rest = id;
  int shard = -1;
  if (absl::ConsumePrefix(&rest, kind) && absl::ConsumePrefix(&rest, "-")) {
    auto dash = rest.find('-');
    if (dash != absl::string_view::npos && rest.size() - dash - 1 == 26 &&
        absl::SimpleAtoi(rest.substr(0, dash), &shard) && shard >= 0 && shard < shard_count_) {
      bool ok = true;
      for (char c : rest.substr(dash + 1)) {
        ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'));
      }
      if (ok) return shard;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("is not a valid ", kind, " id (expected ", kind, "-<shard>-<ulid>)"));
}

}  // namespace rogatory::common
