#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "rogatory/intake/v1/intake.pb.h"

namespace rogatory::testing {

// A well-formed, legally complete EIO from a French judge to Germany. Personal data in it
// is invented.
inline intake::v1::RequestContent CompleteEio() {
  intake::v1::RequestContent c;
  c.set_instrument(common::v1::INSTRUMENT_EIO);
  c.set_urgency(common::v1::URGENCY_NORMAL);
  c.mutable_issuing_authority()->set_authority_id("FR-TJ-PARIS-JI");
  c.mutable_issuing_authority()->set_state("FR");
  c.set_requested_state("DE");
  c.set_source_language("fr");
  c.set_legal_basis("Directive 2014/41/EU");
  c.set_issuer_reference("PARQUET-2026-0001");
  c.set_statement_of_facts("Invented facts for a test.");
  auto* s = c.add_subjects();
  s->set_role(intake::v1::SUBJECT_ROLE_SUSPECT);
  s->set_family_name("Testperson");
  s->set_given_names("Anna");
  s->mutable_birth_date()->set_year(1980);
  s->mutable_birth_date()->set_month(2);
  s->mutable_birth_date()->set_day(29);
  auto* o = c.add_offences();
  o->set_description("Fraud over several years.");
  o->set_maximum_penalty_months(60);
  auto* m = c.add_measures();
  m->set_type(intake::v1::MEASURE_TYPE_BANK_ACCOUNT_INFORMATION);
  m->set_description("Accounts held at a bank in Frankfurt.");
  c.mutable_eio();
  return c;
}

// Runs an async store call and waits for its result (tests only).
template <typename T, typename Fn>
absl::StatusOr<T> Await(Fn&& call) {
  absl::Notification done;
  absl::StatusOr<T> result;
  call([&](absl::StatusOr<T> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

}  // namespace rogatory::testing
