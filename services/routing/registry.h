#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "rogatory/routing/v1/routing.pb.h"

namespace rogatory::routing {

// An immutable, validated snapshot of the declarations registry: what each state declared
// it accepts, per instrument. Shared read-only between threads.
class Registry {
 public:
  // Builds a registry from declarations (and service providers' addressees) already
  // validated (see ParseRegistryFile).
  Registry(std::string version, std::vector<v1::Declaration> declarations,
           std::vector<v1::ServiceProviderAddressee> service_providers = {});

  const std::string& version() const { return version_; }
  // The declaration of (state, instrument), or null.
  const v1::Declaration* Find(absl::string_view state, common::v1::Instrument instrument) const;
  // Whether the registry holds any declaration of the state.
  bool HasState(absl::string_view state) const;
  // All declarations, by state then instrument number.
  const std::vector<v1::Declaration>& declarations() const { return declarations_; }
  // The service provider's addressee named `id`: its addressee's authority id, else its
  // provider id. Null when the registry holds neither.
  const v1::ServiceProviderAddressee* FindServiceProvider(absl::string_view id) const;
  // All service providers' addressees, by provider id.
  const std::vector<v1::ServiceProviderAddressee>& service_providers() const {
    return service_providers_;
  }

 private:
  std::string version_;
  std::vector<v1::Declaration> declarations_;
  std::map<std::pair<std::string, int>, size_t> index_;
  std::vector<v1::ServiceProviderAddressee> service_providers_;
  std::map<std::string, size_t, std::less<>> provider_index_;  // addressee id and provider id
};

// Parses one registry file (protobuf's JSON mapping of v1.DeclarationRegistry) and checks
// every declaration. Errors are INVALID_ARGUMENT naming the file and the line (syntax) or
// the field path (meaning) and the problem, e.g.
// "DE.json: declarations[3].accepted_languages[0].language: 'xx_y' is not a BCP 47 tag".
absl::StatusOr<v1::DeclarationRegistry> ParseRegistryFile(absl::string_view file_name,
                                                          absl::string_view text);

// Loads every `*.json` file of `directory` (hidden entries, such as a ConfigMap's `..data`,
// are skipped; symlinks are followed) into one registry. Fails, naming the file and the
// problem, if a file is unreadable or invalid, if two files declare the same (state,
// instrument) or the same service provider (provider id or addressee id), or if the folder
// holds no declaration. The version is the files' `version`
// labels and a hash of their contents, so any change of data changes it.
absl::StatusOr<std::shared_ptr<const Registry>> LoadRegistryDirectory(const std::string& directory);

// The registry in use, swapped whole on reload. Thread-safe.
class RegistryHolder {
 public:
  explicit RegistryHolder(std::shared_ptr<const Registry> initial) : current_(std::move(initial)) {}
  std::shared_ptr<const Registry> Get() const;
  // Loads `directory`; on success the new registry replaces the old, on failure the old one
  // stays and the error (naming file and problem) is returned.
  absl::Status Reload(const std::string& directory);

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Registry> current_ ABSL_GUARDED_BY(mu_);
};

// Whether a document written in `source` satisfies a declared language `declared`:
// the same tag (case-insensitive), or `declared` names only a language and `source` is a
// regional or script form of it ("pt" accepts "pt-PT"). Norwegian "nb" and "nn" count as "no".
bool LanguageMatches(absl::string_view declared, absl::string_view source);

}  // namespace rogatory::routing
