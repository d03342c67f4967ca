package switchboard_test

// The client API against a live server: commands, typed errors, events,
// subscriptions and their bounds.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/switchboard-rt/switchboard/clients/go/gen/chat/v1"
	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

func TestConnectReportsStatesAndIdentity(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	s := watchStates(t, alice)
	if alice.State() != switchboard.StateConnected || alice.User() != "alice" || alice.ClientID() == "" {
		t.Errorf("state %s, user %q, client %q", alice.State(), alice.User(), alice.ClientID())
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	got := s.all()
	want := []switchboard.State{switchboard.StateConnecting, switchboard.StateConnected, switchboard.StateClosed}
	if !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	final := s.changes[len(s.changes)-1]
	if final.Code != 1000 || final.Err != nil {
		t.Errorf("final change %+v", final)
	}
	select {
	case <-alice.Done():
	default:
		t.Error("Done not closed")
	}
	if alice.Err() != nil {
		t.Errorf("Err after Close = %v", alice.Err())
	}
}

func TestUnreachableServerFailsFast(t *testing.T) {
	t.Parallel()
	started := time.Now()
	// Port 9 on loopback: nothing listens there.
	_, err := switchboard.Dial(ctx(t), "ws://127.0.0.1:9/ws", switchboard.WithName("alice"),
		switchboard.WithCommandTimeout(2*time.Second))
	var closed *switchboard.ClosedError
	if !errors.As(err, &closed) || closed.Code != 0 || !errors.Is(err, switchboard.ErrClosed) {
		t.Fatalf("Dial: %v", err)
	}
	if time.Since(started) > 2*time.Second {
		t.Errorf("took %s", time.Since(started))
	}
}

func TestDialHonoursItsContext(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := switchboard.Dial(c, srv.URL, switchboard.WithName("alice"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context: %v", err)
	}
}

func TestPublishAckHistoryPagingAndPresence(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	bob := dial(t, srv, "bob")
	sub := join(t, alice, "room")
	for i := uint64(1); i <= 5; i++ {
		ack, err := alice.Publish(ctx(t), "room", fmt.Sprintf("m%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if ack.GetOffset() != i || ack.GetDuplicate() || ack.GetEpoch() == "" || ack.GetId() == 0 || ack.GetTimestampMs() == 0 {
			t.Errorf("ack %v", ack)
		}
	}
	if got := offsets(t, sub, 5); !equalOffsets(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("offsets %v", got)
	}

	newest, err := bob.History(ctx(t), "room", switchboard.HistoryQuery{Limit: 2}) // no join needed
	if err != nil {
		t.Fatal(err)
	}
	if got := pageOffsets(newest); !equalOffsets(got, []uint64{4, 5}) || !newest.HasMore || newest.Position.GetOffset() != 5 {
		t.Errorf("newest page %v, more %v, position %v", got, newest.HasMore, newest.Position)
	}
	older, err := bob.History(ctx(t), "room", switchboard.HistoryQuery{Limit: 2, Before: 4})
	if err != nil {
		t.Fatal(err)
	}
	if older.Messages[0].Text() != "m2" || older.Messages[1].Text() != "m3" {
		t.Errorf("older page %v", pageOffsets(older))
	}
	after, err := bob.History(ctx(t), "room", switchboard.HistoryQuery{Limit: 10, After: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := pageOffsets(after); !equalOffsets(got, []uint64{4, 5}) || after.HasMore {
		t.Errorf("after page %v, more %v", got, after.HasMore)
	}

	members, err := bob.Presence(ctx(t), "room")
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].GetUser() != "alice" || members[0].GetClient() != alice.ClientID() {
		t.Errorf("members %v", members)
	}
	pong, err := bob.Ping(ctx(t))
	if err != nil || pong.GetTimestampMs() == 0 {
		t.Errorf("ping: %v, %v", pong, err)
	}
}

func pageOffsets(page *switchboard.HistoryPage) []uint64 {
	var out []uint64
	for _, m := range page.Messages {
		out = append(out, m.Offset)
	}
	return out
}

func TestServerErrorsAreTyped(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	_, err := alice.Publish(ctx(t), "room", "hi")
	var se *switchboard.ServerError
	if !errors.As(err, &se) || se.Code != switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED || se.Temporary ||
		se.Command != "publish" || !strings.Contains(err.Error(), "ERROR_CODE_NOT_JOINED") {
		t.Fatalf("publish before join: %v", err)
	}

	first := join(t, alice, "room")
	if _, err := alice.Join(ctx(t), "room", nil); switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_ALREADY_JOINED {
		t.Fatalf("second join: %v", err)
	}
	publish(t, alice, "room", "still subscribed") // the first subscription is intact
	if m := next(t, first); m.Text() != "still subscribed" {
		t.Errorf("text %q", m.Text())
	}
	if _, err := alice.History(ctx(t), "", switchboard.HistoryQuery{}); switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_INVALID_ROOM {
		t.Errorf("history of no room: %v", err)
	}
	if _, err := alice.Publish(ctx(t), "room", 42); err == nil || switchboard.CodeOf(err) != 0 {
		t.Errorf("publishing an int: %v", err)
	}
}

func TestLeaveEndsTheSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	bob := dial(t, srv, "bob")
	join(t, bob, "room")
	sub := join(t, alice, "room")
	publish(t, bob, "room", "one")
	time.Sleep(100 * time.Millisecond)
	if err := sub.Leave(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if sub.Active() {
		t.Error("still active")
	}
	publish(t, bob, "room", "two")
	if got := drain(t, sub); !slices.Equal(got, []string{"one"}) {
		t.Errorf("after leave: %v", got)
	}
	if sub.Err() != nil {
		t.Errorf("Err after leave: %v", sub.Err())
	}
	if err := sub.Leave(ctx(t)); err != nil {
		t.Errorf("leaving twice: %v", err)
	}
	members, _ := bob.Presence(ctx(t), "room")
	if len(members) != 1 || members[0].GetUser() != "bob" {
		t.Errorf("members %v", members)
	}
	if err := alice.Leave(ctx(t), "room"); switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED {
		t.Errorf("leave when not joined: %v", err)
	}
	// Joining again works, with a fresh subscription.
	again := join(t, alice, "room")
	publish(t, bob, "room", "three")
	if m := next(t, again); m.Text() != "three" {
		t.Errorf("text %q", m.Text())
	}
}

func TestPresenceEvents(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	sub := join(t, alice, "lobby", switchboard.WithPresenceEvents())
	bob := dial(t, srv, "bob")
	join(t, bob, "lobby")
	joined := recv(t, sub.PresenceEvents())
	if joined.Kind != switchboard.MemberJoined || joined.Room != "lobby" || joined.Member.GetUser() != "bob" {
		t.Errorf("joined %+v", joined)
	}
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	left := recv(t, sub.PresenceEvents())
	if left.Kind != switchboard.MemberLeft || left.Member.GetClient() != joined.Member.GetClient() {
		t.Errorf("left %+v", left)
	}
}

func TestJoinSinceReplaysWhatWasMissed(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	sub := join(t, alice, "room")
	publish(t, alice, "room", "m1")
	next(t, sub)
	saved := sub.Position()
	if err := sub.Leave(ctx(t)); err != nil {
		t.Fatal(err)
	}
	carol := dial(t, srv, "carol")
	join(t, carol, "room")
	publish(t, carol, "room", "m2")
	publish(t, carol, "room", "m3")

	resumed, err := alice.Join(ctx(t), "room", saved)
	if err != nil {
		t.Fatal(err)
	}
	if !resumed.Recovered() {
		t.Error("not recovered")
	}
	publish(t, carol, "room", "m4")
	var texts []string
	for range 3 {
		texts = append(texts, next(t, resumed).Text())
	}
	if !slices.Equal(texts, []string{"m2", "m3", "m4"}) {
		t.Errorf("texts %v", texts)
	}
	if err := resumed.Leave(ctx(t)); err != nil {
		t.Fatal(err)
	}
	stale, err := alice.Join(ctx(t), "room", &switchboardv1.StreamPosition{Offset: 1, Epoch: "not-this-one"})
	if err != nil {
		t.Fatal(err)
	}
	if stale.Recovered() || stale.Position().GetOffset() != 4 {
		t.Errorf("stale join: recovered %v, position %v", stale.Recovered(), stale.Position())
	}
}

func TestSlowReaderGetsAnOverflowGapAndCanFillIt(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", switchboard.WithBufferSize(3))
	gaps := make(chan switchboard.Gap, 10)
	sub := join(t, alice, "room", switchboard.OnGap(func(g switchboard.Gap) { gaps <- g }))
	for i := 1; i <= 8; i++ { // nobody reads meanwhile; acks still flow
		publish(t, alice, "room", fmt.Sprintf("m%d", i))
	}
	if got := offsets(t, sub, 3); !equalOffsets(got, []uint64{1, 2, 3}) {
		t.Fatalf("offsets %v", got)
	}
	publish(t, alice, "room", "m9")
	ninth := next(t, sub)
	if ninth.Offset != 9 {
		t.Fatalf("after the gap: offset %d", ninth.Offset)
	}
	g := recv(t, gaps)
	if g.Reason != switchboard.GapOverflow || g.LastOffset != 3 || len(gaps) != 0 {
		t.Fatalf("gap %+v (%d more)", g, len(gaps))
	}
	missed, err := alice.History(ctx(t), "room", switchboard.HistoryQuery{After: g.LastOffset, Limit: uint32(ninth.Offset - 4)})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range missed.Messages {
		texts = append(texts, m.Text())
	}
	if !slices.Equal(texts, []string{"m4", "m5", "m6", "m7", "m8"}) {
		t.Errorf("missed %v", texts)
	}
}

func TestDirectMessagesAndUnknownPushes(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	bob := dial(t, srv, "bob")
	bobPhone := dial(t, srv, "bob")
	reply, err := alice.Direct(ctx(t), "bob", "psst")
	if err != nil || reply.GetId() == 0 {
		t.Fatalf("direct: %v, %v", reply, err)
	}
	for _, c := range []*switchboard.Client{bob, bobPhone} {
		dm := recv(t, c.DirectMessages())
		if dm.Sender != "alice" || dm.Text() != "psst" || dm.ID != reply.GetId() {
			t.Errorf("direct message %+v", dm)
		}
	}
	if _, err := alice.Direct(ctx(t), "nobody-online", "void"); err != nil { // succeeds, delivers nothing
		t.Errorf("direct to nobody: %v", err)
	}

	// A push kind from a newer protocol (an unknown field number) is ignored.
	raw := protowire.AppendTag(nil, 111, protowire.BytesType)
	raw = protowire.AppendBytes(raw, []byte("hi"))
	unknown := &switchboardv1.ServerFrame{}
	if err := proto.Unmarshal(raw, unknown); err != nil {
		t.Fatal(err)
	}
	switchboard.DispatchForTesting(bob, unknown)
	if bob.State() != switchboard.StateConnected {
		t.Errorf("state %s", bob.State())
	}
	if _, err := bob.Presence(ctx(t), "room"); err != nil {
		t.Error(err)
	}
}

func TestClosedClientEndsItsChannels(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	sub := join(t, alice, "room")
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	if !closed(t, alice.DirectMessages()) || !closed(t, alice.Notifications()) ||
		!closed(t, sub.Messages()) || !closed(t, sub.PresenceEvents()) {
		t.Error("a channel stayed open")
	}
	if sub.Err() != nil {
		t.Errorf("sub.Err after Close = %v", sub.Err())
	}
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	s := watchStates(t, alice)
	join(t, alice, "room")
	publish(t, alice, "room", "last words")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = alice.Close() // concurrently with the Close below
	}()
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	closed(t, done)
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	states := s.all()
	if states[len(states)-1] != switchboard.StateClosed || slices.Contains(states, switchboard.StateReconnecting) {
		t.Errorf("states %v", states)
	}
	_, err := alice.Publish(ctx(t), "room", "after close")
	var closedErr *switchboard.ClosedError
	if !errors.As(err, &closedErr) || closedErr.Code != 1000 {
		t.Errorf("publish after close: %v", err)
	}
	if _, err := alice.Join(ctx(t), "other", nil); !errors.Is(err, switchboard.ErrClosed) {
		t.Errorf("join after close: %v", err)
	}
}

func TestCancelledContextEndsACommand(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer srv.Resume()
	c, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := alice.Presence(c, "room")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("presence with a cancelled context: %v", err)
	}
}

// TestNoGoroutineOutlivesClose runs a busy client (rooms, presence,
// reconnects, commands in flight) and checks that Close leaves nothing
// behind. Not parallel: it compares against the goroutines running before.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	srv := startServer(t)
	before := goleak.IgnoreCurrent()
	alice := dial(t, srv, "alice", switchboard.WithBackoff(fast))
	bob := dial(t, srv, "bob")
	subs := []*switchboard.Subscription{
		join(t, alice, "a", switchboard.WithPresenceEvents()),
		join(t, alice, "b", switchboard.OnGap(func(switchboard.Gap) {})),
	}
	join(t, bob, "a")
	for i := range 20 {
		publish(t, bob, "a", fmt.Sprintf("m%d", i)) // nobody reads alice's subscriptions
	}
	s := watchStates(t, alice)
	switchboard.DropConnectionForTesting(alice)
	s.waitFor(switchboard.StateConnected)
	_, _ = bob.Direct(ctx(t), "alice", "unread")
	_ = alice.Close()
	_ = bob.Close()
	for _, sub := range subs {
		if !closed(t, sub.Messages()) {
			t.Error("a subscription stayed open")
		}
	}
	goleak.VerifyNone(t, before)
}

func TestNotificationsArriveDecoded(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", chatTypes)
	typing := &chatv1.TypingEvent{User: "ops", Typing: true}
	data, _ := proto.Marshal(typing)
	// The server's HTTP API sends notifications; here the push is handed to
	// the client's dispatcher as if it had arrived.
	switchboard.DispatchForTesting(alice, &switchboardv1.ServerFrame{Kind: &switchboardv1.ServerFrame_Notification{
		Notification: &switchboardv1.Notification{Id: 7, Room: "ops", TimestampMs: 1, Payload: &switchboardv1.Payload{Data: data, TypeName: "chat.v1.TypingEvent"}},
	}})
	n := recv(t, alice.Notifications())
	if n.ID != 7 || n.Room != "ops" || !proto.Equal(n.Value, typing) {
		t.Errorf("notification %+v", n)
	}
}

func TestDisconnectPushDecidesWhetherToReconnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	disconnect := func(c *switchboard.Client, code uint32, reconnect bool) {
		switchboard.DispatchForTesting(c, &switchboardv1.ServerFrame{Kind: &switchboardv1.ServerFrame_Disconnect{
			Disconnect: &switchboardv1.Disconnect{Code: code, Reason: "told so", Reconnect: reconnect},
		}})
		switchboard.DropConnectionForTesting(c)
	}

	// 4500 with reconnect = false: terminal, although the socket only dropped.
	kicked := dial(t, srv, "kicked", switchboard.WithBackoff(fast))
	s := watchStates(t, kicked)
	disconnect(kicked, 4500, false)
	final := s.waitFor(switchboard.StateClosed)
	var closedErr *switchboard.ClosedError
	if final.Code != 4500 || final.Reason != "told so" || !errors.As(kicked.Err(), &closedErr) || closedErr.Code != 4500 {
		t.Errorf("final %+v, Err %v", final, kicked.Err())
	}

	// 1000 with reconnect = true: the flag wins over the code.
	moved := dial(t, srv, "moved", switchboard.WithBackoff(fast))
	s = watchStates(t, moved)
	disconnect(moved, 1000, true)
	if change := s.waitFor(switchboard.StateReconnecting); change.Code != 1000 {
		t.Errorf("reconnecting %+v", change)
	}
	s.waitFor(switchboard.StateConnected)
}
