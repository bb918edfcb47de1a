#pragma once

// Keys generated at test time with OpenSSL: nothing secret is committed for these tests.

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

namespace rogatory::common::testing {

struct PemPair {
  std::string public_pem;
  std::string private_pem;
};

// "RSA" (2048 bits) or "EC" (P-256).
inline PemPair GenerateKeyPair(const std::string& type) {
  EVP_PKEY* key = type == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                                : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  PemPair out;
  if (key == nullptr) return out;
  auto to_string = [](BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string s(data, static_cast<size_t>(len));
    BIO_free(bio);
    return s;
  };
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(pub, key);
  out.public_pem = to_string(pub);
  BIO* priv = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.private_pem = to_string(priv);
  EVP_PKEY_free(key);
  return out;
}

// The JSON string literal of `s` (PEM has newlines).
inline std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace rogatory::common::testing
