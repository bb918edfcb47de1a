#include "rogatory/common/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/text_serializer.h"

namespace rogatory::common {

struct Metrics::GrpcFamilies {
  prometheus::Family<prometheus::Counter>* started;
  prometheus::Family<prometheus::Counter>* handled;
  prometheus::Family<prometheus::Histogram>* seconds;
};

namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return *buckets;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::OK:
      return "OK";
    case grpc::CANCELLED:
      return "Canceled";
    case grpc::UNKNOWN:
      return "Unknown";
    case grpc::INVALID_ARGUMENT:
      return "InvalidArgument";
    case grpc::DEADLINE_EXCEEDED:
      return "DeadlineExceeded";
    case grpc::NOT_FOUND:
      return "NotFound";
    case grpc::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::PERMISSION_DENIED:
      return "PermissionDenied";
    case grpc::RESOURCE_EXHAUSTED:
      return "ResourceExhausted";
    case grpc::FAILED_PRECONDITION:
      return "FailedPrecondition";
    case grpc::ABORTED:
      return "Aborted";
    case grpc::OUT_OF_RANGE:
      return "OutOfRange";
    case grpc::UNIMPLEMENTED:
      return "Unimplemented";
    case grpc::INTERNAL:
      return "Internal";
    case grpc::UNAVAILABLE:
      return "Unavailable";
    case grpc::DATA_LOSS:
      return "DataLoss";
    case grpc::UNAUTHENTICATED:
      return "Unauthenticated";
    default:
      return "Unknown";
  }
}

// Both rpc-info Type enums list UNARY, CLIENT_STREAMING, SERVER_STREAMING, BIDI_STREAMING.
template <typename Type>
const char* TypeName(Type type) {
  switch (type) {
    case Type::UNARY:
      return "unary";
    case Type::CLIENT_STREAMING:
      return "client_stream";
    case Type::SERVER_STREAMING:
      return "server_stream";
    case Type::BIDI_STREAMING:
      return "bidi_stream";
    default:
      return "unknown";
  }
}

// "/pkg.Service/Method" -> ("pkg.Service", "Method").
std::pair<std::string, std::string> SplitMethod(absl::string_view s) {
  if (!s.empty() && s[0] == '/') s.remove_prefix(1);
  auto slash = s.find('/');
  if (slash == absl::string_view::npos) return {kUnknownMethodLabel, kUnknownMethodLabel};
  return {std::string(s.substr(0, slash)), std::string(s.substr(slash + 1))};
}

// The grpc_type label of a served method ("/pkg.Service/Method"), from the protobuf
// descriptors compiled into the binary; gRPC's own health service is not among them. Null
// when unknown (the method's series then appear at its first call).
const char* ServedMethodType(absl::string_view full) {
  if (full == "/grpc.health.v1.Health/Check") return "unary";
  if (full == "/grpc.health.v1.Health/Watch") return "server_stream";
  auto [service, name] = SplitMethod(full);
  const google::protobuf::MethodDescriptor* m =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          absl::StrCat(service, ".", name));
  if (m == nullptr || m->service()->full_name() != service) return nullptr;
  if (m->client_streaming()) return m->server_streaming() ? "bidi_stream" : "client_stream";
  return m->server_streaming() ? "server_stream" : "unary";
}

// Which method names get labels of their own; every other name shares kUnknownMethodLabel.
// Thread-safe (immutable).
class MethodNames {
 public:
  // Exactly `served` ("/pkg.Service/Method").
  explicit MethodNames(const std::vector<std::string>& served)
      : served_(served.begin(), served.end()), explicit_(true) {}
  // The methods of the protobuf services compiled into the binary.
  MethodNames() = default;

  std::pair<std::string, std::string> Labels(const char* method) const {
    const absl::string_view full = method != nullptr ? method : "";
    if (!Known(full)) return {kUnknownMethodLabel, kUnknownMethodLabel};
    return SplitMethod(full);
  }

 private:
  bool Known(absl::string_view full) const {
    if (explicit_) return served_.contains(full);
    if (full.size() < 2 || full[0] != '/') return false;
    std::string dotted(full.substr(1));
    const size_t slash = dotted.find('/');
    if (slash == std::string::npos) return false;
    dotted[slash] = '.';
    const google::protobuf::MethodDescriptor* m =
        google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(dotted);
    // The service must be the part before the slash ("/a.b/c.d" is not a.b.c's d).
    return m != nullptr && m->service()->full_name() == full.substr(1, slash);
  }

  absl::flat_hash_set<std::string> served_;
  bool explicit_ = false;
};

Metrics::GrpcFamilies* MakeFamilies(prometheus::Registry& registry, const std::string& side) {
  auto* f = new Metrics::GrpcFamilies;
  f->started = &prometheus::BuildCounter()
                    .Name(absl::StrCat("grpc_", side, "_started_total"))
                    .Help(absl::StrCat("Total number of RPCs started on the ", side, "."))
                    .Register(registry);
  f->handled = &prometheus::BuildCounter()
                    .Name(absl::StrCat("grpc_", side, "_handled_total"))
                    .Help(absl::StrCat("Total number of RPCs completed on the ", side,
                                       ", regardless of success or failure."))
                    .Register(registry);
  f->seconds = &prometheus::BuildHistogram()
                    .Name(absl::StrCat("grpc_", side, "_handling_seconds"))
                    .Help(absl::StrCat("Histogram of response latency (seconds) of gRPC that had "
                                       "been application-level handled by the ",
                                       side, "."))
                    .Register(registry);
  return f;
}

// Records one RPC: started at the first hook, handled with its code at the status hook.
class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(Metrics::GrpcFamilies* families, const Clock& clock, bool server,
                        const MethodNames& names, const char* method, const char* type)
      : families_(families), clock_(clock), server_(server), start_(clock.MonotonicNow()) {
    auto [service, name] = names.Labels(method);
    labels_ = {{"grpc_service", service}, {"grpc_method", name}, {"grpc_type", type}};
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using HP = grpc::experimental::InterceptionHookPoints;
    const HP start_hook = server_ ? HP::POST_RECV_INITIAL_METADATA : HP::PRE_SEND_INITIAL_METADATA;
    if (methods->QueryInterceptionHookPoint(start_hook)) {
      start_ = clock_.MonotonicNow();
      families_->started->Add(labels_).Increment();
    }
    if (server_ && methods->QueryInterceptionHookPoint(HP::PRE_SEND_STATUS)) {
      Finish(methods->GetSendStatus().error_code());
    }
    if (!server_ && methods->QueryInterceptionHookPoint(HP::POST_RECV_STATUS)) {
      Finish(methods->GetRecvStatus()->error_code());
    }
    methods->Proceed();
  }

 private:
  void Finish(grpc::StatusCode code) {
    auto labels = labels_;
    labels["grpc_code"] = CodeName(code);
    families_->handled->Add(labels).Increment();
    const double seconds = absl::ToDoubleSeconds(clock_.MonotonicNow() - start_);
    families_->seconds->Add(labels_, LatencyBuckets()).Observe(seconds);
  }

  Metrics::GrpcFamilies* families_;
  const Clock& clock_;
  bool server_;
  std::map<std::string, std::string> labels_;
  MonotonicTime start_;
};

class ServerFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  ServerFactory(Metrics::GrpcFamilies* f, const Clock& clock, MethodNames names)
      : families_(f), clock_(clock), names_(std::move(names)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(families_, clock_, true, names_, info->method(),
                                     TypeName(info->type()));
  }

 private:
  Metrics::GrpcFamilies* families_;
  const Clock& clock_;
  const MethodNames names_;
};

class ClientFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  ClientFactory(Metrics::GrpcFamilies* f, const Clock& clock) : families_(f), clock_(clock) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new RpcMetricsInterceptor(families_, clock_, false, names_, info->method(),
                                     TypeName(info->type()));
  }

 private:
  Metrics::GrpcFamilies* families_;
  const Clock& clock_;
  const MethodNames names_;
};

prometheus::MetricFamily Gauge(const std::string& name, const std::string& help, double value,
                               prometheus::MetricType type = prometheus::MetricType::Gauge) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(metric);
  return family;
}

class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    std::ifstream stat_file("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    // Fields after the command name, which is in parentheses and may contain spaces.
    auto close = stat.rfind(')');
    if (close != std::string::npos) {
      std::vector<std::string> f = absl::StrSplit(stat.substr(close + 2), ' ');
      // f[0] is field 3 (state): field n is f[n - 3].
      if (f.size() > 21) {
        const double utime = std::stod(f[11]), stime = std::stod(f[12]);
        const double start_ticks = std::stod(f[19]);
        out.push_back(Gauge("process_cpu_seconds_total",
                            "Total user and system CPU time spent in seconds.",
                            (utime + stime) / ticks, prometheus::MetricType::Counter));
        out.push_back(Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                            std::stod(f[20])));
        out.push_back(Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                            std::stod(f[21]) * page));
        if (double boot = BootTime(); boot > 0) {
          out.push_back(Gauge("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              boot + start_ticks / ticks));
        }
      }
    }
    out.push_back(Gauge("process_open_fds", "Number of open file descriptors.", OpenFds()));
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      out.push_back(Gauge("process_max_fds", "Maximum number of open file descriptors.",
                          static_cast<double>(limit.rlim_cur)));
    }
    return out;
  }

 private:
  static double OpenFds() {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return 0;
    int n = 0;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
    return n - 1;  // the directory handle itself
  }
  static double BootTime() {
    std::ifstream in("/proc/stat");
    std::string key;
    double value = 0;
    while (in >> key) {
      if (key == "btime") {
        in >> value;
        return value;
      }
      in.ignore(1 << 20, '\n');
    }
    return 0;
  }
};

}  // namespace

std::string EventSourceLabel(absl::string_view source) {
  for (absl::string_view known : {"intake", "routing", "deadlines", "notification"}) {
    if (source == known) return std::string(known);
  }
  return "other";
}

std::shared_ptr<prometheus::Collectable> NewProcessCollector() {
  return std::make_shared<ProcessCollector>();
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      process_collector_(NewProcessCollector()),
      server_(MakeFamilies(*registry_, "server")),
      client_(MakeFamilies(*registry_, "client")) {}

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Serve(const std::string& listen_address) {
  auto metrics = std::make_unique<Metrics>();
  try {
    metrics->exposer_ = std::make_unique<prometheus::Exposer>(listen_address, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen_address, ": ", e.what()));
  }
  metrics->exposer_->RegisterCollectable(metrics->registry_);
  metrics->exposer_->RegisterCollectable(metrics->process_collector_);
  return metrics;
}

Metrics::~Metrics() = default;

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Metrics::NewServerInterceptorFactory(const Clock& clock,
                                     const std::vector<std::string>& served_methods) {
  // As grpc-ecosystem's InitializeMetrics does: every served method's series exist from the
  // start at zero (started, handled with code OK, the latency histogram), so a method never
  // called shows 0 rather than nothing, and rate() and absent() work from the first scrape.
  // Bounded: one series per served method and family (other codes appear when they occur).
  for (const std::string& method : served_methods) {
    const char* type = ServedMethodType(method);
    if (type == nullptr) continue;
    auto [service, name] = SplitMethod(method);
    const std::map<std::string, std::string> labels = {
        {"grpc_service", service}, {"grpc_method", name}, {"grpc_type", type}};
    server_->started->Add(labels);
    auto handled = labels;
    handled["grpc_code"] = CodeName(grpc::OK);
    server_->handled->Add(handled);
    server_->seconds->Add(labels, LatencyBuckets());
  }
  return std::make_unique<ServerFactory>(server_.get(), clock, MethodNames(served_methods));
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
Metrics::NewServerInterceptorFactory(const Clock& clock) {
  return std::make_unique<ServerFactory>(server_.get(), clock, MethodNames());
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
Metrics::NewClientInterceptorFactory(const Clock& clock) {
  return std::make_unique<ClientFactory>(client_.get(), clock);
}

std::string Metrics::Render() const {
  auto families = registry_->Collect();
  auto process = process_collector_->Collect();
  families.insert(families.end(), process.begin(), process.end());
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace rogatory::common
