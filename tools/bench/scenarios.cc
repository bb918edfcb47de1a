#include "scenarios.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace rogatory::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

// One unary call's state, alive until its callback ran.
template <typename Req, typename Resp>
struct UnaryCall {
  grpc::ClientContext context;
  Req request;
  Resp response;
};

// Starts a unary callback call: `invoke(stub_async, context, request, response, callback)`.
template <typename Req, typename Resp, typename Invoke>
void StartUnary(const CallAuthorizer& auth, Req request, Invoke invoke,
                std::function<void(const grpc::Status&, Resp&)> on_done) {
  auto* call = new UnaryCall<Req, Resp>();
  call->request = std::move(request);
  auth.Prepare(call->context);
  invoke(&call->context, &call->request, &call->response,
         [call, on_done = std::move(on_done)](grpc::Status status) {
           on_done(status, call->response);
           delete call;
         });
}

}  // namespace

// --- RequestFactory ---

RequestFactory::RequestFactory(intake::v1::RequestContent base, std::string run_id)
    : base_(std::move(base)), run_id_(std::move(run_id)) {}

absl::StatusOr<std::unique_ptr<RequestFactory>> RequestFactory::FromSampleFile(
    const std::string& path, std::string run_id) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("setting 'sample': cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  intake::v1::RequestContent content;
  if (auto s = google::protobuf::util::JsonStringToMessage(text.str(), &content); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("setting 'sample': ", path, " is not a RequestContent: ", s.ToString()));
  }
  return std::unique_ptr<RequestFactory>(new RequestFactory(std::move(content), std::move(run_id)));
}

intake::v1::SubmitRequestRequest RequestFactory::Next() {
  const int64_t n = next_.fetch_add(1);
  intake::v1::SubmitRequestRequest r;
  r.set_request_id(absl::StrCat("bench-", run_id_, "-", n));
  *r.mutable_content() = base_;
  intake::v1::RequestContent& c = *r.mutable_content();
  c.set_issuer_reference(absl::StrCat("BENCH-", run_id_, "-", n, " (fictitious)"));
  // Made-up people: a benchmark never carries real personal data.
  for (auto& subject : *c.mutable_subjects()) {
    subject.set_given_names(absl::StrCat("Person ", n));
  }
  return r;
}

CallerIdentity RequestFactory::Issuer() const {
  return {base_.issuing_authority().authority_id(), base_.issuing_authority().state(), {"issuing"}};
}

size_t RequestFactory::TypicalSize() const {
  intake::v1::SubmitRequestRequest r;
  r.set_request_id(absl::StrCat("bench-", run_id_, "-1000000"));
  *r.mutable_content() = base_;
  return r.ByteSizeLong();
}

// --- Sources ---

EchoSource::EchoSource(StubPool<v1::EchoService>& stubs, std::shared_ptr<const CallAuthorizer> auth,
                       size_t payload_bytes)
    : stubs_(stubs), auth_(std::move(auth)), payload_(payload_bytes, 'x') {}

void EchoSource::Start(std::function<void(const grpc::Status&)> done) {
  v1::EchoRequest r;
  r.set_payload(payload_);
  auto& stub = stubs_.Next();
  StartUnary<v1::EchoRequest, v1::EchoResponse>(
      *auth_, std::move(r),
      [&stub](auto* context, auto* request, auto* response, auto callback) {
        stub.async()->Echo(context, request, response, std::move(callback));
      },
      [done = std::move(done)](const grpc::Status& s, v1::EchoResponse&) { done(s); });
}

SubmitSource::SubmitSource(IntakeStubs& stubs, std::shared_ptr<const CallAuthorizer> auth,
                           RequestFactory& factory, Observer on_submitted)
    : stubs_(stubs),
      auth_(std::move(auth)),
      factory_(factory),
      on_submitted_(std::move(on_submitted)) {}

void SubmitSource::Start(std::function<void(const grpc::Status&)> done) {
  auto& stub = stubs_.Next();
  const auto start = SteadyClock::now();
  StartUnary<intake::v1::SubmitRequestRequest, intake::v1::SubmitRequestResponse>(
      *auth_, factory_.Next(),
      [&stub](auto* context, auto* request, auto* response, auto callback) {
        stub.async()->SubmitRequest(context, request, response, std::move(callback));
      },
      [this, start, done = std::move(done)](const grpc::Status& s,
                                            intake::v1::SubmitRequestResponse& response) {
        if (s.ok() && on_submitted_) on_submitted_(response.request().id(), start);
        done(s);
      });
}

GetSource::GetSource(IntakeStubs& stubs, std::shared_ptr<const CallAuthorizer> auth,
                     std::vector<std::string> ids)
    : stubs_(stubs), auth_(std::move(auth)), ids_(std::move(ids)) {}

void GetSource::Start(std::function<void(const grpc::Status&)> done) {
  intake::v1::GetRequestRequest r;
  r.set_id(ids_[next_.fetch_add(1) % ids_.size()]);
  auto& stub = stubs_.Next();
  StartUnary<intake::v1::GetRequestRequest, intake::v1::GetRequestResponse>(
      *auth_, std::move(r),
      [&stub](auto* context, auto* request, auto* response, auto callback) {
        stub.async()->GetRequest(context, request, response, std::move(callback));
      },
      [done = std::move(done)](const grpc::Status& s, intake::v1::GetRequestResponse&) {
        done(s);
      });
}

ListSource::ListSource(IntakeStubs& stubs, std::shared_ptr<const CallAuthorizer> auth,
                       int page_size)
    : stubs_(stubs), auth_(std::move(auth)), page_size_(page_size) {}

void ListSource::Start(std::function<void(const grpc::Status&)> done) {
  intake::v1::ListRequestsRequest r;
  r.set_page_size(page_size_);
  auto& stub = stubs_.Next();
  StartUnary<intake::v1::ListRequestsRequest, intake::v1::ListRequestsResponse>(
      *auth_, std::move(r),
      [&stub](auto* context, auto* request, auto* response, auto callback) {
        stub.async()->ListRequests(context, request, response, std::move(callback));
      },
      [done = std::move(done), want = page_size_](const grpc::Status& s,
                                                  intake::v1::ListRequestsResponse& response) {
        // A short page means the seeding went wrong: the scenario would measure less work.
        if (s.ok() && response.requests_size() < want) {
          return done(grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "short page"));
        }
        done(s);
      });
}

void MixedSource::Add(int weight, CallSource* source) {
  const int total = sources_.empty() ? 0 : sources_.back().first;
  sources_.emplace_back(total + weight, source);
}

void MixedSource::Start(std::function<void(const grpc::Status&)> done) {
  const int slot = static_cast<int>(next_.fetch_add(1) % 100);
  for (const auto& [cumulative, source] : sources_) {
    if (slot < cumulative) return source->Start(std::move(done));
  }
  sources_.back().second->Start(std::move(done));
}

absl::StatusOr<std::vector<std::string>> SeedRequests(IntakeStubs& stubs,
                                                      std::shared_ptr<const CallAuthorizer> auth,
                                                      RequestFactory& factory, int count,
                                                      int concurrency) {
  absl::Mutex mu;
  std::vector<std::string> ids;
  std::string failure;
  int started = 0, finished = 0, in_flight = 0;
  auto done = [&](const grpc::Status& s, intake::v1::SubmitRequestResponse& response) {
    absl::MutexLock lock(&mu);
    if (s.ok()) {
      ids.push_back(response.request().id());
    } else if (failure.empty()) {
      failure = absl::StrCat("seeding: SubmitRequest failed: ", s.error_message());
    }
    ++finished;
    --in_flight;
  };
  absl::MutexLock lock(&mu);
  while (finished < count) {
    auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return (in_flight < concurrency && started < count) || finished == count;
    };
    mu.Await(absl::Condition(&room));
    while (in_flight < concurrency && started < count) {
      ++started;
      ++in_flight;
      auto& stub = stubs.Next();
      mu.Unlock();
      StartUnary<intake::v1::SubmitRequestRequest, intake::v1::SubmitRequestResponse>(
          *auth, factory.Next(),
          [&stub](auto* context, auto* request, auto* response, auto callback) {
            stub.async()->SubmitRequest(context, request, response, std::move(callback));
          },
          done);
      mu.Lock();
    }
  }
  if (!failure.empty()) return absl::UnavailableError(failure);
  return ids;
}

// --- NotificationProbe ---

class NotificationProbe::Reactor final
    : public grpc::ClientReadReactor<notification::v1::SubscribeResponse> {
 public:
  explicit Reactor(NotificationProbe& probe) : probe_(probe) {}
  grpc::ClientContext context;
  notification::v1::SubscribeRequest request;

  void Begin(notification::v1::NotificationService::Stub& stub) {
    stub.async()->Subscribe(&context, &request, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (response_.has_notification()) {
      probe_.Arrived(response_.notification().event().request_id(), SteadyClock::now());
    }
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override { probe_.Ended(status); }

 private:
  NotificationProbe& probe_;
  notification::v1::SubscribeResponse response_;
};

NotificationProbe::NotificationProbe(notification::v1::NotificationService::Stub& stub,
                                     std::shared_ptr<const CallAuthorizer> auth)
    : stub_(stub), auth_(std::move(auth)) {}

NotificationProbe::~NotificationProbe() {
  if (reactor_ == nullptr) return;
  reactor_->context.TryCancel();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&ended_));
}

void NotificationProbe::Open() {
  reactor_ = std::make_unique<Reactor>(*this);
  auth_->Prepare(reactor_->context, /*with_deadline=*/false);
  reactor_->request.set_start_position(notification::v1::START_POSITION_LIVE);
  reactor_->request.mutable_filter()->add_event_types(common::v1::EVENT_TYPE_REQUEST_SUBMITTED);
  reactor_->Begin(stub_);
}

void NotificationProbe::Submitted(const std::string& id, SteadyTime start) {
  absl::MutexLock lock(&mu_);
  Seen& s = seen_[id];
  s.submitted = true;
  s.start = start;
}

void NotificationProbe::Arrived(const std::string& id, SteadyTime at) {
  absl::MutexLock lock(&mu_);
  Seen& s = seen_[id];
  if (s.arrived) return;  // a repeat (reannouncement) is not a new arrival
  s.arrived = true;
  s.arrival = at;
}

void NotificationProbe::Ended(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  ended_ = true;
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    failure_ = absl::StrCat("the notification stream ended: ", status.error_message());
  }
}

std::string NotificationProbe::failure() const {
  absl::MutexLock lock(&mu_);
  return failure_;
}

bool NotificationProbe::AwaitArrival(const std::string& id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto arrived = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = seen_.find(id);
    return ended_ || (it != seen_.end() && it->second.arrived);
  };
  mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout);
  auto it = seen_.find(id);
  return it != seen_.end() && it->second.arrived;
}

LatencySummary NotificationProbe::Summarize(SteadyTime from, SteadyTime until,
                                            absl::Duration window, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto all_arrived = [this, from, until]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ended_) return true;
    for (const auto& [id, s] : seen_) {
      if (s.submitted && s.start >= from && s.start < until && !s.arrived) return false;
    }
    return true;
  };
  mu_.AwaitWithTimeout(absl::Condition(&all_arrived), timeout);
  LatencyRecorder recorder;
  for (const auto& [id, s] : seen_) {
    if (!s.submitted || s.start < from || s.start >= until) continue;
    if (s.arrived) {
      recorder.RecordOk(absl::FromChrono(s.arrival - s.start));
    } else {
      recorder.RecordError("LOST");
    }
  }
  return recorder.Summarize(window);
}

}  // namespace rogatory::bench
