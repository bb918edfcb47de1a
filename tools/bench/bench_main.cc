// rogatory-bench: a load generator for Rogatory's gRPC APIs and for the echo baseline.
// One scenario per run; tools/bench/run.sh runs them all and writes the report.
//
//   rogatory-bench --scenario=submit --mode=closed --concurrency=32 --duration=10s
//   rogatory-bench --scenario=e2e --mode=open --rate=500 --json=results.jsonl
//
// Prints a table line per scenario and, with --json, appends one JSON object per line.
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "load_generator.h"
#include "report.h"
#include "rogatory/common/config.h"
#include "rogatory/common/transport_security.h"
#include "scenarios.h"

namespace rogatory::bench {
namespace {

struct BenchSettings {
  std::string scenario;
  std::string label;
  std::string mode;
  int concurrency = 0;
  int rate = 0;
  absl::Duration duration;
  absl::Duration warmup;
  int channels = 0;
  int payload_bytes = 0;
  int seed = 0;
  int page_size = 0;
  std::string sample;
  std::string intake_addr;
  std::string echo_addr;
  std::string notification_addr;
  std::string json;
  bool fail_on_errors = false;
  ClientSettings client;
};

void Register(common::Config& c, BenchSettings* s) {
  c.AddChoice("scenario", "submit", {"echo", "submit", "get", "list", "mixed", "e2e"},
              "What to call: echo (the baseline server), submit, get, list (a page), mixed "
              "(20% submit, 60% get, 20% list), e2e (submit, timed until the issuer's "
              "notification stream shows the submission).",
              &s->scenario);
  c.AddString("label", "", "Free text naming the configuration under test, in the report.",
              &s->label);
  c.AddChoice("mode", "closed", {"closed", "open"},
              "closed: `concurrency` calls in flight at all times (peak rate); open: calls "
              "started at `rate` per second whatever the answers (latency at a load).",
              &s->mode);
  c.AddInt("concurrency", 16, 1, 10000, "Closed loop: calls in flight.", &s->concurrency);
  c.AddInt("rate", 100, 1, 1000000, "Open loop: calls started per second.", &s->rate);
  c.AddDuration("duration", absl::Seconds(10), absl::Milliseconds(100), absl::Hours(1),
                "The measurement window.", &s->duration);
  c.AddDuration("warmup", absl::Seconds(2), absl::ZeroDuration(), absl::Hours(1),
                "Calls made before the window and not recorded.", &s->warmup);
  c.AddInt("channels", 4, 1, 256, "Connections the calls are spread over.", &s->channels);
  c.AddInt("payload-bytes", 0, 0, 1 << 20,
           "Echo payload size; 0: the size of the sample's SubmitRequest.", &s->payload_bytes);
  c.AddInt("seed", 200, 50, 1000000,
           "get/list/mixed: requests submitted before the run, read during it.", &s->seed);
  c.AddInt("page-size", 50, 1, 1000, "list: the page size.", &s->page_size);
  c.AddString("sample", "samples/requests/eio-fr-de.json",
              "The request submissions are made from (RequestContent in the proto's JSON "
              "mapping); its issuing authority is the caller.",
              &s->sample);
  c.AddString("intake-addr", "127.0.0.1:50051", "The intake service.", &s->intake_addr);
  c.AddString("echo-addr", "127.0.0.1:50060", "The echo baseline (rogatory-echo).", &s->echo_addr);
  c.AddString("notification-addr", "127.0.0.1:50054", "The notification service (e2e).",
              &s->notification_addr);
  c.AddString("json", "", "Appends the run's figures as one JSON line to this file.", &s->json);
  c.AddBool("fail-on-errors", false,
            "Exit 3 when any call failed, was dropped or (e2e) was never notified.",
            &s->fail_on_errors);
  c.AddChoice("auth", "token", {"token", "metadata"},
              "How calls name their caller: a development bearer token minted with "
              "auth-keys, or the development x-rogatory-* metadata.",
              &s->client.auth);
  c.AddString("auth-keys", "deploy/dev-auth/keys.json",
              "Key set with one HS256 key to mint the caller's token with.", &s->client.auth_keys);
  c.AddString("auth-issuer", "rogatory-dev", "The tokens' iss.", &s->client.auth_issuer);
  c.AddString("auth-audience", "rogatory", "The tokens' aud.", &s->client.auth_audience);
  c.AddChoice("tls", "off", {"off", "tls", "mtls"}, "Transport security of the calls.",
              &s->client.tls.mode);
  c.AddString("tls-ca-file", "", "CA bundle the servers' certificates are checked against.",
              &s->client.tls.ca_file);
  c.AddString("tls-client-cert-file", "", "mtls: the client certificate.",
              &s->client.tls.client_cert_file);
  c.AddString("tls-client-key-file", "", "mtls: its private key.", &s->client.tls.client_key_file);
  c.AddDuration("call-timeout", absl::Seconds(10), absl::Milliseconds(10), absl::Minutes(10),
                "Deadline of each call.", &s->client.call_timeout);
}

int Fail(const absl::Status& status) {
  std::cerr << "rogatory-bench: " << status.message() << "\n";
  return 1;
}

int Run(const BenchSettings& s) {
  auto factory = RequestFactory::FromSampleFile(
      s.sample, absl::StrCat(absl::ToUnixMillis(absl::Now())));  // unique per run
  if (!factory.ok()) return Fail(factory.status());
  auto auth = CallAuthorizer::Create(s.client, (*factory)->Issuer());
  if (!auth.ok()) return Fail(auth.status());

  LoadOptions load;
  load.mode = s.mode == "open" ? LoadOptions::Mode::kOpen : LoadOptions::Mode::kClosed;
  load.concurrency = s.concurrency;
  load.rate = s.rate;
  load.duration = s.duration;
  load.warmup = s.warmup;

  ScenarioReport report;
  auto measure = [&](CallSource& source) {
    report.load_start = absl::Now();
    return RunLoad(load, source);
  };
  report.scenario = s.scenario;
  report.label = s.label;
  report.mode = s.mode;
  report.concurrency = load.mode == LoadOptions::Mode::kClosed ? s.concurrency : 0;
  report.rate = load.mode == LoadOptions::Mode::kOpen ? s.rate : 0;
  report.payload_bytes = (*factory)->TypicalSize();

  if (s.scenario == "echo") {
    StubPool<v1::EchoService> stubs(s.client, s.echo_addr, s.channels);
    report.payload_bytes = s.payload_bytes > 0 ? s.payload_bytes : (*factory)->TypicalSize();
    EchoSource source(stubs, *auth, report.payload_bytes);
    report.calls = measure(source);
  } else {
    IntakeStubs intake(s.client, s.intake_addr, s.channels);
    if (s.scenario == "submit") {
      SubmitSource source(intake, *auth, **factory);
      report.calls = measure(source);
    } else if (s.scenario == "e2e") {
      auto channel = MakeChannel(s.client, s.notification_addr);
      auto notification = notification::v1::NotificationService::NewStub(channel);
      NotificationProbe probe(*notification, *auth);
      probe.Open();
      SubmitSource source(intake, *auth, **factory, [&probe](const std::string& id, auto start) {
        probe.Submitted(id, start);
      });
      // The stream is live once a submission shows on it.
      bool live = false;
      for (int attempt = 0; attempt < 3 && !live; ++attempt) {
        auto ids = SeedRequests(intake, *auth, **factory, 1, 1);
        if (!ids.ok()) return Fail(ids.status());
        live = probe.AwaitArrival(ids->front(), absl::Seconds(5));
      }
      if (!live) {
        return Fail(absl::UnavailableError(absl::StrCat(
            "no submission reached the notification stream within 15 s ", probe.failure())));
      }
      const auto begin = std::chrono::steady_clock::now();
      report.calls = measure(source);
      const auto from = begin + absl::ToChronoNanoseconds(s.warmup);
      report.e2e = probe.Summarize(from, from + absl::ToChronoNanoseconds(s.duration), s.duration,
                                   absl::Seconds(15));
      report.e2e_stream_error = probe.failure();
      if (!report.e2e_stream_error.empty()) {
        std::cerr << "rogatory-bench: " << report.e2e_stream_error
                  << " (later submissions counted as never notified)\n";
      }
    } else {
      auto ids = SeedRequests(intake, *auth, **factory, s.seed, 32);
      if (!ids.ok()) return Fail(ids.status());
      GetSource get(intake, *auth, *ids);
      ListSource list(intake, *auth, s.page_size);
      SubmitSource submit(intake, *auth, **factory);
      if (s.scenario == "get") {
        report.calls = measure(get);
      } else if (s.scenario == "list") {
        report.calls = measure(list);
      } else {
        MixedSource mixed;
        mixed.Add(20, &submit);
        mixed.Add(60, &get);
        mixed.Add(20, &list);
        report.calls = measure(mixed);
      }
    }
  }

  std::cout << TableHeader() << TableRow(report) << std::flush;
  if (!s.json.empty()) {
    std::ofstream out(s.json, std::ios::app);
    out << ToJson(report) << "\n";
    if (!out) return Fail(absl::UnavailableError(absl::StrCat("cannot write ", s.json)));
  }
  const bool clean = report.calls.errors == 0 && report.calls.dropped == 0 && report.calls.ok > 0 &&
                     (!report.e2e || report.e2e->errors == 0);
  if (s.fail_on_errors && !clean) {
    std::cerr << "rogatory-bench: calls failed, were dropped or nothing succeeded\n";
    return 3;
  }
  return 0;
}

}  // namespace
}  // namespace rogatory::bench

int main(int argc, char** argv) {
  rogatory::common::Config config;
  rogatory::bench::BenchSettings settings;
  rogatory::bench::Register(config, &settings);
  if (absl::Status s = config.Parse(argc, argv, rogatory::common::ProcessEnv()); !s.ok()) {
    std::cerr << "rogatory-bench: " << s.message() << "\n";
    return 2;
  }
  if (config.help_requested()) {
    std::cout << config.Help("rogatory-bench");
    return 0;
  }
  return rogatory::bench::Run(settings);
}
