// The one builder of domain events' envelopes: the request part every event about a request
// repeats, and the stamp (id, type, time) that names one event.
#include "rogatory/common/event_builder.h"

#include "gtest/gtest.h"
#include "rogatory/common/clock.h"

namespace rogatory::common {
namespace {

v1::RequestFacts Facts() {
  v1::RequestFacts f;
  f.set_requested_state("FR");
  f.set_source_language("de");
  return f;
}

TEST(EventBuilderTest, NewEventCarriesTheRequestTheSourceAndTheStamp) {
  SimulatedClock clock(absl::FromUnixMillis(1'790'000'000'123));
  const v1::RequestFacts facts = Facts();
  const EventBuilder builder("intake");
  const v1::Event e = builder.New({"rq-3-01hx", "trace-1", v1::INSTRUMENT_EIO, &facts},
                                  {.type = v1::EVENT_TYPE_REQUEST_SUBMITTED, .at = clock.Now()});
  EXPECT_EQ(e.request_id(), "rq-3-01hx");
  EXPECT_EQ(e.trace_id(), "trace-1");
  EXPECT_EQ(e.instrument(), v1::INSTRUMENT_EIO);
  EXPECT_EQ(e.source(), "intake");
  EXPECT_EQ(e.request().requested_state(), "FR");
  EXPECT_EQ(e.type(), v1::EVENT_TYPE_REQUEST_SUBMITTED);
  EXPECT_EQ(e.occur_time().seconds(), 1'790'000'000);
  EXPECT_EQ(e.occur_time().nanos(), 123'000'000);
  // A new id is a ULID of the event's time (26 characters, time first): ids sort by time.
  ASSERT_EQ(e.event_id().size(), 26u);
  clock.Advance(absl::Milliseconds(1));
  const v1::Event later = builder.New(
      {.request_id = "rq-3-01hx"}, {.type = v1::EVENT_TYPE_REQUEST_SUBMITTED, .at = clock.Now()});
  EXPECT_NE(later.event_id(), e.event_id());
  EXPECT_LT(e.event_id().substr(0, 10), later.event_id().substr(0, 10));
  EXPECT_EQ(e.sequence(), 0);  // the store numbers events
}

TEST(EventBuilderTest, AGivenIdIsKeptAndTheTimeKeepsItsPrecision) {
  v1::Event e;
  EventBuilder::Stamp(
      {v1::EVENT_TYPE_DEADLINE_MISSED, absl::FromUnixNanos(1'790'000'000'123'456'789), "dl-1|m"},
      e);
  EXPECT_EQ(e.event_id(), "dl-1|m");
  EXPECT_EQ(e.type(), v1::EVENT_TYPE_DEADLINE_MISSED);
  EXPECT_EQ(e.occur_time().seconds(), 1'790'000'000);
  EXPECT_EQ(e.occur_time().nanos(), 123'456'789);
}

TEST(EventBuilderTest, ATimeBeforeTheEpochHasNonNegativeNanos) {
  v1::Event e;
  EventBuilder::Stamp({v1::EVENT_TYPE_DEADLINE_MISSED, absl::FromUnixMillis(-1500), "x"}, e);
  EXPECT_EQ(e.occur_time().seconds(), -2);
  EXPECT_EQ(e.occur_time().nanos(), 500'000'000);
}

TEST(EventBuilderTest, TheRequestPartAloneCarriesNoStampAndNoFactsWhenNoneAreGiven) {
  const v1::Event t =
      EventBuilder("routing").AboutRequest({.request_id = "rq-1-01hx", .trace_id = "trace-2"});
  EXPECT_EQ(t.request_id(), "rq-1-01hx");
  EXPECT_EQ(t.trace_id(), "trace-2");
  EXPECT_EQ(t.source(), "routing");
  EXPECT_TRUE(t.event_id().empty());
  EXPECT_FALSE(t.has_occur_time());
  EXPECT_FALSE(t.has_request());
}

// Issue 19: an emitter that declares its event types (RelayOptions::emits) and makes an event
// of another type is caught: counted, logged and, in debug builds, asserted.
TEST(EventBuilderTest, AnEventOfAnUndeclaredTypeIsCounted) {
  const EventBuilder builder("deadlines", {v1::EVENT_TYPE_DEADLINE_STARTED});
  EXPECT_TRUE(builder.Declares(v1::EVENT_TYPE_DEADLINE_STARTED));
  EXPECT_FALSE(builder.Declares(v1::EVENT_TYPE_REQUEST_SUBMITTED));
  EXPECT_TRUE(EventBuilder("intake").Declares(v1::EVENT_TYPE_REQUEST_SUBMITTED)) << "none: any";
  const int64_t before = EventBuilder::UndeclaredEmits();
  builder.New({.request_id = "rq-1"}, {.type = v1::EVENT_TYPE_DEADLINE_STARTED});
  EXPECT_EQ(EventBuilder::UndeclaredEmits(), before);
  EXPECT_DEBUG_DEATH(
      builder.New({.request_id = "rq-1"}, {.type = v1::EVENT_TYPE_REQUEST_SUBMITTED}),
      "not declared");
#ifdef NDEBUG
  EXPECT_EQ(EventBuilder::UndeclaredEmits(), before + 1);
#endif
}

}  // namespace
}  // namespace rogatory::common
