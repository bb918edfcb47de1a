#include "rogatory/common/test_clock.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "rogatory/common/access.h"
#include "rogatory/common/lua_scripts.h"
#include "rogatory/common/redis_reply.h"
#include "rogatory/common/status.h"
#include "script_call.h"

namespace rogatory::common {
namespace {

using google::protobuf::util::TimeUtil;
namespace adminpb = rogatory::admin::v1;

// lua/test_clock_raise_offset.lua
constexpr char kWhat[] = "test clock raise offset";
struct RaiseOffset {
  std::string key;
  int64_t wanted_us = 0;
};
struct RaisedOffset {
  bool raised = false;  // false: the offset was already larger and stays
  int64_t offset_us = 0;
};

void RaiseOffsetTo(RedisClient& redis, const RaiseOffset& call,
                   std::function<void(absl::StatusOr<RaisedOffset>)> done) {
  internal::EvalTyped<RaisedOffset>(
      redis, internal::EmbeddedScript<&lua::kTestClockRaiseOffset>(), {call.key},
      {absl::StrCat(call.wanted_us)},
      [](const RedisReply& reply) -> absl::StatusOr<RaisedOffset> {
        ASSIGN_OR_RETURN(const std::vector<RedisReply>* elements, ReplyArray(reply, kWhat));
        if (elements->size() != 2) {
          return absl::InternalError(absl::StrCat(kWhat, ": Redis answered an unexpected array"));
        }
        ASSIGN_OR_RETURN(const int64_t raised, ReplyInteger((*elements)[0], kWhat));
        ASSIGN_OR_RETURN(const std::string text, ReplyString((*elements)[1], kWhat));
        ASSIGN_OR_RETURN(const int64_t offset, ParseDecimal(text, kWhat));
        return RaisedOffset{raised == 1, offset};
      },
      std::move(done));
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}
google::protobuf::Duration ToProto(absl::Duration d) {
  return TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(d));
}

}  // namespace

void SharedTestClock::Store(int64_t offset_us) {
  // Never moves backwards in this process either.
  int64_t current = offset_us_.load();
  while (offset_us > current && !offset_us_.compare_exchange_weak(current, offset_us)) {
  }
  if (offset_us > current) observers_.Notify();
}

void SharedTestClock::Refresh(OffsetDone done) {
  redis_.Command({"GET", kKey}, [this, done](absl::StatusOr<RedisReply> r) {
    if (!r.ok()) {
      if (done) done(r.status());
      return;
    }
    int64_t us = 0;
    if (!r->is_nil() && !absl::SimpleAtoi(r->str, &us)) {
      if (done) done(absl::InternalError("test clock offset in redis is not a number"));
      return;
    }
    Store(us);
    if (done) done(offset());
  });
}

void SharedTestClock::Advance(absl::Duration by, OffsetDone done) {
  redis_.Command({"INCRBY", kKey, absl::StrCat(absl::ToInt64Microseconds(by))},
                 [this, done](absl::StatusOr<RedisReply> r) {
                   if (!r.ok()) return done(r.status());
                   Store(r->integer);
                   done(offset());
                 });
}

void SharedTestClock::SetNow(absl::Time now, OffsetDone done) {
  const int64_t wanted = absl::ToInt64Microseconds(now - base_.Now());
  RaiseOffsetTo(redis_, {kKey, wanted}, [this, done](absl::StatusOr<RaisedOffset> r) {
    if (!r.ok()) return done(r.status());
    Store(r->offset_us);
    if (!r->raised) {
      return done(absl::InvalidArgumentError(
          "now: the shared test clock is already later; time never runs backwards"));
    }
    done(offset());
  });
}

absl::Status TestClockServiceImpl::Enabled() const {
  if (clock_ == nullptr) {
    return absl::FailedPreconditionError(
        "the shared test clock is disabled (enable it with --test-clock=true in development)");
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* TestClockServiceImpl::GetTime(grpc::CallbackServerContext* context,
                                                        const adminpb::GetTimeRequest* request,
                                                        adminpb::GetTimeResponse* response) {
  return pipeline_.Unary<adminpb::GetTimeRequest, adminpb::GetTimeResponse>(
      context, "GetTime", request, response,
      [this](const adminpb::GetTimeRequest&) { return Enabled(); },
      [this](const CallContext&, const adminpb::GetTimeRequest&, adminpb::GetTimeResponse* resp,
             Pipeline::Done done) {
        clock_->Refresh([this, resp, done](absl::StatusOr<absl::Duration> offset) {
          if (!offset.ok()) return done(offset.status());
          *resp->mutable_now() = ToProto(clock_->Now());
          *resp->mutable_offset() = ToProto(*offset);
          done(absl::OkStatus());
        });
      });
}

absl::Status TestClockServiceImpl::MayMove(const CallContext& call) const {
  // Authorization first: a caller who may not move the clock learns nothing about it (not
  // even whether it is enabled) and none of its input is looked at.
  RETURN_IF_ERROR(CheckAdmin(call.caller, "move the shared test clock"));
  return Enabled();
}

namespace {

absl::Status ValidateAdvance(const adminpb::AdvanceTimeRequest& req) {
  FieldViolations v;
  // Checked in seconds first: nanoseconds of a huge value would overflow.
  const int64_t seconds = req.by().seconds();
  if (!req.has_by() || seconds < 0 || (seconds == 0 && req.by().nanos() <= 0)) {
    v.Add("by", "must be a positive duration");
  } else if (seconds > 400 * 24 * 3600) {
    v.Add("by", "must be at most 400 days");
  }
  return v.ToStatus();
}

absl::Status ValidateSet(const adminpb::SetTimeRequest& req) {
  FieldViolations v;
  if (!req.has_now()) {
    v.Add("now", "is required");
  } else if (req.now().seconds() < 0 || req.now().seconds() > 9'000'000'000 ||
             req.now().nanos() < 0 || req.now().nanos() > 999'999'999) {
    // Nanoseconds since 1970 must fit in 64 bits (until 2262).
    v.Add("now", "must be a valid timestamp between 1970 and 2255");
  }
  return v.ToStatus();
}

}  // namespace

grpc::ServerUnaryReactor* TestClockServiceImpl::AdvanceTime(
    grpc::CallbackServerContext* context, const adminpb::AdvanceTimeRequest* request,
    adminpb::AdvanceTimeResponse* response) {
  // No pipeline validation step: it would run before the caller is known, and the moves are
  // refused to non-operators before their input is looked at (MayMove).
  return pipeline_.Unary<adminpb::AdvanceTimeRequest, adminpb::AdvanceTimeResponse>(
      context, "AdvanceTime", request, response, nullptr,
      [this](const CallContext& call, const adminpb::AdvanceTimeRequest& req,
             adminpb::AdvanceTimeResponse* resp, Pipeline::Done done) {
        if (absl::Status s = MayMove(call); !s.ok()) return done(s);
        if (absl::Status s = ValidateAdvance(req); !s.ok()) return done(s);
        clock_->Advance(absl::Nanoseconds(TimeUtil::DurationToNanoseconds(req.by())),
                        [this, resp, done](absl::StatusOr<absl::Duration> offset) {
                          if (!offset.ok()) return done(offset.status());
                          *resp->mutable_now() = ToProto(clock_->Now());
                          *resp->mutable_offset() = ToProto(*offset);
                          done(absl::OkStatus());
                        });
      });
}

grpc::ServerUnaryReactor* TestClockServiceImpl::SetTime(grpc::CallbackServerContext* context,
                                                        const adminpb::SetTimeRequest* request,
                                                        adminpb::SetTimeResponse* response) {
  return pipeline_.Unary<adminpb::SetTimeRequest, adminpb::SetTimeResponse>(
      context, "SetTime", request, response, nullptr,
      [this](const CallContext& call, const adminpb::SetTimeRequest& req,
             adminpb::SetTimeResponse* resp, Pipeline::Done done) {
        if (absl::Status s = MayMove(call); !s.ok()) return done(s);
        if (absl::Status s = ValidateSet(req); !s.ok()) return done(s);
        const absl::Time now = absl::FromUnixNanos(TimeUtil::TimestampToNanoseconds(req.now()));
        clock_->SetNow(now, [this, resp, done](absl::StatusOr<absl::Duration> offset) {
          if (!offset.ok()) return done(offset.status());
          *resp->mutable_now() = ToProto(clock_->Now());
          *resp->mutable_offset() = ToProto(*offset);
          done(absl::OkStatus());
        });
      });
}

}  // namespace rogatory::common
