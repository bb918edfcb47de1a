// rogatory-deadline-bench: the deadline engine under load (issue 11).
//
// 1. Loads N pending deadlines as the service makes them (a rule of the reference rules,
//    NewDeadline with its reminders, a DEADLINE_STARTED event with the request's facts, the
//    request's parties), through the store's own commit script, many commits in flight.
// 2. Measures Redis memory per pending deadline (INFO used_memory before and after, the
//    outbox removed as the relay would once delivered) and breaks it down by key.
// 3. Burst: `fire` deadlines whose due time has passed when the engine starts: the real
//    TimerEngine (real clock, in process) fires them all; throughput.
// 4. Steady: `steady-rate` timers a second fall due over `window`; lateness of each fire
//    (commit time minus due time) as p50/p90/p99/p99.9/max.
// Each phase also reports Redis commands and script calls per fired timer (INFO
// commandstats deltas). Results as a table on stdout and as JSON (--json).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "deadline_logic.h"
#include "deadline_store.h"
#include "redis_deadline_store.h"
#include "rogatory/common/access.h"
#include "rogatory/common/async_redis_client.h"
#include "rogatory/common/clock.h"
#include "rogatory/common/config.h"
#include "rogatory/common/event_sink.h"
#include "rogatory/common/ids.h"
#include "rogatory/common/redis.h"
#include "rules.h"
#include "timer_engine.h"

#ifndef ROGATORY_DEADLINES_DATA_DIR
#define ROGATORY_DEADLINES_DATA_DIR "services/deadlines/data"
#endif

namespace rogatory::bench {
namespace {

namespace dl = rogatory::deadlines;
using common::RedisClient;
using common::RedisReply;

constexpr int kShards = 16;  // the platform's default shard count

struct Settings {
  std::string redis_url;
  int deadlines = 1000000;
  int fire = 200000;
  absl::Duration window = absl::Seconds(10);
  int steady_rate = 10000;
  int engines = 1;
  int batch = 200;
  absl::Duration recheck_interval = absl::Seconds(5);
  int in_flight = 256;
  std::string json;
  std::string rules_dir;
  bool smoke = false;
};

// Figures of one scenario, in order, for the table and the JSON.
struct Scenario {
  std::string name;
  std::vector<std::pair<std::string, double>> figures;
  std::vector<std::string> notes;
  void Add(std::string key, double value) { figures.emplace_back(std::move(key), value); }
};

std::unique_ptr<RedisClient> Connect(const common::RedisUrl& url) {
  common::AsyncRedisOptions options;
  options.url = url;
  // Thousands of commits may be queued behind each other: a generous timeout.
  options.command_timeout = absl::Seconds(60);
  auto client = common::NewAsyncRedisClient(options);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!common::RunRedisCommand(*client, {"PING"}).ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  return client;
}

// "field:value" lines of an INFO section.
std::map<std::string, std::string> Info(RedisClient& redis, const std::string& section) {
  std::map<std::string, std::string> out;
  auto r = common::RunRedisCommand(redis, {"INFO", section});
  if (!r.ok()) return out;
  for (absl::string_view line : absl::StrSplit(r->str, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto colon = line.find(':');
    if (line.empty() || line[0] == '#' || colon == absl::string_view::npos) continue;
    out[std::string(line.substr(0, colon))] = std::string(line.substr(colon + 1));
  }
  return out;
}

int64_t UsedMemory(RedisClient& redis) {
  int64_t v = 0;
  absl::SimpleAtoi(Info(redis, "memory")["used_memory"], &v);
  return v;
}

// Commands Redis executed (those run inside scripts included), and script calls.
struct CommandCounts {
  int64_t commands = 0;
  int64_t scripts = 0;  // EVALSHA + EVAL: round trips that run a script
  int64_t info = 0;
};
CommandCounts Commands(RedisClient& redis) {
  CommandCounts c;
  for (const auto& [key, value] : Info(redis, "commandstats")) {
    // cmdstat_evalsha:calls=12,usec=...
    const auto eq = value.find("calls=");
    if (eq == std::string::npos) continue;
    int64_t calls = 0;
    absl::SimpleAtoi(value.substr(eq + 6, value.find(',', eq) - eq - 6), &calls);
    c.commands += calls;
    if (key == "cmdstat_evalsha" || key == "cmdstat_eval") c.scripts += calls;
    if (key == "cmdstat_info") c.info += calls;
  }
  return c;
}

int64_t MemoryUsage(RedisClient& redis, const std::string& key) {
  auto r = common::RunRedisCommand(redis, {"MEMORY", "USAGE", key, "SAMPLES", "0"});
  return r.ok() ? r->integer : 0;
}

// Commits of new deadlines, up to `in_flight` at a time.
class Loader {
 public:
  Loader(dl::DeadlineStore& store, int in_flight) : store_(store), in_flight_(in_flight) {}

  void Commit(int shard, dl::DeadlineWrite write, const dl::CommitOptions& options) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Loader* l) { return l->outstanding_ < l->in_flight_; }, this));
      ++outstanding_;
    }
    store_.Commit(
        shard, {std::move(write)}, options, [this](absl::StatusOr<dl::CommitOutcome> outcome) {
          absl::MutexLock lock(&mu_);
          --outstanding_;
          if (!outcome.ok() || *outcome != dl::CommitOutcome::kOk) {
            ++failed_;
            if (first_error_.empty()) {
              first_error_ =
                  outcome.ok() ? "unexpected commit outcome" : outcome.status().ToString();
            }
          }
        });
  }

  // Waits for every commit; returns how many failed.
  int64_t Finish() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Loader* l) { return l->outstanding_ == 0; }, this));
    return failed_;
  }
  std::string first_error() {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }

 private:
  dl::DeadlineStore& store_;
  const int in_flight_;
  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

// Makes deadlines as the service's event handler does: a trigger event of a request (facts:
// issuing and executing authorities, states), the rule's deadline, its STARTED event.
class DeadlineFactory {
 public:
  explicit DeadlineFactory(std::shared_ptr<const dl::RuleSet> rules) : rules_(std::move(rules)) {
    for (const auto& r : rules_->file().rules()) rule_list_.push_back(&r);
    static constexpr const char* kStates[] = {"DE", "ES", "PT", "FR", "IT", "NL", "BE", "AT",
                                              "PL", "IE", "GR", "RO", "BG", "CY", "SI"};
    // 2,000 executing authorities, spread over the states the calendars know.
    for (int i = 0; i < 2000; ++i) {
      Authority a;
      a.ref.set_authority_id(absl::StrFormat("%s-EXEC-%04d", kStates[i % 15], i));
      a.ref.set_state(kStates[i % 15]);
      a.place = rules_->calendars().PlaceFor(a.ref, a.ref.state());
      authorities_.push_back(std::move(a));
    }
    for (int i = 0; i < 500; ++i) {
      issuers_.push_back(absl::StrFormat("%s-ISSUE-%04d", kStates[(i + 3) % 15], i));
    }
  }

  struct Made {
    int shard;
    dl::DeadlineWrite write;
    dl::CommitOptions options;
    int timers;
  };

  // Deadline `i`. `due`: unset, a pending deadline triggered a little before `now` (all its
  // timers in the future); set, a deadline whose due time is `due` and whose reminders have
  // all fired already, so its one pending timer is the due time (it fires DEADLINE_MISSED).
  Made Make(int64_t i, absl::Time now, std::optional<absl::Time> due) {
    const int shard = static_cast<int>(i % kShards);
    const dl::v1::DeadlineRule& rule = *rule_list_[i % rule_list_.size()];
    const Authority& exec = authorities_[(i * 7919) % authorities_.size()];
    dl::StartInput in;
    in.deadline_id = common::Sharding::MakeId("dl", shard, now);
    in.request_id = common::Sharding::MakeId("rq", shard, now);
    in.trace_id = common::NewTraceId();
    in.rule = rule;
    in.rules_version = rules_->version();
    in.trigger_type = rule.trigger();
    in.place = exec.place;
    in.executing_authority_id = exec.ref.authority_id();
    in.instrument = rule.instrument();
    if (due) {
      // Triggered so that the rule's own due time falls after `due` (half an hour period
      // ago; two days short of a day period), then shortened to `due` (as an issuer's
      // earlier deadline is): every reminder lies an hour or more before `due`.
      in.trigger_time = rule.unit() == dl::v1::PERIOD_UNIT_HOURS
                            ? *due - absl::Hours(rule.length()) / 2
                            : *due - absl::Hours(24) * (rule.length() - 2);
      in.shortened_due = *due;
    } else {
      in.trigger_time = now - absl::Seconds(i % 1800);
    }
    dl::v1::Deadline d = dl::NewDeadline(in);
    if (due) {
      for (auto& r : *d.mutable_reminders()) r.set_fired(true);
      if (dl::FromProtoTime(d.due_time()) != *due) {
        std::cerr << "rule " << rule.id() << ": due time not as planned: "
                  << absl::FormatTime(dl::FromProtoTime(d.due_time())) << " instead of "
                  << absl::FormatTime(*due) << " (trigger " << absl::FormatTime(in.trigger_time)
                  << ", " << exec.ref.authority_id() << ")\n";
        std::abort();
      }
    }
    common::v1::RequestFacts facts;
    facts.mutable_issuing_authority()->set_authority_id(issuers_[i % issuers_.size()]);
    facts.mutable_issuing_authority()->set_state(issuers_[i % issuers_.size()].substr(0, 2));
    facts.set_requested_state(exec.ref.state());
    *facts.mutable_executing_authority() = exec.ref;
    common::v1::Event event =
        dl::ChangeEvent(d, common::v1::EVENT_TYPE_DEADLINE_STARTED, now, common::NewUlid(now),
                        common::v1::EventType_Name(in.trigger_type));
    *event.mutable_request() = facts;
    Made m;
    m.shard = shard;
    m.timers = static_cast<int>(dl::TimersOf(d).size());
    m.options.parties_request_id = d.request_id();
    m.options.parties = common::PartiesOf(facts);
    m.write = dl::DeadlineWrite{std::move(d), 0, std::move(event)};
    return m;
  }

 private:
  struct Authority {
    common::v1::AuthorityRef ref;
    dl::CountingPlace place;
  };
  std::shared_ptr<const dl::RuleSet> rules_;
  std::vector<const dl::v1::DeadlineRule*> rule_list_;
  std::vector<Authority> authorities_;
  std::vector<std::string> issuers_;
};

// Lateness of every fired timer, from any thread.
class LatenessRecorder {
 public:
  void Record(absl::Duration lateness) {
    absl::MutexLock lock(&mu_);
    micros_.push_back(absl::ToInt64Microseconds(lateness));
    last_ = absl::Now();
  }
  int64_t count() {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(micros_.size());
  }
  absl::Time last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }
  // Nearest-rank percentile in seconds.
  std::map<std::string, double> Percentiles() {
    absl::MutexLock lock(&mu_);
    std::vector<int64_t> v = micros_;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) -> double {
      if (v.empty()) return 0;
      size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
      rank = std::clamp<size_t>(rank, 1, v.size());
      return static_cast<double>(v[rank - 1]) / 1e6;
    };
    return {{"lateness_p50_s", at(0.5)},
            {"lateness_p90_s", at(0.9)},
            {"lateness_p99_s", at(0.99)},
            {"lateness_p999_s", at(0.999)},
            {"lateness_max_s", at(1.0)}};
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> micros_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ ABSL_GUARDED_BY(mu_);
};

// Loads `count` deadlines (index from `first`); returns the seconds it took.
struct LoadResult {
  double seconds = 0;
  int64_t timers = 0;
  int64_t failed = 0;
  std::string first_error;
};
LoadResult Load(DeadlineFactory& factory, dl::DeadlineStore& store, const Settings& s,
                int64_t first, int64_t count,
                const std::function<std::optional<absl::Time>(int64_t)>& due_of) {
  Loader loader(store, s.in_flight);
  LoadResult r;
  const absl::Time start = absl::Now();
  for (int64_t i = first; i < first + count; ++i) {
    DeadlineFactory::Made m = factory.Make(i, absl::Now(), due_of(i - first));
    r.timers += m.timers;
    loader.Commit(m.shard, std::move(m.write), m.options);
  }
  r.failed = loader.Finish();
  r.first_error = loader.first_error();
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

// Deletes the shards' outboxes (as the relay trims them once delivered); returns the events
// they held and their bytes.
std::pair<int64_t, int64_t> DropOutboxes(RedisClient& redis) {
  int64_t events = 0, bytes = 0;
  for (int shard = 0; shard < kShards; ++shard) {
    const std::string key = common::EventKeys::Outbox(shard, dl::kEventSource);
    auto n = common::RunRedisCommand(redis, {"XLEN", key});
    if (n.ok()) events += n->integer;
    bytes += MemoryUsage(redis, key);
    (void)common::RunRedisCommand(redis, {"DEL", key});
  }
  return {events, bytes};
}

int64_t OutboxEvents(RedisClient& redis) {
  int64_t events = 0;
  for (int shard = 0; shard < kShards; ++shard) {
    auto n = common::RunRedisCommand(redis,
                                     {"XLEN", common::EventKeys::Outbox(shard, dl::kEventSource)});
    if (n.ok()) events += n->integer;
  }
  return events;
}

int64_t OpenClaims(RedisClient& redis) {
  int64_t claims = 0;
  for (int shard = 0; shard < kShards; ++shard) {
    auto n =
        common::RunRedisCommand(redis, {"ZCARD", dl::RedisDeadlineStore::Key(shard, "claims")});
    if (n.ok()) claims += n->integer;
  }
  return claims;
}

// Runs `engines` real TimerEngines (each with its own Redis connection, as replicas) until
// `expected` timers fired or `timeout` passed. Returns the seconds from start to last fire.
// CPU seconds Redis used (INFO cpu), and this process.
double RedisCpuSeconds(RedisClient& redis) {
  auto info = Info(redis, "cpu");
  double user = 0, sys = 0;
  absl::SimpleAtod(info["used_cpu_user"], &user);
  absl::SimpleAtod(info["used_cpu_sys"], &sys);
  return user + sys;
}
double OwnCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct FireResult {
  double redis_cpu_s = 0;  // CPU Redis used while the engines ran
  double own_cpu_s = 0;    // CPU this process (the engines) used meanwhile
  absl::Time start;        // engines started
  absl::Time last;         // last fire committed
  double seconds = 0;      // start to last
  int64_t fired = 0;
  std::map<std::string, double> lateness;
  CommandCounts commands;
};
FireResult RunEngines(const Settings& s, const common::RedisUrl& url, RedisClient& admin,
                      int64_t expected, absl::Duration timeout) {
  LatenessRecorder recorder;
  common::RealClock clock;
  std::vector<std::unique_ptr<RedisClient>> clients;
  std::vector<std::unique_ptr<dl::DeadlineStore>> stores;
  std::vector<std::unique_ptr<dl::TimerEngine>> engines;
  for (int e = 0; e < s.engines; ++e) {
    clients.push_back(Connect(url));
    stores.push_back(
        std::make_unique<dl::RedisDeadlineStore>(*clients.back(), common::Sharding(kShards)));
    dl::TimerEngineOptions options;
    options.owner = absl::StrCat("bench", e);
    options.batch = s.batch;
    options.recheck_interval = s.recheck_interval;
    options.on_fired = [&recorder](absl::Duration lateness) { recorder.Record(lateness); };
    engines.push_back(std::make_unique<dl::TimerEngine>(*stores.back(), *clients.back(), clock,
                                                        nullptr, options));
  }
  const CommandCounts before = Commands(admin);
  const double redis_cpu_before = RedisCpuSeconds(admin);
  const double own_cpu_before = OwnCpuSeconds();
  const absl::Time start = absl::Now();
  for (auto& e : engines) e->Start();
  const absl::Time give_up = start + timeout;
  while (recorder.count() < expected && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  for (auto& e : engines) e->Stop();
  const CommandCounts after = Commands(admin);
  FireResult r;
  r.redis_cpu_s = RedisCpuSeconds(admin) - redis_cpu_before;
  r.own_cpu_s = OwnCpuSeconds() - own_cpu_before;
  r.fired = recorder.count();
  r.start = start;
  r.last = recorder.last();
  r.seconds = absl::ToDoubleSeconds(r.last - start);
  r.lateness = recorder.Percentiles();
  r.commands.commands = after.commands - before.commands - (after.info - before.info) - 1;
  r.commands.scripts = after.scripts - before.scripts;
  return r;
}

// Figures common to both firing scenarios; `lateness`: whether lateness means anything (in
// the burst every timer was due before the engine started: it measures the load time).
void AddFire(Scenario& sc, const FireResult& r, int64_t expected, int64_t events, bool lateness) {
  sc.Add("expected", static_cast<double>(expected));
  sc.Add("fired", static_cast<double>(r.fired));
  sc.Add("events_emitted", static_cast<double>(events));
  if (lateness) {
    for (const auto& key : {"lateness_p50_s", "lateness_p90_s", "lateness_p99_s", "lateness_p999_s",
                            "lateness_max_s"}) {
      sc.Add(key, r.lateness.at(key));
    }
  } else {
    sc.Add("seconds", r.seconds);
    sc.Add("fired_per_s", r.seconds > 0 ? static_cast<double>(r.fired) / r.seconds : 0);
  }
  const double fired = std::max<double>(1, static_cast<double>(r.fired));
  sc.Add("redis_commands_per_fired", static_cast<double>(r.commands.commands) / fired);
  sc.Add("redis_scripts_per_fired", static_cast<double>(r.commands.scripts) / fired);
  // CPU per fired timer: what bounds throughput once a core is free for each side (the
  // burst's fired_per_s on a shared machine is lower).
  sc.Add("redis_cpu_us_per_fired", r.redis_cpu_s * 1e6 / fired);
  sc.Add("engine_cpu_us_per_fired", r.own_cpu_s * 1e6 / fired);
}

std::string Number(double v) {
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  return absl::StrFormat("%.6g", v);
}

void Print(const std::vector<Scenario>& scenarios) {
  for (const Scenario& sc : scenarios) {
    std::cout << "\n## " << sc.name << "\n\n| figure | value |\n|---|---|\n";
    for (const auto& [k, v] : sc.figures) std::cout << "| " << k << " | " << Number(v) << " |\n";
    for (const auto& n : sc.notes) std::cout << "\n" << n << "\n";
  }
  std::cout << std::flush;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
      continue;
    }
    out += c;
  }
  return out;
}

// A JSON array of {"scenario": name, "figures": {...}, "notes": [...]}.
bool WriteJson(const std::string& path, const std::vector<Scenario>& scenarios) {
  std::ofstream f(path);
  f << "[\n";
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const Scenario& sc = scenarios[i];
    f << "  {\"scenario\": \"" << JsonEscape(sc.name) << "\", \"figures\": {";
    for (size_t j = 0; j < sc.figures.size(); ++j) {
      f << (j ? ", " : "") << "\"" << sc.figures[j].first << "\": " << Number(sc.figures[j].second);
    }
    f << "}, \"notes\": [";
    for (size_t j = 0; j < sc.notes.size(); ++j) {
      f << (j ? ", " : "") << "\"" << JsonEscape(sc.notes[j]) << "\"";
    }
    f << "]}" << (i + 1 < scenarios.size() ? "," : "") << "\n";
  }
  f << "]\n";
  return static_cast<bool>(f);
}

int Run(Settings s) {
  if (s.smoke) {
    s.deadlines = std::min(s.deadlines, 3000);
    s.fire = std::min(s.fire, 2000);
    s.steady_rate = std::min(s.steady_rate, 1000);
    s.window = std::min(s.window, absl::Seconds(2));
  }
  auto url = common::ParseRedisUrl(s.redis_url);
  if (!url.ok()) {
    std::cerr << "--redis-url: " << url.status() << "\n";
    return 2;
  }
  auto rules = dl::RuleSet::Load(s.rules_dir);
  if (!rules.ok()) {
    std::cerr << "--rules-dir: " << rules.status() << "\n";
    return 2;
  }
  auto redis = Connect(*url);
  if (!common::RunRedisCommand(*redis, {"PING"}).ok()) {
    std::cerr << "cannot reach Redis at " << s.redis_url << "\n";
    return 1;
  }
  dl::RedisDeadlineStore store(*redis, common::Sharding(kShards));
  DeadlineFactory factory(*rules);
  std::vector<Scenario> scenarios;
  bool ok = true;
  int64_t next_index = 0;
  double load_rate_per_s = 0;
  auto fail = [&](const std::string& what) {
    std::cerr << "FAILED: " << what << "\n";
    ok = false;
  };

  // 1 + 2: load the pending deadlines; memory.
  {
    Scenario sc;
    sc.name = "deadline_load";
    const int64_t mem_before = UsedMemory(*redis);
    const CommandCounts cmd_before = Commands(*redis);
    LoadResult load = Load(factory, store, s, next_index, s.deadlines,
                           [](int64_t) { return std::optional<absl::Time>(); });
    next_index += s.deadlines;
    const CommandCounts cmd_after = Commands(*redis);
    if (load.failed > 0) fail(absl::StrCat(load.failed, " loads failed: ", load.first_error));
    auto [events, outbox_bytes] = DropOutboxes(*redis);
    absl::SleepFor(absl::Seconds(s.smoke ? 0.2 : 2));  // settle (lazy frees, stats)
    const int64_t mem_after = UsedMemory(*redis);
    const double n = std::max(1, s.deadlines);
    sc.Add("deadlines", s.deadlines);
    sc.Add("load_seconds", load.seconds);
    load_rate_per_s = load.seconds > 0 ? s.deadlines / load.seconds : 0;
    sc.Add("loaded_per_s", load_rate_per_s);
    sc.Add("redis_scripts_per_load",
           static_cast<double>(cmd_after.scripts - cmd_before.scripts) / n);
    // Timers the deadlines need (TimersOf: unfired reminders and due time), and the members
    // the shards' timer sets actually hold.
    sc.Add("timers_per_deadline", static_cast<double>(load.timers) / n);
    int64_t members = 0;
    for (int shard = 0; shard < kShards; ++shard) {
      auto z =
          common::RunRedisCommand(*redis, {"ZCARD", dl::RedisDeadlineStore::Key(shard, "timers")});
      if (z.ok()) members += z->integer;
    }
    sc.Add("timer_members_per_deadline", static_cast<double>(members) / n);
    sc.Add("used_memory_before", static_cast<double>(mem_before));
    sc.Add("used_memory_after", static_cast<double>(mem_after));
    sc.Add("bytes_per_deadline", static_cast<double>(mem_after - mem_before) / n);
    sc.Add("outbox_bytes_per_started_event",
           events > 0 ? static_cast<double>(outbox_bytes) / static_cast<double>(events) : 0);
    // Where the bytes go: the shard-wide sorted sets (exact), and a sample of the
    // per-deadline keys.
    int64_t timers = 0, open = 0;
    for (int shard = 0; shard < kShards; ++shard) {
      timers += MemoryUsage(*redis, dl::RedisDeadlineStore::Key(shard, "timers"));
      open += MemoryUsage(*redis, dl::RedisDeadlineStore::Key(shard, "open"));
    }
    sc.Add("timers_zset_bytes_per_deadline", static_cast<double>(timers) / n);
    sc.Add("open_zset_bytes_per_deadline", static_cast<double>(open) / n);
    int64_t byauth = 0;
    // Every byauth key (2,000 authorities x 16 shards at most): SCAN, bench-only.
    {
      std::string cursor = "0";
      do {
        auto r = common::RunRedisCommand(
            *redis, {"SCAN", cursor, "MATCH", "rg:{s*}:dl:byauth:*", "COUNT", "10000"});
        if (!r.ok() || r->elements.size() != 2) break;
        cursor = r->elements[0].str;
        for (const RedisReply& k : r->elements[1].elements) byauth += MemoryUsage(*redis, k.str);
      } while (cursor != "0");
    }
    sc.Add("byauth_zsets_bytes_per_deadline", static_cast<double>(byauth) / n);
    // A sample of deadlines: their hash, the request's byreq, seq and parties keys.
    {
      int64_t hash = 0, pb = 0, byreq = 0, seq = 0, parties = 0, sampled = 0;
      for (int shard = 0; shard < kShards && sampled < 320; ++shard) {
        auto r = common::RunRedisCommand(
            *redis, {"ZRANGE", dl::RedisDeadlineStore::Key(shard, "open"), "0", "19"});
        if (!r.ok()) continue;
        for (const RedisReply& id : r->elements) {
          const std::string key = dl::RedisDeadlineStore::Key(shard, "d:" + id.str);
          hash += MemoryUsage(*redis, key);
          auto f = common::RunRedisCommand(*redis, {"HMGET", key, "pb", "request"});
          if (!f.ok() || f->elements.size() != 2) continue;
          pb += static_cast<int64_t>(f->elements[0].str.size());
          const std::string req = f->elements[1].str;
          byreq += MemoryUsage(*redis, dl::RedisDeadlineStore::Key(shard, "byreq:" + req));
          seq += MemoryUsage(*redis, dl::RedisDeadlineStore::Key(shard, "seq:" + req));
          parties += MemoryUsage(*redis, dl::RedisDeadlineStore::Key(shard, "parties:" + req));
          ++sampled;
        }
      }
      const double k = std::max<int64_t>(1, sampled);
      sc.Add("deadline_hash_bytes", hash / k);
      sc.Add("deadline_pb_bytes", pb / k);
      sc.Add("byreq_zset_bytes", byreq / k);
      sc.Add("seq_bytes", seq / k);
      sc.Add("parties_hash_bytes", parties / k);
    }
    auto cfg = common::RunRedisCommand(*redis, {"CONFIG", "GET", "*-max-listpack-*"});
    if (cfg.ok()) {
      std::string text = "Redis listpack settings:";
      for (size_t i = 0; i + 1 < cfg->elements.size(); i += 2) {
        absl::StrAppend(&text, " ", cfg->elements[i].str, "=", cfg->elements[i + 1].str);
      }
      sc.notes.push_back(text);
    }
    sc.notes.push_back(
        "One deadline per request (its own byreq, seq and parties keys); the outbox's "
        "DEADLINE_STARTED events are removed before measuring, as the relay trims them once "
        "delivered.");
    scenarios.push_back(std::move(sc));
  }

  const int64_t timeout_floor = s.smoke ? 30 : 120;
  // 3: burst.
  {
    Scenario sc;
    sc.name = "deadline_burst";
    const absl::Time due = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now() - absl::Seconds(1)));
    LoadResult load = Load(factory, store, s, next_index, s.fire,
                           [due](int64_t) { return std::optional<absl::Time>(due); });
    next_index += s.fire;
    if (load.failed > 0) fail(absl::StrCat(load.failed, " loads failed: ", load.first_error));
    DropOutboxes(*redis);
    FireResult r = RunEngines(s, *url, *redis, s.fire,
                              absl::Seconds(std::max<int64_t>(timeout_floor, s.fire / 1000)));
    AddFire(sc, r, s.fire, OutboxEvents(*redis), false);
    sc.Add("claims_left", static_cast<double>(OpenClaims(*redis)));
    sc.notes.push_back(absl::StrCat(s.fire, " deadlines already due when ", s.engines,
                                    " engine(s) start; each fires DEADLINE_MISSED once."));
    scenarios.push_back(std::move(sc));
  }

  // 4: steady.
  {
    Scenario sc;
    sc.name = "deadline_steady";
    const int64_t count =
        std::max<int64_t>(1, static_cast<int64_t>(s.steady_rate * absl::ToDoubleSeconds(s.window)));
    // Loading takes time: the first timer falls due after the load is expected to end.
    const double load_rate = load_rate_per_s;
    const absl::Duration lead = absl::Seconds(2) + absl::Seconds(1.5 * static_cast<double>(count) /
                                                                 std::max(1000.0, load_rate));
    const absl::Time first_due = absl::Now() + lead;
    const absl::Duration step = s.window / count;
    LoadResult load = Load(factory, store, s, next_index, count, [&](int64_t i) {
      // Whole microseconds: a Timestamp keeps nanoseconds, absl::Time finer fractions.
      return std::optional<absl::Time>(
          absl::FromUnixMicros(absl::ToUnixMicros(first_due + step * i)));
    });
    next_index += count;
    if (load.failed > 0) fail(absl::StrCat(load.failed, " loads failed: ", load.first_error));
    DropOutboxes(*redis);
    const absl::Duration slack = first_due - absl::Now();
    FireResult r =
        RunEngines(s, *url, *redis, count, s.window + lead + absl::Seconds(timeout_floor));
    AddFire(sc, r, count, OutboxEvents(*redis), true);
    sc.Add("rate_per_s", s.steady_rate);
    sc.Add("window_s", absl::ToDoubleSeconds(s.window));
    // Did the engine keep up: the last fire against the last due time.
    sc.Add("last_fire_after_window_s", absl::ToDoubleSeconds(r.last - (first_due + s.window)));
    sc.Add("claims_left", static_cast<double>(OpenClaims(*redis)));
    if (slack < absl::ZeroDuration()) {
      sc.notes.push_back("WARNING: loading ended after the first due time; lateness includes it.");
    }
    sc.notes.push_back(absl::StrCat(s.steady_rate, " timers a second fall due over ",
                                    absl::FormatDuration(s.window), " while ", s.engines,
                                    " engine(s) run (recheck interval ",
                                    absl::FormatDuration(s.recheck_interval), ")."));
    scenarios.push_back(std::move(sc));
  }

  Print(scenarios);
  if (!s.json.empty() && !WriteJson(s.json, scenarios)) fail("cannot write " + s.json);
  for (size_t i = 1; i < scenarios.size(); ++i) {
    const auto& f = scenarios[i].figures;
    if (f[0].second != f[1].second) fail(scenarios[i].name + ": not every timer fired");
    if (f[1].second != f[2].second) fail(scenarios[i].name + ": events != fired timers");
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace rogatory::bench

int main(int argc, char** argv) {
  rogatory::bench::Settings s;
  rogatory::common::Config config;
  config.AddString("redis-url", "redis://127.0.0.1:6379",
                   "Redis under test (its data is added to, not flushed).", &s.redis_url);
  config.AddInt("deadlines", 1000000, 1, 50000000, "Pending deadlines to load.", &s.deadlines);
  config.AddInt("fire", 200000, 1, 10000000,
                "Burst: deadlines already due when the engine starts (each fires once).", &s.fire);
  config.AddDuration("window", absl::Seconds(10), absl::Milliseconds(100), absl::Hours(1),
                     "Steady: the due times of its timers spread over this window.", &s.window);
  config.AddInt("steady-rate", 10000, 1, 1000000,
                "Steady: timers falling due per second over the window.", &s.steady_rate);
  config.AddInt("engines", 1, 1, 8,
                "TimerEngine instances (replicas), each with its own connection.", &s.engines);
  config.AddInt("batch", 200, 1, 5000, "Timers an engine claims per shard at a time (timer-batch).",
                &s.batch);
  config.AddDuration("recheck-interval", absl::Seconds(5), absl::Milliseconds(1), absl::Hours(1),
                     "Engine safety net (timer-recheck-interval): it sleeps until the next "
                     "due timer, at most this long.",
                     &s.recheck_interval);
  config.AddInt("in-flight", 256, 1, 100000, "Load: commits in flight.", &s.in_flight);
  config.AddString("json", "", "Write the figures as JSON here.", &s.json);
  config.AddString("rules-dir", ROGATORY_DEADLINES_DATA_DIR, "Rules and calendars to use.",
                   &s.rules_dir);
  config.AddBool("smoke", false, "A few thousand deadlines, a few seconds: for the test suite.",
                 &s.smoke);
  // A bare --smoke means --smoke=true (the shared Config wants a value for booleans).
  std::vector<std::string> args(argv, argv + argc);
  for (std::string& a : args) {
    if (a == "--smoke") a = "--smoke=true";
  }
  std::vector<const char*> arg_ptrs;
  for (const std::string& a : args) arg_ptrs.push_back(a.c_str());
  if (absl::Status st = config.Parse(static_cast<int>(arg_ptrs.size()), arg_ptrs.data(),
                                     rogatory::common::ProcessEnv());
      !st.ok()) {
    std::cerr << st << "\n";
    return 2;
  }
  if (config.help_requested()) {
    std::cout << config.Help("rogatory-deadline-bench");
    return 0;
  }
  return rogatory::bench::Run(std::move(s));
}
