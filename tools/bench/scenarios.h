#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client.h"
#include "latency.h"
#include "load_generator.h"
#include "rogatory/bench/v1/echo.grpc.pb.h"
#include "rogatory/intake/v1/intake.grpc.pb.h"
#include "rogatory/notification/v1/notification.grpc.pb.h"

namespace rogatory::bench {

// Makes submissions from a sample request (samples/requests/*.json, the proto's JSON
// mapping of RequestContent): each one a different made-up person and issuer reference,
// with its own idempotency key (request_id) as a front end sends it. Thread-safe.
class RequestFactory {
 public:
  static absl::StatusOr<std::unique_ptr<RequestFactory>> FromSampleFile(const std::string& path,
                                                                        std::string run_id);
  intake::v1::SubmitRequestRequest Next();
  // The sample's issuing authority: who submits, reads and lists in the scenarios.
  CallerIdentity Issuer() const;
  // The serialized size of a typical submission: the echo baseline's payload size.
  size_t TypicalSize() const;

 private:
  RequestFactory(intake::v1::RequestContent base, std::string run_id);
  const intake::v1::RequestContent base_;
  const std::string run_id_;
  std::atomic<int64_t> next_{0};
};

// Channels and stubs spread round robin over a few connections.
template <typename Service>
class StubPool {
 public:
  StubPool(const ClientSettings& settings, const std::string& address, int channels) {
    for (int i = 0; i < std::max(1, channels); ++i) {
      stubs_.push_back(Service::NewStub(MakeChannel(settings, address)));
    }
  }
  typename Service::Stub& Next() { return *stubs_[next_.fetch_add(1) % stubs_.size()]; }

 private:
  std::vector<std::unique_ptr<typename Service::Stub>> stubs_;
  std::atomic<uint64_t> next_{0};
};

using IntakeStubs = StubPool<intake::v1::IntakeService>;

class EchoSource final : public CallSource {
 public:
  EchoSource(StubPool<v1::EchoService>& stubs, std::shared_ptr<const CallAuthorizer> auth,
             size_t payload_bytes);
  void Start(std::function<void(const grpc::Status&)> done) override;

 private:
  StubPool<v1::EchoService>& stubs_;
  std::shared_ptr<const CallAuthorizer> auth_;
  std::string payload_;
};

// Submits a new request per call. `on_submitted`, when set, learns each accepted request's
// id and when its call started (the end-to-end scenario).
class SubmitSource final : public CallSource {
 public:
  using Observer =
      std::function<void(const std::string& id, std::chrono::steady_clock::time_point start)>;
  SubmitSource(IntakeStubs& stubs, std::shared_ptr<const CallAuthorizer> auth,
               RequestFactory& factory, Observer on_submitted = {});
  void Start(std::function<void(const grpc::Status&)> done) override;

 private:
  IntakeStubs& stubs_;
  std::shared_ptr<const CallAuthorizer> auth_;
  RequestFactory& factory_;
  Observer on_submitted_;
};

// Reads one of `ids` per call (the full view), cycling through them.
class GetSource final : public CallSource {
 public:
  GetSource(IntakeStubs& stubs, std::shared_ptr<const CallAuthorizer> auth,
            std::vector<std::string> ids);
  void Start(std::function<void(const grpc::Status&)> done) override;

 private:
  IntakeStubs& stubs_;
  std::shared_ptr<const CallAuthorizer> auth_;
  const std::vector<std::string> ids_;
  std::atomic<uint64_t> next_{0};
};

// Lists the first page of `page_size` of the caller's requests per call.
class ListSource final : public CallSource {
 public:
  ListSource(IntakeStubs& stubs, std::shared_ptr<const CallAuthorizer> auth, int page_size);
  void Start(std::function<void(const grpc::Status&)> done) override;

 private:
  IntakeStubs& stubs_;
  std::shared_ptr<const CallAuthorizer> auth_;
  const int page_size_;
};

// Interleaves sources by weight (out of 100, deterministic: call n goes to the source whose
// cumulative weight first exceeds n mod 100).
class MixedSource final : public CallSource {
 public:
  void Add(int weight, CallSource* source);
  void Start(std::function<void(const grpc::Status&)> done) override;

 private:
  std::vector<std::pair<int, CallSource*>> sources_;  // cumulative weight
  std::atomic<uint64_t> next_{0};
};

// Submits `count` requests, `concurrency` at a time, and returns their ids.
absl::StatusOr<std::vector<std::string>> SeedRequests(IntakeStubs& stubs,
                                                      std::shared_ptr<const CallAuthorizer> auth,
                                                      RequestFactory& factory, int count,
                                                      int concurrency);

// Watches a subscriber's notification stream for REQUEST_SUBMITTED notifications and
// measures, per request, the time from the start of its SubmitRequest call to the
// notification's arrival on the stream.
class NotificationProbe {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  NotificationProbe(notification::v1::NotificationService::Stub& stub,
                    std::shared_ptr<const CallAuthorizer> auth);
  ~NotificationProbe();
  // Opens the stream (live position, REQUEST_SUBMITTED only).
  void Open();
  // The SubmitSource observer.
  void Submitted(const std::string& id, SteadyTime start);
  // Waits until `id` (submitted earlier) has arrived, up to `timeout`.
  bool AwaitArrival(const std::string& id, absl::Duration timeout);
  // Latencies of the submissions started in [from, until), waiting up to `timeout` for
  // the last ones; those that never arrived are counted as errors ("LOST").
  LatencySummary Summarize(SteadyTime from, SteadyTime until, absl::Duration window,
                           absl::Duration timeout);
  // Why the stream ended, if it did.
  std::string failure() const;

 private:
  class Reactor;
  struct Seen {
    SteadyTime start{};
    SteadyTime arrival{};
    bool submitted = false;
    bool arrived = false;
  };
  void Arrived(const std::string& id, SteadyTime at);
  void Ended(const grpc::Status& status);

  notification::v1::NotificationService::Stub& stub_;
  std::shared_ptr<const CallAuthorizer> auth_;
  std::unique_ptr<Reactor> reactor_;
  mutable absl::Mutex mu_;
  std::map<std::string, Seen> seen_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::string failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rogatory::bench
