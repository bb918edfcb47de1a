#include "rogatory/common/cluster_redis_client.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "rogatory/common/backoff.h"
#include "rogatory/common/logging.h"

namespace rogatory::common {

namespace {

constexpr int kSlots = 16384;
// Redirections (MOVED, ASK) one call follows before giving up: a slot map in flux settles
// in a few.
constexpr int kMaxRedirections = 16;
const Backoff kRetryBackoff{absl::Milliseconds(20), absl::Milliseconds(250)};
// A refresh of the slot map asked for while one runs starts this long after it ends.
constexpr absl::Duration kRefreshSpacing = absl::Milliseconds(100);

uint16_t Crc16(absl::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::string Upper(absl::string_view s) { return absl::AsciiStrToUpper(s); }

std::string NodeName(const std::string& host, int port) { return absl::StrCat(host, ":", port); }

bool SplitNodeName(absl::string_view name, std::string* host, int* port) {
  const size_t colon = name.rfind(':');
  if (colon == absl::string_view::npos) return false;
  *host = std::string(name.substr(0, colon));
  return absl::SimpleAtoi(name.substr(colon + 1), port);
}

// The Redis error code of a status made by RedisErrorToStatus ("redis: MOVED 12 h:p"), or
// "" for a transport failure.
absl::string_view ErrorCode(const absl::Status& status, absl::string_view* rest) {
  absl::string_view message = status.message();
  if (!absl::ConsumePrefix(&message, "redis: ")) return "";
  const size_t space = message.find(' ');
  *rest = space == absl::string_view::npos ? "" : message.substr(space + 1);
  return message.substr(0, space);
}

// The failures of a command that never left this process (nothing can have been applied).
bool NeverSent(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kUnavailable) return false;
  const absl::string_view m = status.message();
  // "redis is not connected", "... yet (connecting to h:p)", "...: <last error>".
  return absl::StartsWith(m, "redis is not connected") || m == "redis connection is closing";
}

bool IsBroadcast(const std::string& upper_name) {
  return upper_name == "SCRIPT" || upper_name == "FLUSHALL" || upper_name == "FLUSHDB";
}

class ClusterRedisClient final : public RedisClient {
 public:
  explicit ClusterRedisClient(ClusterRedisOptions options);
  ~ClusterRedisClient() override;

  void Command(std::vector<std::string> args, RedisCallback done) override;
  void Eval(const LuaScript& script, std::vector<std::string> keys, std::vector<std::string> args,
            RedisCallback done) override;

 private:
  struct Call {
    std::vector<std::string> args;  // a command
    std::shared_ptr<const LuaScript> script;
    std::vector<std::string> keys, script_args;
    bool broadcast = false;
    int slot = -1;  // -1: any node
    RedisCallback done;
    std::atomic<bool> completed{false};
    // Only one attempt of a call runs at a time: the fields below change between them.
    std::string ask_node;  // the next attempt goes there, after ASKING
    int redirections = 0;
    int retries = 0;
    bool budget_armed = false;
    absl::Status last_error;
  };
  using CallPtr = std::shared_ptr<Call>;

  void Start(CallPtr call);
  void Attempt(const CallPtr& call);
  void AttemptBroadcast(const CallPtr& call);
  void OnResult(const CallPtr& call, absl::StatusOr<RedisReply> result);
  void Retry(const CallPtr& call, absl::Status status);
  static void Complete(const CallPtr& call, absl::StatusOr<RedisReply> result);

  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }
  RedisClient& Node(const std::string& name);
  // The primary that owns `slot` (any known node for -1 or an unknown slot).
  std::string Route(int slot);
  std::vector<std::string> Primaries();

  void RequestRefresh();
  void TryRefresh(std::shared_ptr<std::vector<std::string>> candidates, size_t i);
  void EndRefresh(bool ok);
  bool InstallSlotMap(const RedisReply& reply, const std::string& asked);

  // Runs `fn` on the timer thread after `delay` (at once, on the destroying thread, if the
  // client is destroyed first).
  void After(absl::Duration delay, std::function<void()> fn);
  static void OnTimer(evutil_socket_t, short, void* arg);

  const ClusterRedisOptions options_;
  std::vector<std::string> seed_names_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<RedisClient>> nodes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> owners_ ABSL_GUARDED_BY(mu_);  // index: node id
  std::array<int16_t, kSlots> slot_owner_ ABSL_GUARDED_BY(mu_);
  bool refreshing_ ABSL_GUARDED_BY(mu_) = false;
  bool refresh_again_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t rotation_ ABSL_GUARDED_BY(mu_) = 0;
  std::minstd_rand rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};

  absl::Mutex timers_mu_;
  std::map<intptr_t, std::function<void()>> timers_ ABSL_GUARDED_BY(timers_mu_);
  intptr_t next_timer_ ABSL_GUARDED_BY(timers_mu_) = 1;
  event_base* base_ = nullptr;
  event* stop_ = nullptr;
  std::thread thread_;
};

ClusterRedisClient::ClusterRedisClient(ClusterRedisOptions options) : options_(std::move(options)) {
  static const int kThreadsReady = evthread_use_pthreads();
  (void)kThreadsReady;
  slot_owner_.fill(-1);
  for (const RedisHostPort& seed : options_.seeds) {
    seed_names_.push_back(NodeName(seed.host, seed.port));
  }
  base_ = event_base_new();
  stop_ = event_new(
      base_, -1, 0,
      [](evutil_socket_t, short, void* base) {
        event_base_loopbreak(static_cast<event_base*>(base));
      },
      base_);
  thread_ = std::thread([this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
  RequestRefresh();
}

ClusterRedisClient::~ClusterRedisClient() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // From inside the loop: an event_base_loopexit() before the thread entered the loop
  // would be lost (the loop clears the flag on entry); an active event is not.
  event_active(stop_, EV_READ, 0);
  thread_.join();
  // Calls waiting for a retry fail now (Attempt sees stopping_).
  std::map<intptr_t, std::function<void()>> left;
  {
    absl::MutexLock lock(&timers_mu_);
    left.swap(timers_);
  }
  for (auto& [id, fn] : left) fn();
  // Node clients fail what they still hold; OnResult completes without retrying.
  absl::flat_hash_map<std::string, std::unique_ptr<RedisClient>> nodes;
  {
    absl::MutexLock lock(&mu_);
    nodes.swap(nodes_);
  }
  nodes.clear();
  event_free(stop_);
  event_base_free(base_);
}

void ClusterRedisClient::After(absl::Duration delay, std::function<void()> fn) {
  if (Stopping()) {
    fn();  // the timer thread is gone: what fn starts sees stopping_ and ends
    return;
  }
  intptr_t id;
  {
    absl::MutexLock lock(&timers_mu_);
    id = next_timer_++;
    timers_.emplace(id, std::move(fn));
  }
  timeval tv = absl::ToTimeval(delay);
  if (event_base_once(base_, -1, EV_TIMEOUT, &ClusterRedisClient::OnTimer,
                      new std::pair<ClusterRedisClient*, intptr_t>(this, id), &tv) != 0) {
    Log::Error("redis cluster client: cannot schedule a timer");
  }
}

void ClusterRedisClient::OnTimer(evutil_socket_t, short, void* arg) {
  std::unique_ptr<std::pair<ClusterRedisClient*, intptr_t>> timer(
      static_cast<std::pair<ClusterRedisClient*, intptr_t>*>(arg));
  ClusterRedisClient* self = timer->first;
  std::function<void()> fn;
  {
    absl::MutexLock lock(&self->timers_mu_);
    auto it = self->timers_.find(timer->second);
    if (it == self->timers_.end()) return;
    fn = std::move(it->second);
    self->timers_.erase(it);
  }
  fn();
}

void ClusterRedisClient::Command(std::vector<std::string> args, RedisCallback done) {
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  if (args.empty()) {
    Complete(call, absl::InvalidArgumentError("redis command: empty"));
    return;
  }
  const std::string name = Upper(args[0]);
  call->broadcast = IsBroadcast(name);
  for (absl::string_view key : RedisCommandKeys(args)) {
    const int slot = RedisKeySlot(key);
    if (call->slot >= 0 && slot != call->slot) {
      Complete(call, absl::InvalidArgumentError(absl::StrCat(
                         "redis command ", name,
                         ": its keys are in several hash slots, which a Redis Cluster refuses")));
      return;
    }
    call->slot = slot;
  }
  call->args = std::move(args);
  Start(std::move(call));
}

void ClusterRedisClient::Eval(const LuaScript& script, std::vector<std::string> keys,
                              std::vector<std::string> args, RedisCallback done) {
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  for (const std::string& key : keys) {
    const int slot = RedisKeySlot(key);
    if (call->slot >= 0 && slot != call->slot) {
      Complete(call, absl::InvalidArgumentError(
                         "redis script: its keys are in several hash slots, which a Redis "
                         "Cluster refuses (every key of a script must share a hash tag)"));
      return;
    }
    call->slot = slot;
  }
  call->script = std::make_shared<const LuaScript>(script);
  call->keys = std::move(keys);
  call->script_args = std::move(args);
  Start(std::move(call));
}

void ClusterRedisClient::Start(CallPtr call) {
  if (call->broadcast) {
    AttemptBroadcast(call);
  } else {
    Attempt(call);
  }
}

void ClusterRedisClient::Complete(const CallPtr& call, absl::StatusOr<RedisReply> result) {
  if (call->completed.exchange(true)) return;
  call->done(std::move(result));
}

RedisClient& ClusterRedisClient::Node(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& client = nodes_[name];
  if (client == nullptr) {
    std::string host;
    int port = 0;
    SplitNodeName(name, &host, &port);
    if (options_.node_client_factory) {
      client = options_.node_client_factory(host, port);
    } else {
      AsyncRedisOptions node = options_.node_options;
      node.url.host = host;
      node.url.port = port;
      node.url.seeds = {RedisHostPort{host, port}};
      node.url.cluster = false;
      client = NewAsyncRedisClient(node);
    }
  }
  return *client;
}

std::string ClusterRedisClient::Route(int slot) {
  absl::MutexLock lock(&mu_);
  if (slot >= 0 && slot_owner_[slot] >= 0) return owners_[slot_owner_[slot]];
  // Any primary of the map, else any seed (a MOVED then says where to go).
  std::vector<std::string> any;
  for (int16_t owner : {slot_owner_[0], slot_owner_[kSlots / 2], slot_owner_[kSlots - 1]}) {
    if (owner >= 0) any.push_back(owners_[owner]);
  }
  if (any.empty()) any = seed_names_;
  return any[rotation_++ % any.size()];
}

std::vector<std::string> ClusterRedisClient::Primaries() {
  absl::MutexLock lock(&mu_);
  std::vector<bool> used(owners_.size(), false);
  for (int16_t owner : slot_owner_) {
    if (owner >= 0) used[owner] = true;
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < owners_.size(); ++i) {
    if (used[i]) out.push_back(owners_[i]);
  }
  return out;
}

void ClusterRedisClient::Attempt(const CallPtr& call) {
  if (call->completed.load()) return;
  if (Stopping()) {
    Complete(call, absl::UnavailableError("redis client stopped"));
    return;
  }
  std::string ask;
  ask.swap(call->ask_node);
  const std::string target = ask.empty() ? Route(call->slot) : ask;
  RedisClient& node = Node(target);
  std::weak_ptr<Call> weak = call;
  auto done = [this, call](absl::StatusOr<RedisReply> result) {
    OnResult(call, std::move(result));
  };
  if (ask.empty() && call->script != nullptr) {
    node.Eval(*call->script, call->keys, call->script_args, std::move(done));
    return;
  }
  std::vector<std::string> args;
  if (call->script != nullptr) {
    // After ASKING the very next command must be the script: EVAL, not an EVALSHA whose
    // NOSCRIPT fallback would come too late.
    args.reserve(3 + call->keys.size() + call->script_args.size());
    args.push_back("EVAL");
    args.push_back(call->script->source());
    args.push_back(absl::StrCat(call->keys.size()));
    args.insert(args.end(), call->keys.begin(), call->keys.end());
    args.insert(args.end(), call->script_args.begin(), call->script_args.end());
  } else {
    args = call->args;
  }
  if (!ask.empty()) node.Command({"ASKING"}, [](absl::StatusOr<RedisReply>) {});
  node.Command(std::move(args), std::move(done));
}

void ClusterRedisClient::AttemptBroadcast(const CallPtr& call) {
  if (call->completed.load()) return;
  if (Stopping()) {
    Complete(call, absl::UnavailableError("redis client stopped"));
    return;
  }
  const std::vector<std::string> primaries = Primaries();
  if (primaries.empty()) {
    RequestRefresh();
    Retry(call, absl::UnavailableError("redis cluster: the slot map is not known yet"));
    return;
  }
  struct Gather {
    absl::Mutex mu;
    size_t left;
    std::optional<absl::Status> error;
    RedisReply reply;
  };
  auto gather = std::make_shared<Gather>();
  gather->left = primaries.size();
  for (const std::string& name : primaries) {
    Node(name).Command(call->args, [this, call, gather](absl::StatusOr<RedisReply> result) {
      bool last;
      {
        absl::MutexLock lock(&gather->mu);
        if (!result.ok()) {
          if (!gather->error.has_value()) gather->error = result.status();
        } else {
          gather->reply = *std::move(result);
        }
        last = --gather->left == 0;
      }
      if (!last) return;
      // Every node answered: SCRIPT, FLUSHALL and FLUSHDB may be sent again.
      if (gather->error.has_value()) {
        OnResult(call, *gather->error);
      } else {
        Complete(call, std::move(gather->reply));
      }
    });
  }
}

void ClusterRedisClient::OnResult(const CallPtr& call, absl::StatusOr<RedisReply> result) {
  if (call->completed.load()) return;
  if (result.ok()) {
    Complete(call, std::move(result));
    return;
  }
  if (Stopping()) {
    Complete(call, result.status());
    return;
  }
  const absl::Status status = result.status();
  absl::string_view rest;
  const absl::string_view code = ErrorCode(status, &rest);
  if (code == "MOVED" || code == "ASK") {
    // "MOVED <slot> <host>:<port>"
    std::vector<absl::string_view> parts = absl::StrSplit(rest, ' ');
    int slot = -1;
    std::string host;
    int port = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &slot) || slot < 0 || slot >= kSlots ||
        !SplitNodeName(parts[1], &host, &port)) {
      Complete(call, absl::InternalError(absl::StrCat("redis cluster: unreadable redirection: ",
                                                      status.message())));
      return;
    }
    if (host.empty()) host = "127.0.0.1";  // unlikely: the node does not know its address
    if (++call->redirections > kMaxRedirections) {
      Complete(call, absl::UnavailableError(
                         absl::StrCat("redis cluster: more than ", kMaxRedirections,
                                      " redirections for one call (the slot map is changing)")));
      return;
    }
    const std::string target = NodeName(host, port);
    if (code == "MOVED") {
      {
        absl::MutexLock lock(&mu_);
        auto it = std::find(owners_.begin(), owners_.end(), target);
        if (it == owners_.end()) it = owners_.insert(owners_.end(), target);
        slot_owner_[slot] = static_cast<int16_t>(it - owners_.begin());
      }
      RequestRefresh();
    } else {
      call->ask_node = target;
    }
    if (call->broadcast) {
      Complete(call, status);
      return;
    }
    Attempt(call);
    return;
  }
  const bool retryable_reply = code == "TRYAGAIN" || code == "CLUSTERDOWN" || code == "LOADING" ||
                               code == "MASTERDOWN" || code == "READONLY";
  if (code == "CLUSTERDOWN" || code == "READONLY" || (code.empty() && !status.ok())) {
    // A failover (a primary that is gone or became a replica) or a node that stopped
    // answering: the map may have changed.
    RequestRefresh();
  }
  if (retryable_reply || NeverSent(status) ||
      (call->broadcast && status.code() == absl::StatusCode::kUnavailable)) {
    Retry(call, status);
    return;
  }
  Complete(call, status);
}

void ClusterRedisClient::Retry(const CallPtr& call, absl::Status status) {
  call->last_error = status;
  if (!call->budget_armed) {
    call->budget_armed = true;
    std::weak_ptr<Call> weak = call;
    After(options_.retry_budget, [weak, budget = options_.retry_budget] {
      if (CallPtr call = weak.lock()) {
        Complete(call, absl::UnavailableError(absl::StrCat(
                           "redis cluster: no answer within ", absl::FormatDuration(budget),
                           " of retries; last: ", call->last_error.message())));
      }
    });
  }
  absl::Duration delay;
  {
    absl::MutexLock lock(&mu_);
    delay = kRetryBackoff.Delay(++call->retries, rng_);
  }
  After(delay, [this, call] { Start(call); });
}

void ClusterRedisClient::RequestRefresh() {
  std::vector<std::string> candidates;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    if (refreshing_) {
      refresh_again_ = true;
      return;
    }
    refreshing_ = true;
  }
  // Primaries of the current map first (in random order), then the seeds.
  candidates = Primaries();
  {
    absl::MutexLock lock(&mu_);
    std::shuffle(candidates.begin(), candidates.end(), rng_);
    std::vector<std::string> seeds = seed_names_;
    std::shuffle(seeds.begin(), seeds.end(), rng_);
    for (std::string& seed : seeds) {
      if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end()) {
        candidates.push_back(std::move(seed));
      }
    }
  }
  TryRefresh(std::make_shared<std::vector<std::string>>(std::move(candidates)), 0);
}

void ClusterRedisClient::TryRefresh(std::shared_ptr<std::vector<std::string>> candidates,
                                    size_t i) {
  if (i >= candidates->size() || Stopping()) {
    EndRefresh(false);
    return;
  }
  const std::string name = (*candidates)[i];
  Node(name).Command({"CLUSTER", "SLOTS"},
                     [this, candidates, i, name](absl::StatusOr<RedisReply> reply) {
                       if (reply.ok() && InstallSlotMap(*reply, name)) {
                         EndRefresh(true);
                       } else {
                         TryRefresh(candidates, i + 1);
                       }
                     });
}

void ClusterRedisClient::EndRefresh(bool ok) {
  bool again;
  {
    absl::MutexLock lock(&mu_);
    refreshing_ = false;
    again = refresh_again_ || (!ok && owners_.empty());
    refresh_again_ = false;
    if (stopping_) return;
  }
  if (again) After(kRefreshSpacing, [this] { RequestRefresh(); });
}

bool ClusterRedisClient::InstallSlotMap(const RedisReply& reply, const std::string& asked) {
  if (reply.type != RedisReply::Type::kArray) return false;
  std::string asked_host;
  int asked_port = 0;
  SplitNodeName(asked, &asked_host, &asked_port);
  std::vector<std::tuple<int, int, std::string>> ranges;
  for (const RedisReply& range : reply.elements) {
    // [start, end, [host, port, id, ...], replicas...]
    if (range.type != RedisReply::Type::kArray || range.elements.size() < 3) return false;
    const RedisReply& primary = range.elements[2];
    if (primary.type != RedisReply::Type::kArray || primary.elements.size() < 2) return false;
    std::string host = primary.elements[0].str;
    if (host.empty() || host == "?") host = asked_host;
    const int64_t start = range.elements[0].integer;
    const int64_t end = range.elements[1].integer;
    if (start < 0 || end >= kSlots || start > end) return false;
    ranges.emplace_back(static_cast<int>(start), static_cast<int>(end),
                        NodeName(host, static_cast<int>(primary.elements[1].integer)));
  }
  if (ranges.empty()) return false;  // a node that is not (yet) part of a cluster
  absl::MutexLock lock(&mu_);
  slot_owner_.fill(-1);
  for (const auto& [start, end, name] : ranges) {
    auto it = std::find(owners_.begin(), owners_.end(), name);
    if (it == owners_.end()) it = owners_.insert(owners_.end(), name);
    const int16_t id = static_cast<int16_t>(it - owners_.begin());
    for (int s = start; s <= end; ++s) slot_owner_[s] = id;
  }
  return true;
}

}  // namespace

int RedisKeySlot(absl::string_view key) {
  const size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) % kSlots;
}

std::vector<absl::string_view> RedisCommandKeys(const std::vector<std::string>& args) {
  std::vector<absl::string_view> keys;
  if (args.size() < 2) return keys;
  const std::string name = Upper(args[0]);
  if (name == "SCAN") {
    // A SCAN whose MATCH pattern starts with a hash tag free of glob characters (the
    // migrations' "rg:{sN}:req:*") can only match keys of that tag's slot: it goes to the
    // primary that holds them (on any other node it would find nothing). Other SCANs have no
    // key: any primary, which sees only its own keys.
    for (size_t i = 2; i + 1 < args.size(); ++i) {
      if (Upper(args[i]) != "MATCH") continue;
      const std::string& pattern = args[i + 1];
      const size_t open = pattern.find('{');
      const size_t close = open == std::string::npos ? open : pattern.find('}', open + 1);
      const bool tagged =
          close != std::string::npos && close > open + 1 && pattern.find_first_of("*?[\\") > close;
      if (tagged) keys.push_back(pattern);
      break;
    }
    return keys;
  }
  static const auto* const kKeyless = new std::vector<std::string>{
      "PING",    "INFO",    "PUBLISH", "TIME",      "SCRIPT",     "CONFIG",   "CLUSTER", "CLIENT",
      "DBSIZE",  "ECHO",    "AUTH",    "SELECT",    "WAIT",       "FLUSHALL", "FLUSHDB", "HELLO",
      "COMMAND", "LATENCY", "SLOWLOG", "SUBSCRIBE", "PSUBSCRIBE", "ASKING",   "READONLY"};
  if (std::find(kKeyless->begin(), kKeyless->end(), name) != kKeyless->end()) return keys;
  if (name == "XREAD" || name == "XREADGROUP") {
    for (size_t i = 1; i < args.size(); ++i) {
      if (Upper(args[i]) == "STREAMS") {
        const size_t n = (args.size() - i - 1) / 2;
        for (size_t k = 0; k < n; ++k) keys.push_back(args[i + 1 + k]);
        break;
      }
    }
    return keys;
  }
  if (name == "XGROUP" || name == "XINFO" || name == "MEMORY" || name == "OBJECT") {
    if (args.size() >= 3) keys.push_back(args[2]);
    return keys;
  }
  if (name == "EVAL" || name == "EVALSHA" || name == "EVAL_RO" || name == "EVALSHA_RO" ||
      name == "FCALL" || name == "FCALL_RO") {
    size_t n = 0;
    if (args.size() >= 3 && absl::SimpleAtoi(args[2], &n)) {
      for (size_t k = 0; k < n && 3 + k < args.size(); ++k) keys.push_back(args[3 + k]);
    }
    return keys;
  }
  if (name == "DEL" || name == "UNLINK" || name == "EXISTS" || name == "MGET" || name == "TOUCH" ||
      name == "WATCH" || name == "SINTER" || name == "SUNION" || name == "SDIFF" ||
      name == "PFCOUNT") {
    for (size_t i = 1; i < args.size(); ++i) keys.push_back(args[i]);
    return keys;
  }
  if (name == "MSET" || name == "MSETNX") {
    for (size_t i = 1; i < args.size(); i += 2) keys.push_back(args[i]);
    return keys;
  }
  if (name == "RENAME" || name == "RENAMENX" || name == "SMOVE" || name == "RPOPLPUSH" ||
      name == "LMOVE" || name == "COPY") {
    keys.push_back(args[1]);
    if (args.size() >= 3) keys.push_back(args[2]);
    return keys;
  }
  keys.push_back(args[1]);
  return keys;
}

absl::StatusOr<std::unique_ptr<RedisClient>> NewClusterRedisClient(ClusterRedisOptions options) {
  if (options.seeds.empty()) {
    return absl::InvalidArgumentError("redis cluster: no seed address");
  }
  if (options.node_options.url.db != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis cluster: database ", options.node_options.url.db,
        " in the URL, but a Redis Cluster has database 0 only: end the URL with /0 or nothing"));
  }
  return std::unique_ptr<RedisClient>(new ClusterRedisClient(std::move(options)));
}

absl::StatusOr<std::unique_ptr<RedisClient>> NewRedisClientFor(const RedisUrl& url,
                                                               AsyncRedisOptions options) {
  options.url = url;
  if (!IsClusterUrl(url)) return NewAsyncRedisClient(options);
  ClusterRedisOptions cluster;
  cluster.seeds = url.seeds;
  if (cluster.seeds.empty()) cluster.seeds.push_back(RedisHostPort{url.host, url.port});
  cluster.node_options = options;
  return NewClusterRedisClient(std::move(cluster));
}

absl::StatusOr<RedisHostPort> ClusterNodeOfKey(const RedisUrl& url, absl::string_view key,
                                               absl::Duration timeout) {
  std::vector<RedisHostPort> seeds = url.seeds;
  if (seeds.empty()) seeds.push_back(RedisHostPort{url.host, url.port});
  const int slot = RedisKeySlot(key);
  absl::Status last = absl::UnavailableError("redis cluster: no seed answered");
  for (const RedisHostPort& seed : seeds) {
    const timeval tv = absl::ToTimeval(timeout);
    redisContext* ctx = redisConnectWithTimeout(seed.host.c_str(), seed.port, tv);
    if (ctx == nullptr || ctx->err) {
      if (ctx != nullptr) redisFree(ctx);
      continue;
    }
    redisSetTimeout(ctx, tv);
    bool authenticated = true;
    if (!url.password.empty()) {
      auto* auth = static_cast<redisReply*>(
          url.user.empty() ? redisCommand(ctx, "AUTH %b", url.password.data(), url.password.size())
                           : redisCommand(ctx, "AUTH %b %b", url.user.data(), url.user.size(),
                                          url.password.data(), url.password.size()));
      authenticated = auth != nullptr && auth->type != REDIS_REPLY_ERROR;
      if (auth != nullptr) freeReplyObject(auth);
    }
    auto* reply =
        authenticated ? static_cast<redisReply*>(redisCommand(ctx, "CLUSTER SLOTS")) : nullptr;
    std::optional<RedisHostPort> found;
    if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < reply->elements && !found.has_value(); ++i) {
        const redisReply* range = reply->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
        if (slot < range->element[0]->integer || slot > range->element[1]->integer) continue;
        const redisReply* primary = range->element[2];
        if (primary->type != REDIS_REPLY_ARRAY || primary->elements < 2) continue;
        RedisHostPort node;
        node.host = std::string(primary->element[0]->str, primary->element[0]->len);
        if (node.host.empty() || node.host == "?") node.host = seed.host;
        node.port = static_cast<int>(primary->element[1]->integer);
        found = node;
      }
    } else if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) {
      last = absl::FailedPreconditionError(
          absl::StrCat("redis cluster: CLUSTER SLOTS: ", std::string(reply->str, reply->len)));
    }
    if (reply != nullptr) freeReplyObject(reply);
    redisFree(ctx);
    if (found.has_value()) return *found;
  }
  return last;
}

}  // namespace rogatory::common
