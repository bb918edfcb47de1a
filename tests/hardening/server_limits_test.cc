// Malformed request bytes and the bound on concurrent calls, through a real in-process
// gRPC server on port 0 whose service takes the platform's path (Pipeline, and
// AnswerMalformedRequestsWithInvalidArgument as Platform::Serve applies it).
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rogatory/common/malformed_requests.h"
#include "rogatory/common/metrics.h"
#include "rogatory/common/pipeline.h"
#include "rogatory/common/status.h"
#include "rogatory/intake/v1/intake.grpc.pb.h"

namespace rogatory::common {
namespace {

using ::testing::HasSubstr;
namespace v1 = rogatory::intake::v1;
using Steady = std::chrono::steady_clock;

// GetRequest (unary) and DownloadDocument (server streaming) through the pipeline, like
// the real services. A request whose id is "hold" is kept open until Release().
class FakeIntake final : public v1::IntakeService::CallbackService {
 public:
  explicit FakeIntake(Pipeline& pipeline) : pipeline_(pipeline) {}

  grpc::ServerUnaryReactor* GetRequest(grpc::CallbackServerContext* context,
                                       const v1::GetRequestRequest* request,
                                       v1::GetRequestResponse* response) override {
    return pipeline_.Unary<v1::GetRequestRequest, v1::GetRequestResponse>(
        context, "GetRequest", request, response,
        [](const v1::GetRequestRequest& r) {
          FieldViolations v;
          if (r.id().empty()) v.Add("id", "required");
          return v.ToStatus();
        },
        [this](const CallContext&, const v1::GetRequestRequest& r, v1::GetRequestResponse*,
               Pipeline::Done done) {
          if (r.id() == "hold") {
            absl::MutexLock lock(&mu_);
            held_.push_back([done] { done(absl::OkStatus()); });
            return;
          }
          done(absl::OkStatus());
        });
  }

  class Download final : public grpc::ServerWriteReactor<v1::DownloadDocumentResponse> {
   public:
    Download(FakeIntake& service, grpc::CallbackServerContext* context,
             const v1::DownloadDocumentRequest& request)
        : start_(service.pipeline_.clock().MonotonicNow()) {
      auto call = service.pipeline_.Admit(*context, "DownloadDocument", &request,
                                          Pipeline::CallKind::kStream);
      if (!call.ok()) {
        Finish(ToGrpcStatus(call.status()));
        return;
      }
      call_ = *std::move(call);
      auto end = [this, &service](absl::Status status) {
        service.pipeline_.Audit(call_, status, start_,
                                [this](absl::Status answer) { Finish(ToGrpcStatus(answer)); });
      };
      if (request.id() == "hold") {
        absl::MutexLock lock(&service.mu_);
        service.held_.push_back([end] { end(absl::OkStatus()); });
        return;
      }
      end(request.id().empty() ? absl::InvalidArgumentError("id: required") : absl::OkStatus());
    }
    void OnDone() override { delete this; }

   private:
    MonotonicTime start_;
    CallContext call_;
  };

  grpc::ServerWriteReactor<v1::DownloadDocumentResponse>* DownloadDocument(
      grpc::CallbackServerContext* context, const v1::DownloadDocumentRequest* request) override {
    return new Download(*this, context, *request);
  }

  size_t held() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  void Release() {
    std::vector<std::function<void()>> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
    }
    for (auto& f : held) f();
  }

 private:
  Pipeline& pipeline_;
  absl::Mutex mu_;
  std::vector<std::function<void()>> held_ ABSL_GUARDED_BY(mu_);
};

class ServerLimitsTest : public ::testing::Test {
 protected:
  void StartServer(int max_concurrent_calls = 0, int max_message_bytes = 0) {
    pipeline_.SetMaxConcurrentCalls(max_concurrent_calls);
    AnswerMalformedRequestsWithInvalidArgument(service_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    if (max_message_bytes > 0) builder.SetMaxReceiveMessageSize(max_message_bytes);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::IntakeService::NewStub(channel_);
  }
  void TearDown() override {
    service_.Release();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  // Sends `bytes` as the request of `method` over a generic stub, as a client with a
  // broken encoder (or an attacker) would.
  grpc::Status SendRaw(const std::string& method, const std::string& bytes) {
    grpc::GenericStub generic(channel_);
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-rogatory-authority", "AUTH-A");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    absl::Mutex mu;
    bool done = false;
    grpc::Status result;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
      absl::MutexLock lock(&mu);
      result = std::move(s);
      done = true;
    });
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    return result;
  }
  // Reads a server stream whose request is `bytes` to its end.
  grpc::Status StreamRaw(const std::string& method, const std::string& bytes,
                         const std::string& caller = "AUTH-A") {
    grpc::GenericStub generic(channel_);
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-rogatory-authority", caller);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::CompletionQueue cq;
    auto call = generic.PrepareCall(&ctx, method, &cq);
    void* tag = nullptr;
    bool ok = false;
    call->StartCall(reinterpret_cast<void*>(1));
    EXPECT_TRUE(cq.Next(&tag, &ok) && ok);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    call->WriteLast(request, grpc::WriteOptions(), reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
    grpc::ByteBuffer response;
    for (;;) {
      call->Read(&response, reinterpret_cast<void*>(3));
      if (!cq.Next(&tag, &ok) || !ok) break;
    }
    grpc::Status status;
    call->Finish(&status, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return status;
  }
  grpc::Status Get(const std::string& id, const std::string& caller = "AUTH-A") {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-rogatory-authority", caller);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetRequestRequest req;
    req.set_id(id);
    v1::GetRequestResponse resp;
    return stub_->GetRequest(&ctx, req, &resp);
  }
  // Polls until `pred` holds or 10 s pass.
  static bool Eventually(const std::function<bool()>& pred) {
    const auto deadline = Steady::now() + std::chrono::seconds(10);
    while (Steady::now() < deadline) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return pred();
  }

  // First, so it outlives the pipeline and the server: calls still ending after a test's
  // body update the pipeline's gauges until TearDown shuts the server down.
  Metrics metrics_;
  MetadataAuthenticator authenticator_;
  NoRateLimiter limiter_;
  LogAuditor auditor_;
  SimulatedClock clock_;
  Pipeline pipeline_{authenticator_, limiter_, auditor_, clock_};
  FakeIntake service_{pipeline_};
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::IntakeService::Stub> stub_;
  int port_ = 0;
};

constexpr char kGet[] = "/rogatory.intake.v1.IntakeService/GetRequest";
constexpr char kDownload[] = "/rogatory.intake.v1.IntakeService/DownloadDocument";

// Field 1 (id, a string) declared 16 bytes long, 1 byte sent.
const std::string kTruncated(
    "\x0a\x10"
    "a",
    3);
// Field 1 with wire type 7, which does not exist.
const std::string kBadWireType("\x0f\x01", 2);
// Field 1 as a varint: a known field with the wrong wire type (kept as an unknown field,
// so the message parses and the validator sees no id).
const std::string kWrongFieldType("\x08\x01", 2);
// Field 1 with bytes that are not UTF-8.
const std::string kInvalidUtf8("\x0a\x03\xff\xfe\x80", 5);

TEST_F(ServerLimitsTest, UnaryBytesThatDoNotParseAnswerInvalidArgument) {
  StartServer();
  for (const std::string& bytes : {kTruncated, kBadWireType, kInvalidUtf8}) {
    grpc::Status s = SendRaw(kGet, bytes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("do not parse"));
    EXPECT_THAT(s.error_message(), HasSubstr(kGet));
  }
  // The server is still up and answers a valid call.
  EXPECT_TRUE(Get("RQ-1").ok());
}

// The fields a status's google.rpc.BadRequest names (binary details, as ToGrpcStatus
// sends them).
std::vector<std::string> BadRequestFields(const grpc::Status& s) {
  std::vector<std::string> out;
  google::rpc::Status status;
  if (!status.ParseFromString(s.error_details())) return out;
  for (const auto& any : status.details()) {
    google::rpc::BadRequest bad_request;
    if (!any.UnpackTo(&bad_request)) continue;
    for (const auto& v : bad_request.field_violations()) out.push_back(v.field());
  }
  return out;
}

// Issue 22, item 10: the answer names the field that holds invalid UTF-8.
TEST_F(ServerLimitsTest, InvalidUtf8NamesTheFieldInMessageAndBadRequest) {
  StartServer();
  grpc::Status unary = SendRaw(kGet, kInvalidUtf8);
  EXPECT_EQ(unary.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unary.error_message(), HasSubstr("id: is not valid UTF-8"));
  EXPECT_THAT(BadRequestFields(unary), ::testing::ElementsAre("id"));
  // Twice in a row, and interleaved with valid calls: nothing is left over between calls.
  EXPECT_TRUE(Get("RQ-1").ok());
  EXPECT_THAT(BadRequestFields(SendRaw(kGet, kInvalidUtf8)), ::testing::ElementsAre("id"));
  EXPECT_TRUE(BadRequestFields(SendRaw(kGet, kTruncated)).empty());

  grpc::Status stream = StreamRaw(kDownload, kInvalidUtf8);
  EXPECT_EQ(stream.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(BadRequestFields(stream), ::testing::ElementsAre("id"));
}

TEST_F(ServerLimitsTest, WrongFieldTypeReachesTheValidator) {
  StartServer();
  grpc::Status s = SendRaw(kGet, kWrongFieldType);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("id: required"));
}

TEST_F(ServerLimitsTest, ServerStreamingBytesThatDoNotParseAnswerInvalidArgument) {
  StartServer();
  for (const std::string& bytes : {kTruncated, kBadWireType, kInvalidUtf8}) {
    grpc::Status s = StreamRaw(kDownload, bytes);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("do not parse"));
  }
  EXPECT_TRUE(StreamRaw(kDownload, std::string("\x0a\x01"
                                               "d",
                                               3))
                  .ok());
}

TEST_F(ServerLimitsTest, MalformedRequestFromUnknownCallerIsStillUnauthenticated) {
  StartServer();
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  grpc::Slice slice(kTruncated);
  grpc::ByteBuffer request(&slice, 1), response;
  absl::Mutex mu;
  bool done = false;
  grpc::Status result;
  generic.UnaryCall(&ctx, kGet, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    absl::MutexLock lock(&mu);
    result = s;
    done = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  EXPECT_EQ(result.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(ServerLimitsTest, OversizedMessageIsResourceExhausted) {
  StartServer(0, /*max_message_bytes=*/64 * 1024);
  EXPECT_EQ(Get(std::string(100 * 1024, 'x')).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Get("RQ-1").ok());
}

TEST_F(ServerLimitsTest, CallsBeyondTheConcurrencyBoundAreRefusedAtOnce) {
  StartServer(/*max_concurrent_calls=*/2);
  // Two calls held open: one unary, one streaming.
  grpc::ClientContext held_ctx;
  held_ctx.AddMetadata("x-rogatory-authority", "AUTH-A");
  v1::GetRequestRequest held_req;
  held_req.set_id("hold");
  v1::GetRequestResponse held_resp;
  absl::Mutex mu;
  int finished = 0;
  grpc::Status held_status;
  stub_->async()->GetRequest(&held_ctx, &held_req, &held_resp, [&](grpc::Status s) {
    absl::MutexLock lock(&mu);
    held_status = s;
    ++finished;
  });
  std::thread streaming([this] { EXPECT_TRUE(StreamRaw(kDownload, "\x0a\x04hold").ok()); });
  ASSERT_TRUE(Eventually([&] { return service_.held() == 2; }));
  EXPECT_EQ(pipeline_.calls_in_flight(), 2);

  const auto start = Steady::now();
  grpc::Status refused = Get("RQ-2");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("concurrent calls"));
  EXPECT_EQ(StreamRaw(kDownload, std::string("\x0a\x01"
                                             "d",
                                             3))
                .error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_LT(Steady::now() - start, std::chrono::seconds(5));

  service_.Release();
  streaming.join();
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return finished == 1;
  }));
  EXPECT_TRUE(held_status.ok());
  ASSERT_TRUE(Eventually([&] { return pipeline_.calls_in_flight() == 0; }));
  EXPECT_TRUE(Get("RQ-3").ok());
}

// Issue 16, item 10: one caller's idle calls and streams fill its own bounds, never the
// server's; other callers are still served, and services are bounded by the server only.
TEST_F(ServerLimitsTest, OneCallerOverItsBoundsIsRefusedWhileOthersAreServed) {
  pipeline_.SetCallerLimits(/*max_calls_per_caller=*/2, /*max_streams_per_caller=*/1);
  Metrics& metrics = metrics_;
  pipeline_.SetMetrics(metrics.registry());
  StartServer(/*max_concurrent_calls=*/100);
  // AUTH-A holds two unary calls and one stream open.
  struct Held {
    grpc::ClientContext ctx;
    v1::GetRequestRequest req;
    v1::GetRequestResponse resp;
  };
  std::vector<std::unique_ptr<Held>> held;
  absl::Mutex mu;
  int finished = 0;
  for (int i = 0; i < 2; ++i) {
    auto h = std::make_unique<Held>();
    h->ctx.AddMetadata("x-rogatory-authority", "AUTH-A");
    h->req.set_id("hold");
    stub_->async()->GetRequest(&h->ctx, &h->req, &h->resp, [&](grpc::Status) {
      absl::MutexLock lock(&mu);
      ++finished;
    });
    held.push_back(std::move(h));
  }
  std::thread streaming([this] { EXPECT_TRUE(StreamRaw(kDownload, "\x0a\x04hold").ok()); });
  ASSERT_TRUE(Eventually([&] { return service_.held() == 3; }));
  EXPECT_EQ(pipeline_.calls_in_flight("AUTH-A", Pipeline::CallKind::kUnary), 2);
  EXPECT_EQ(pipeline_.calls_in_flight("AUTH-A", Pipeline::CallKind::kStream), 1);

  // Over its call bound and its stream bound: refused at once, naming the setting.
  grpc::Status call = Get("RQ-1");
  EXPECT_EQ(call.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(call.error_message(), HasSubstr("max-calls-per-caller"));
  ASSERT_TRUE(GetErrorInfo(call).has_value());
  EXPECT_EQ(GetErrorInfo(call)->reason(), "RATE_LIMITED");
  grpc::Status stream = StreamRaw(kDownload, std::string("\x0a\x01"
                                                         "d",
                                                         3));
  EXPECT_EQ(stream.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(stream.error_message(), HasSubstr("max-streams-per-caller"));
  ASSERT_TRUE(GetErrorInfo(stream).has_value());
  EXPECT_EQ(GetErrorInfo(stream)->reason(), "RATE_LIMITED");
  // Another caller's call and stream are served meanwhile; so is a service beyond the caps.
  EXPECT_TRUE(Get("RQ-1", "AUTH-B").ok());
  EXPECT_TRUE(StreamRaw(kDownload,
                        std::string("\x0a\x01"
                                    "d",
                                    3),
                        "AUTH-B")
                  .ok());
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-rogatory-authority", "rogatory-routing");
    ctx.AddMetadata("x-rogatory-roles", "service");
    v1::GetRequestRequest req;
    req.set_id("RQ-1");
    v1::GetRequestResponse resp;
    EXPECT_TRUE(stub_->GetRequest(&ctx, req, &resp).ok());
  }
  // Metrics by kind and bound, never by caller.
  const std::string page = metrics.Render();
  EXPECT_THAT(page, HasSubstr("rogatory_calls_refused_total{bound=\"caller\",kind=\"unary\"} 1"));
  EXPECT_THAT(page, HasSubstr("rogatory_calls_refused_total{bound=\"caller\",kind=\"stream\"} 1"));
  EXPECT_THAT(page, ::testing::Not(HasSubstr("AUTH-A")));
  // The other callers' calls leave once their reactors are gone, just after their answers.
  EXPECT_TRUE(Eventually([&] {
    const std::string now = metrics.Render();
    return absl::StrContains(now, "rogatory_calls_in_flight{kind=\"unary\"} 2") &&
           absl::StrContains(now, "rogatory_calls_in_flight{kind=\"stream\"} 1");
  })) << metrics.Render();

  // Once its calls end, the caller is served again.
  service_.Release();
  streaming.join();
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return finished == 2;
  }));
  ASSERT_TRUE(Eventually([&] { return pipeline_.calls_in_flight() == 0; }));
  EXPECT_EQ(pipeline_.calls_in_flight("AUTH-A", Pipeline::CallKind::kUnary), 0);
  EXPECT_TRUE(Get("RQ-2").ok());
  EXPECT_TRUE(StreamRaw(kDownload, std::string("\x0a\x01"
                                               "d",
                                               3))
                  .ok());
}

}  // namespace
}  // namespace rogatory::common
