package switchboard_test

// Unit tests: backoff, close-code policy, payload encoding, the type
// registry, and the subscription's ordering rules (dedupe by offset, gaps),
// driven directly.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	chatv1 "github.com/switchboard-rt/switchboard/clients/go/gen/chat/v1"
	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

func TestBackoffCeilingDoublesFromHalfASecondToTwenty(t *testing.T) {
	b := switchboard.DefaultBackoff
	want := []time.Duration{500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000}
	for n, w := range want {
		if got := b.Ceiling(n); got != w*time.Millisecond {
			t.Errorf("Ceiling(%d) = %s, want %s", n, got, w*time.Millisecond)
		}
	}
}

func TestBackoffDelayIsFullJitterBelowTheCeiling(t *testing.T) {
	b := switchboard.DefaultBackoff
	if d := b.Delay(3, func() float64 { return 0 }); d != 0 {
		t.Errorf("Delay with rand 0 = %s, want 0", d)
	}
	if d := b.Delay(3, func() float64 { return 0.5 }); d != 2*time.Second {
		t.Errorf("Delay(3) with rand 0.5 = %s, want 2s", d)
	}
	if d := b.Delay(10, func() float64 { return 0.999 }); d != 19980*time.Millisecond {
		t.Errorf("Delay(10) with rand 0.999 = %s, want 19.98s", d)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for attempt := range 30 {
		ceiling := b.Ceiling(attempt)
		lowest, highest := ceiling, time.Duration(0)
		for range 200 {
			d := b.Delay(attempt, rng.Float64)
			if d < 0 || d >= ceiling {
				t.Fatalf("Delay(%d) = %s, outside [0, %s)", attempt, d, ceiling)
			}
			lowest, highest = min(lowest, d), max(highest, d)
		}
		// Spread over the whole range, not bunched at the top (no fixed part).
		if lowest >= ceiling/10 || highest <= ceiling*9/10 {
			t.Errorf("Delay(%d) spans [%s, %s] of [0, %s)", attempt, lowest, highest, ceiling)
		}
	}
}

func TestBackoffSurvivesHugeAttemptCounts(t *testing.T) {
	if got := switchboard.DefaultBackoff.Ceiling(10_000); got != 20*time.Second {
		t.Errorf("Ceiling(10000) = %s", got)
	}
	b := switchboard.Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	if got := b.Ceiling(1 << 40); got != time.Second {
		t.Errorf("Ceiling(2^40) = %s", got)
	}
	if got := b.Ceiling(-1); got != 100*time.Millisecond {
		t.Errorf("Ceiling(-1) = %s", got)
	}
}

func TestBackoffRejectsBadBounds(t *testing.T) {
	for _, b := range []switchboard.Backoff{{Initial: 0, Max: 1}, {Initial: 1, Max: 0}, {Initial: -1, Max: 1}, {Initial: 2, Max: 1}} {
		if err := b.Validate(); err == nil {
			t.Errorf("%+v validated", b)
		}
		_, err := switchboard.Dial(context.Background(), "ws://127.0.0.1:9/ws", switchboard.WithBackoff(b))
		if err == nil || !strings.Contains(err.Error(), "backoff") {
			t.Errorf("Dial with %+v: %v", b, err)
		}
	}
}

func TestCloseCodePolicy(t *testing.T) {
	reconnect := []int{0, 1006, 1001, 1002, 1005, 1011, 1012, 1013, 1014, 4000, 4001, 4002, 4003, 4499}
	terminal := []int{1000, 3000, 1003, 1007, 1008, 1009, 4500, 4999, 5000}
	for _, code := range reconnect {
		if !switchboard.ShouldReconnect(code) {
			t.Errorf("ShouldReconnect(%d) = false", code)
		}
	}
	for _, code := range terminal {
		if switchboard.ShouldReconnect(code) {
			t.Errorf("ShouldReconnect(%d) = true", code)
		}
	}
}

func TestContentBecomesTheRightPayload(t *testing.T) {
	check := func(content switchboard.Content, want *switchboardv1.Payload) {
		t.Helper()
		got, err := switchboard.ToPayload(content)
		if err != nil {
			t.Fatalf("ToPayload(%T): %v", content, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("ToPayload(%T) = %v, want %v", content, got, want)
		}
	}
	check("hi", &switchboardv1.Payload{Text: "hi"})
	check([]byte{0, 1}, &switchboardv1.Payload{Data: []byte{0, 1}})
	raw := &switchboardv1.Payload{Text: "t", Data: []byte("d"), TypeName: "x.Y"}
	if got, _ := switchboard.ToPayload(raw); got != raw {
		t.Error("a Payload is not sent as it is")
	}
	typing := &chatv1.TypingEvent{User: "alice", Typing: true}
	data, _ := proto.Marshal(typing)
	check(typing, &switchboardv1.Payload{Data: data, TypeName: "chat.v1.TypingEvent"})
	for _, bad := range []switchboard.Content{42, nil, (*chatv1.ChatMessage)(nil), (*switchboardv1.Payload)(nil)} {
		if _, err := switchboard.ToPayload(bad); err == nil {
			t.Errorf("ToPayload(%#v) succeeded", bad)
		}
	}
}

func TestRegistryDecodesRegisteredTypesOnly(t *testing.T) {
	registry, err := switchboard.NewTypeRegistry((*chatv1.ChatMessage)(nil))
	if err != nil {
		t.Fatal(err)
	}
	chat := &chatv1.ChatMessage{Text: "hi", Tags: []string{"a"}}
	data, _ := proto.Marshal(chat)
	if got := registry.Decode(&switchboardv1.Payload{Data: data, TypeName: "chat.v1.ChatMessage"}); !proto.Equal(got, chat) {
		t.Errorf("Decode = %v", got)
	}
	for _, p := range []*switchboardv1.Payload{
		{Data: []byte{1}, TypeName: "acme.v1.Other"},
		{Text: "plain"},
		// Bytes that are not a ChatMessage: kept as bytes, never an error.
		{Data: []byte{0xff, 0xff}, TypeName: "chat.v1.ChatMessage"},
	} {
		if got := registry.Decode(p); got != nil {
			t.Errorf("Decode(%v) = %v, want nil", p, got)
		}
	}
	// The same full name from another descriptor is another type.
	twin := dynamicpb.NewMessage((&chatv1.ChatMessage{}).ProtoReflect().Descriptor())
	if err := registry.Register(twin); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("registering a twin: %v", err)
	}
	if err := registry.Register(&chatv1.ChatMessage{}); err != nil {
		t.Errorf("registering the same type again: %v", err)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	se := &switchboard.ServerError{Code: switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED, Message: "join first", Command: "publish"}
	wrapped := fmt.Errorf("outer: %w", se)
	if switchboard.CodeOf(wrapped) != switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED {
		t.Error("CodeOf does not see through wrapping")
	}
	if got := se.Error(); got != "switchboard: publish failed: ERROR_CODE_NOT_JOINED (terminal): join first" {
		t.Errorf("ServerError text %q", got)
	}
	if switchboard.CodeOf(errors.New("other")) != switchboardv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Error("CodeOf of a non-server error")
	}
	te := &switchboard.TimeoutError{Command: "publish", After: 500 * time.Millisecond}
	if !errors.Is(te, context.DeadlineExceeded) || te.Error() != "switchboard: publish timed out after 500ms" {
		t.Errorf("TimeoutError %q", te)
	}
	var timeout interface{ Timeout() bool } = te
	if !timeout.Timeout() {
		t.Error("TimeoutError is not a timeout")
	}
	ce := &switchboard.ClosedError{Code: 1008, Reason: "token expired", Err: errEOF}
	if !errors.Is(ce, switchboard.ErrClosed) || !errors.Is(ce, errEOF) {
		t.Error("ClosedError does not match ErrClosed and its cause")
	}
	if ce.Error() != "switchboard: connection closed (1008): token expired" {
		t.Errorf("ClosedError text %q", ce)
	}
}

var errEOF = errors.New("eof")

func TestMessagesExposeTheirPayload(t *testing.T) {
	chat := &chatv1.ChatMessage{Text: "x"}
	data, _ := proto.Marshal(chat)
	registry, _ := switchboard.NewTypeRegistry((*chatv1.ChatMessage)(nil))
	sub := switchboard.NewTestSubscription(10, registry, nil)
	defer sub.Stop()
	sub.Joined(joinReply(0, "e", false), nil)
	sub.Deliver(&switchboardv1.RoomMessage{Room: "room", Offset: 1, TimestampMs: 1_760_000_000_123,
		Payload: &switchboardv1.Payload{Data: data, TypeName: "chat.v1.ChatMessage"}})
	m := recv(t, sub.Messages())
	if got, ok := switchboard.ValueAs[*chatv1.ChatMessage](m); !ok || !proto.Equal(got, chat) {
		t.Errorf("ValueAs ChatMessage = %v, %v", got, ok)
	}
	if _, ok := switchboard.ValueAs[*chatv1.TypingEvent](m); ok {
		t.Error("ValueAs TypingEvent succeeded")
	}
	if m.TypeName() != "chat.v1.ChatMessage" || m.Text() != "" || !bytes.Equal(m.Data(), data) {
		t.Errorf("accessors: %q %q %x", m.TypeName(), m.Text(), m.Data())
	}
	if m.Time().UnixMilli() != 1_760_000_000_123 {
		t.Errorf("Time = %s", m.Time())
	}
}

// Subscription ordering, driven as the client's reader drives it.

func roomMessage(offset uint64) *switchboardv1.RoomMessage {
	return &switchboardv1.RoomMessage{Room: "room", Offset: offset, Sender: "s",
		Payload: &switchboardv1.Payload{Text: fmt.Sprintf("m%d", offset)}}
}

func joinReply(offset uint64, epoch string, recovered bool, replay ...uint64) *switchboardv1.JoinReply {
	reply := &switchboardv1.JoinReply{
		Position:  &switchboardv1.StreamPosition{Offset: offset, Epoch: epoch},
		Recovered: recovered,
	}
	for _, o := range replay {
		reply.Messages = append(reply.Messages, roomMessage(o))
	}
	return reply
}

// received ends the subscription and returns the offsets it hands over.
func received(t *testing.T, sub *switchboard.TestSubscription) []uint64 {
	t.Helper()
	sub.End(nil)
	var got []uint64
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				return got
			}
			got = append(got, m.Offset)
		case <-timeout:
			t.Fatal("the subscription did not end")
		}
	}
}

func equalOffsets(a, b []uint64) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestReplayAndLiveOverlapIsDeliveredOnceInOrder(t *testing.T) {
	sub := switchboard.NewTestSubscription(100, nil, nil)
	defer sub.Stop()
	sub.Joined(joinReply(2, "e1", false), nil)
	for _, o := range []uint64{1, 2, 3, 4} { // 1 and 2 predate the join
		sub.Deliver(roomMessage(o))
	}
	if p := sub.Position(); p.GetOffset() != 4 || p.GetEpoch() != "e1" {
		t.Errorf("position %v", p)
	}
	// Reconnected: since = 4 replays 5..7; a live 6 raced ahead of it.
	sub.Deliver(roomMessage(4))
	sub.Rejoined(joinReply(7, "e1", true, 3, 4, 5, 6, 7))
	sub.Deliver(roomMessage(6))
	sub.Deliver(roomMessage(8))
	if got := received(t, sub); !equalOffsets(got, []uint64{3, 4, 5, 6, 7, 8}) {
		t.Errorf("offsets %v", got)
	}
}

func TestFailedRecoveryReportsAGapAndRestartsAtTheNewPosition(t *testing.T) {
	var mu sync.Mutex
	var gaps []switchboard.Gap
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(gaps)
	}
	sub := switchboard.NewTestSubscription(100, nil, func(g switchboard.Gap) {
		mu.Lock()
		defer mu.Unlock()
		gaps = append(gaps, g)
	})
	defer sub.Stop()
	sub.Joined(joinReply(0, "e1", false), nil)
	sub.Deliver(roomMessage(1))
	sub.Deliver(roomMessage(2))
	sub.Rejoined(joinReply(0, "e2", false))
	sub.Deliver(roomMessage(1)) // offsets restart in the new epoch
	sub.End(nil)
	// The gap comes between the old epoch's messages and the new one's: not
	// before message 2 is received (the goroutine is still offering it), and
	// before the new epoch's message 1 is offered.
	var got []uint64
	for i := range 3 {
		if i < 2 && count() != 0 {
			t.Fatalf("gap reported before message %d", i+1)
		}
		got = append(got, recv(t, sub.Messages()).Offset)
	}
	if !equalOffsets(got, []uint64{1, 2, 1}) {
		t.Errorf("offsets %v", got)
	}
	if count() != 1 {
		t.Fatalf("gaps %v", gaps)
	}
	g := gaps[0]
	if g.Reason != switchboard.GapRecoveryFailed || g.LastOffset != 2 || g.Epoch != "e1" ||
		g.Position.GetOffset() != 0 || g.Position.GetEpoch() != "e2" || g.Room != "room" {
		t.Errorf("gap %+v", g)
	}
	if p := sub.Position(); p.GetOffset() != 1 || p.GetEpoch() != "e2" {
		t.Errorf("position %v", p)
	}
	if !closed(t, sub.Messages()) {
		t.Error("not closed after the end")
	}
}

func TestJoinSinceReplaysAndSaysWhetherItRecovered(t *testing.T) {
	since := &switchboardv1.StreamPosition{Offset: 2, Epoch: "e1"}
	sub := switchboard.NewTestSubscription(100, nil, nil)
	defer sub.Stop()
	sub.Joined(joinReply(4, "e1", true, 3, 4), since)
	if !sub.Recovered() {
		t.Error("not recovered")
	}
	if got := received(t, sub); !equalOffsets(got, []uint64{3, 4}) {
		t.Errorf("offsets %v", got)
	}
	lost := switchboard.NewTestSubscription(100, nil, nil)
	defer lost.Stop()
	lost.Joined(joinReply(4, "e2", false), since)
	if lost.Recovered() {
		t.Error("recovered from another epoch")
	}
	if p := lost.Position(); p.GetOffset() != 4 || p.GetEpoch() != "e2" {
		t.Errorf("position %v", p)
	}
}

func TestOverflowDropsTheNewestAndMarksOneGap(t *testing.T) {
	gaps := make(chan switchboard.Gap, 10)
	sub := switchboard.NewTestSubscription(3, nil, func(g switchboard.Gap) { gaps <- g })
	defer sub.Stop()
	sub.Joined(joinReply(0, "e", false), nil)
	for o := uint64(1); o <= 7; o++ { // 4..7 find the buffer full
		sub.Deliver(roomMessage(o))
	}
	if n := sub.Buffered(); n != 4 { // three messages and one gap
		t.Fatalf("buffered %d items", n)
	}
	if got := []uint64{recv(t, sub.Messages()).Offset, recv(t, sub.Messages()).Offset}; !equalOffsets(got, []uint64{1, 2}) {
		t.Fatalf("offsets %v", got)
	}
	waitBuffered(t, sub, 2)     // the delivery goroutine has noticed the receives
	sub.Deliver(roomMessage(8)) // room again: queued after the gap
	if o := recv(t, sub.Messages()).Offset; o != 3 {
		t.Fatalf("offset %d", o)
	}
	if o := recv(t, sub.Messages()).Offset; o != 8 {
		t.Fatalf("offset %d", o)
	}
	select {
	case g := <-gaps:
		if g.Reason != switchboard.GapOverflow || g.LastOffset != 3 || g.Epoch != "e" || g.Position != nil {
			t.Errorf("gap %+v", g)
		}
	default:
		t.Fatal("no gap before message 8")
	}
	if len(gaps) != 0 {
		t.Errorf("%d more gaps", len(gaps))
	}
	if p := sub.Position(); p.GetOffset() != 8 {
		t.Errorf("position %v", p)
	}
}

func TestTheReaderNeverBlocksOnASlowApplication(t *testing.T) {
	sub := switchboard.NewTestSubscription(2, nil, nil)
	defer sub.Stop()
	sub.Joined(joinReply(0, "e", false), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for o := uint64(1); o <= 10_000; o++ {
			sub.Deliver(roomMessage(o))
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("delivering blocked on an application that does not read")
	}
	if n := sub.Buffered(); n != 3 {
		t.Errorf("buffered %d items, want 2 messages and a gap", n)
	}
}

func TestEndedSubscriptionReportsItsError(t *testing.T) {
	sub := switchboard.NewTestSubscription(10, nil, nil)
	defer sub.Stop()
	sub.Joined(joinReply(0, "e", false), nil)
	sub.Deliver(roomMessage(1))
	sub.End(&switchboard.ClosedError{Code: 1008, Reason: "token expired"})
	if sub.Active() {
		t.Error("still active")
	}
	if m := recv(t, sub.Messages()); m.Offset != 1 {
		t.Errorf("offset %d", m.Offset)
	}
	if !closed(t, sub.Messages()) {
		t.Error("channel not closed")
	}
	if !errors.Is(sub.Err(), switchboard.ErrClosed) {
		t.Errorf("Err = %v", sub.Err())
	}
	sub.Deliver(roomMessage(2)) // after the end: ignored
}

func TestStopAbandonsUndeliveredMessages(t *testing.T) {
	sub := switchboard.NewTestSubscription(10, nil, nil)
	sub.Joined(joinReply(0, "e", false), nil)
	sub.Deliver(roomMessage(1))
	sub.Deliver(roomMessage(2))
	sub.Stop() // as Client.Close does: the goroutine ends without a reader
	if !closed(t, sub.Messages()) {
		t.Error("a message arrived after the stop")
	}
}

func TestStateNames(t *testing.T) {
	names := map[switchboard.State]string{
		switchboard.StateConnecting: "connecting", switchboard.StateConnected: "connected",
		switchboard.StateReconnecting: "reconnecting", switchboard.StateClosed: "closed",
	}
	for s, n := range names {
		if s.String() != n {
			t.Errorf("%d is %q", s, s)
		}
	}
	if switchboard.GapOverflow.String() != "overflow" || switchboard.GapRecoveryFailed.String() != "recovery_failed" {
		t.Error("gap reason names")
	}
	if switchboard.MemberJoined.String() != "joined" || switchboard.MemberLeft.String() != "left" {
		t.Error("presence kind names")
	}
}

// waitBuffered waits until sub holds n items.
func waitBuffered(t *testing.T, sub *switchboard.TestSubscription, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for sub.Buffered() != n {
		if time.Now().After(deadline) {
			t.Fatalf("buffered %d items, want %d", sub.Buffered(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
