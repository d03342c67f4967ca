package switchboard_test

// Server-side subscriptions: a backend subscribes and unsubscribes a user's
// connections through the server's HTTP API (Subscribed / Unsubscribed
// pushes), against real server processes.

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

// apiClient calls the HTTP API; without keep-alive, no connection (and no
// goroutine) outlives a call.
var apiClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// api calls srv's HTTP API (open without a key in development mode) and
// returns the response body; any status but 200 fails the test.
func api(t *testing.T, srv *testserver.Server, method, path, body string) []byte {
	t.Helper()
	url := fmt.Sprintf("http://%s:%d%s", srv.Host, srv.Port, path)
	req, err := http.NewRequestWithContext(ctx(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	return data
}

// subscribeUser subscribes every connection of user to room.
func subscribeUser(t *testing.T, srv *testserver.Server, user, room, body string) {
	t.Helper()
	api(t, srv, http.MethodPut, "/api/v1/users/"+user+"/rooms/"+room, body)
}

// unsubscribeUser unsubscribes every connection of user from room.
func unsubscribeUser(t *testing.T, srv *testserver.Server, user, room string) {
	t.Helper()
	api(t, srv, http.MethodDelete, "/api/v1/users/"+user+"/rooms/"+room, "")
}

// apiPublish publishes text to room through the HTTP API and returns its
// offset.
func apiPublish(t *testing.T, srv *testserver.Server, room, text string) uint64 {
	t.Helper()
	body := fmt.Sprintf(`{"payload":{"text":%q}}`, text)
	data := api(t, srv, http.MethodPost, "/api/v1/rooms/"+room+"/messages", body)
	var reply switchboardv1.PublishReply
	if err := protojson.Unmarshal(data, &reply); err != nil {
		t.Fatalf("publish reply %s: %v", data, err)
	}
	return reply.GetOffset()
}

// nothingAnnounced checks that no server subscription is announced for d.
func nothingAnnounced(t *testing.T, c *switchboard.Client, d time.Duration) {
	t.Helper()
	select {
	case sub, ok := <-c.ServerSubscriptions():
		if ok {
			t.Fatalf("unexpected server subscription of %s", sub.Room())
		}
	case <-time.After(d):
	}
}

func TestServerSubscriptionDeliversTheRoomsMessages(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	bob := dial(t, srv, "bob")
	join(t, alice, "news")
	if offset := apiPublish(t, srv, "news", "before"); offset != 1 {
		t.Fatalf("first offset %d", offset)
	}

	subscribeUser(t, srv, "bob", "news", "")
	sub := recv(t, bob.ServerSubscriptions())
	if sub.Room() != "news" || !sub.Active() || sub.Err() != nil {
		t.Fatalf("server subscription of %q: active %v, err %v", sub.Room(), sub.Active(), sub.Err())
	}
	if p := sub.Position(); p.GetOffset() != 1 || p.GetEpoch() == "" {
		t.Errorf("starting position %v", p)
	}

	if offset := apiPublish(t, srv, "news", "hello"); offset != 2 {
		t.Fatalf("offset %d", offset)
	}
	m := next(t, sub)
	if m.Room != "news" || m.Offset != 2 || m.Text() != "hello" {
		t.Errorf("message %s #%d %q", m.Room, m.Offset, m.Text())
	}
	publish(t, alice, "news", "from alice")
	publish(t, bob, "news", "from bob") // a member through the backend
	var texts []string
	var got []uint64
	for range 2 {
		m := next(t, sub)
		texts = append(texts, m.Text())
		got = append(got, m.Offset)
	}
	if !equalOffsets(got, []uint64{3, 4}) || !slices.Equal(texts, []string{"from alice", "from bob"}) {
		t.Errorf("then %v %v", got, texts)
	}

	// Already a member: joining is refused, and subscribing again announces
	// nothing.
	if _, err := bob.Join(ctx(t), "news", nil); switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_ALREADY_JOINED {
		t.Errorf("join of a subscribed room: %v", err)
	}
	subscribeUser(t, srv, "bob", "news", "")
	nothingAnnounced(t, bob, 300*time.Millisecond)
	apiPublish(t, srv, "news", "still one subscription")
	if m := next(t, sub); m.Offset != 5 || m.Text() != "still one subscription" {
		t.Errorf("message #%d %q", m.Offset, m.Text())
	}
	noMessage(t, sub, 200*time.Millisecond)

	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	if !closed(t, bob.ServerSubscriptions()) || !closed(t, sub.Messages()) {
		t.Error("a channel stayed open after Close")
	}
}

func TestEveryConnectionOfTheUserGetsItsOwnServerSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	phone := dial(t, srv, "bob")
	laptop := dial(t, srv, "bob")
	carol := dial(t, srv, "carol")
	subscribeUser(t, srv, "bob", "alerts", "")
	subs := []*switchboard.Subscription{recv(t, phone.ServerSubscriptions()), recv(t, laptop.ServerSubscriptions())}
	apiPublish(t, srv, "alerts", "fire")
	for _, sub := range subs {
		if m := next(t, sub); m.Offset != 1 || m.Text() != "fire" {
			t.Errorf("message #%d %q", m.Offset, m.Text())
		}
	}
	nothingAnnounced(t, carol, 200*time.Millisecond) // another user
}

func TestServerUnsubscribeEndsTheSubscriptionAndJoinWorksAgain(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := dial(t, srv, "bob")
	subscribeUser(t, srv, "bob", "news", "{}")
	sub := recv(t, bob.ServerSubscriptions())
	apiPublish(t, srv, "news", "one")
	// Received by the client before the Unsubscribed push: bob's own publish
	// is acknowledged after the message reached every member.
	publish(t, bob, "news", "two")

	unsubscribeUser(t, srv, "bob", "news")
	if got := drain(t, sub); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("until unsubscribed: %v", got)
	}
	if sub.Active() || sub.Err() != nil {
		t.Errorf("after unsubscribe: active %v, err %v", sub.Active(), sub.Err())
	}
	apiPublish(t, srv, "news", "three") // to nobody
	if _, err := bob.Publish(ctx(t), "news", "not a member"); switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED {
		t.Errorf("publish after unsubscribe: %v", err)
	}

	again, err := bob.Join(ctx(t), "news", nil)
	if err != nil {
		t.Fatalf("join after unsubscribe: %v", err)
	}
	if p := again.Position(); p.GetOffset() != 3 {
		t.Errorf("joined at %v", p)
	}
	apiPublish(t, srv, "news", "four")
	if m := next(t, again); m.Offset != 4 || m.Text() != "four" {
		t.Errorf("message #%d %q", m.Offset, m.Text())
	}
	nothingAnnounced(t, bob, 100*time.Millisecond)

	// A backend can also unsubscribe a room the client joined itself.
	unsubscribeUser(t, srv, "bob", "news")
	if got := drain(t, again); len(got) != 0 {
		t.Errorf("after the second unsubscribe: %v", got)
	}
	if err := bob.Leave(ctx(t), "news"); switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED {
		t.Errorf("leave after unsubscribe: %v", err)
	}
}

func TestLeavingAServerSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := dial(t, srv, "bob")
	subscribeUser(t, srv, "bob", "news", "")
	sub := recv(t, bob.ServerSubscriptions())
	if err := sub.Leave(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, sub); len(got) != 0 || sub.Err() != nil {
		t.Errorf("after leave: %v, %v", got, sub.Err())
	}
	members, err := bob.Presence(ctx(t), "news")
	if err != nil || len(members) != 0 {
		t.Errorf("members after leave: %v, %v", members, err)
	}
	// The server's membership is gone too: a new subscription is announced.
	subscribeUser(t, srv, "bob", "news", "")
	if again := recv(t, bob.ServerSubscriptions()); again == sub || again.Room() != "news" {
		t.Errorf("resubscribed: %p %q (old %p)", again, again.Room(), sub)
	}
}

func TestServerSubscriptionIsRejoinedAfterAReconnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	var gaps gapRecorder
	bob := dial(t, srv, "bob", switchboard.WithBackoff(switchboard.Backoff{Initial: 300 * time.Millisecond, Max: 300 * time.Millisecond}),
		switchboard.WithServerSubscriptionOptions(switchboard.OnGap(gaps.record)))
	s := watchStates(t, bob)
	subscribeUser(t, srv, "bob", "feed", "")
	sub := recv(t, bob.ServerSubscriptions())
	apiPublish(t, srv, "feed", "m1")
	if m := next(t, sub); m.Offset != 1 || m.Text() != "m1" {
		t.Fatalf("message #%d %q", m.Offset, m.Text())
	}
	firstClient := bob.ClientID()

	// Drop the connection until the reconnect waits long enough to publish
	// while bob is away for sure (the delay is random, below 300 ms).
	for attempt := 0; ; attempt++ {
		switchboard.DropConnectionForTesting(bob)
		if lost := s.waitFor(switchboard.StateReconnecting); lost.Delay >= 150*time.Millisecond {
			break
		}
		s.waitFor(switchboard.StateConnected)
		if attempt == 20 {
			t.Fatal("no reconnect delay of 150 ms or more in 20 drops")
		}
	}
	apiPublish(t, srv, "feed", "m2") // while bob is away
	apiPublish(t, srv, "feed", "m3")
	s.waitFor(switchboard.StateConnected)
	if bob.ClientID() == firstClient {
		t.Fatal("no new connection")
	}
	apiPublish(t, srv, "feed", "m4") // live, on the rejoined membership

	var texts []string
	var got []uint64
	for range 3 {
		m := next(t, sub)
		texts = append(texts, m.Text())
		got = append(got, m.Offset)
	}
	if !equalOffsets(got, []uint64{2, 3, 4}) || !slices.Equal(texts, []string{"m2", "m3", "m4"}) {
		t.Errorf("after the reconnect: %v %v", got, texts)
	}
	noMessage(t, sub, 300*time.Millisecond)
	if !sub.Active() || sub.Position().GetOffset() != 4 {
		t.Errorf("active %v, position %v", sub.Active(), sub.Position())
	}
	// The new connection is a member (the server may not have noticed the
	// dropped ones leave yet).
	members, err := bob.Presence(ctx(t), "feed")
	isMember := func(m *switchboardv1.Member) bool { return m.GetClient() == bob.ClientID() }
	if err != nil || !slices.ContainsFunc(members, isMember) {
		t.Errorf("members %v, %v; client %s", members, err, bob.ClientID())
	}
	nothingAnnounced(t, bob, 100*time.Millisecond) // the same subscription, not a new one
	if len(gaps.list()) != 0 {
		t.Errorf("gaps %v", gaps.list())
	}
}

func TestRefusedRejoinEndsTheServerSubscriptionWithTheError(t *testing.T) {
	t.Parallel()
	// Nobody may join by themselves; a backend can still subscribe them.
	srv := testserver.Start(t, testserver.Options{Env: map[string]string{
		"SWITCHBOARD_PERMISSIONS__DEFAULT__JOIN": "nobody",
	}})
	bob := dial(t, srv, "bob", switchboard.WithBackoff(fast))
	s := watchStates(t, bob)
	if _, err := bob.Join(ctx(t), "vip", nil); switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Fatalf("join: %v", err)
	}
	subscribeUser(t, srv, "bob", "vip", "")
	sub := recv(t, bob.ServerSubscriptions())
	apiPublish(t, srv, "vip", "welcome")
	if m := next(t, sub); m.Text() != "welcome" {
		t.Fatalf("text %q", m.Text())
	}

	switchboard.DropConnectionForTesting(bob)
	s.waitFor(switchboard.StateReconnecting)
	s.waitFor(switchboard.StateConnected)
	if got := drain(t, sub); len(got) != 0 {
		t.Errorf("after the refused rejoin: %v", got)
	}
	if switchboard.CodeOf(sub.Err()) != switchboardv1.ErrorCode_ERROR_CODE_PERMISSION_DENIED || sub.Active() {
		t.Errorf("active %v, err %v", sub.Active(), sub.Err())
	}
	// Forgotten by the client: the backend's next subscription is a new one.
	subscribeUser(t, srv, "bob", "vip", "")
	again := recv(t, bob.ServerSubscriptions())
	apiPublish(t, srv, "vip", "back")
	if again == sub || next(t, again).Text() != "back" {
		t.Error("no working new subscription")
	}
}

func TestServerSubscriptionOptionsApplyToServerSubscriptions(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	var gaps gapRecorder
	bob := dial(t, srv, "bob", switchboard.WithBufferSize(2), switchboard.WithBackoff(fast),
		switchboard.WithServerSubscriptionOptions(switchboard.OnGap(gaps.record)))
	s := watchStates(t, bob)
	subscribeUser(t, srv, "bob", "lobby", `{"presenceEvents":true}`)
	sub := recv(t, bob.ServerSubscriptions())

	// Overflow: nobody reads while five messages arrive; two fit.
	for i := 1; i <= 5; i++ {
		publish(t, bob, "lobby", fmt.Sprintf("m%d", i))
	}
	if _, err := bob.Ping(ctx(t)); err != nil { // after every message on this connection
		t.Fatal(err)
	}
	if got := offsets(t, sub, 2); !equalOffsets(got, []uint64{1, 2}) {
		t.Fatalf("offsets %v", got)
	}
	publish(t, bob, "lobby", "m6")
	if m := next(t, sub); m.Offset != 6 {
		t.Errorf("after the gap: offset %d", m.Offset)
	}
	if g := gaps.list(); len(g) != 1 || g[0].Room != "lobby" || g[0].Reason != switchboard.GapOverflow || g[0].LastOffset != 2 {
		t.Errorf("gaps %+v", g)
	}

	// Presence events, also after a reconnect (asked for by the rejoin).
	carol := dial(t, srv, "carol")
	join(t, carol, "lobby")
	waitPresence(t, sub, switchboard.MemberJoined, "carol")
	s.waitFor(switchboard.StateConnected) // the first one
	switchboard.DropConnectionForTesting(bob)
	s.waitFor(switchboard.StateReconnecting)
	s.waitFor(switchboard.StateConnected)
	dave := dial(t, srv, "dave")
	join(t, dave, "lobby")
	waitPresence(t, sub, switchboard.MemberJoined, "dave")
}

// waitPresence reads sub's presence events until one of kind for user.
func waitPresence(t *testing.T, sub *switchboard.Subscription, kind switchboard.PresenceKind, user string) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev, ok := <-sub.PresenceEvents():
			if !ok {
				t.Fatalf("presence events of %s ended", sub.Room())
			}
			if ev.Kind == kind && ev.Member.GetUser() == user && ev.Room == sub.Room() {
				return
			}
		case <-timeout:
			t.Fatalf("no %v of %s in %s within %s", kind, user, sub.Room(), wait)
		}
	}
}

func TestSubscribedPushForAJoinedRoomKeepsItsSubscription(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := dial(t, srv, "bob")
	var gaps gapRecorder
	own := join(t, bob, "news", switchboard.OnGap(gaps.record))
	subscribeUser(t, srv, "bob", "news", "") // already a member: the server pushes nothing
	apiPublish(t, srv, "news", "m1")
	if m := next(t, own); m.Offset != 1 {
		t.Fatalf("offset %d", m.Offset)
	}
	position := own.Position()

	// A Subscribed push for it (as when a backend subscribes a new
	// connection before its rejoin): no second subscription, nothing
	// missed at the same position.
	push := func(offset uint64) {
		switchboard.DispatchForTesting(bob, &switchboardv1.ServerFrame{Kind: &switchboardv1.ServerFrame_Subscribed{
			Subscribed: &switchboardv1.Subscribed{Room: "news", Position: &switchboardv1.StreamPosition{Offset: offset, Epoch: position.GetEpoch()}},
		}})
	}
	push(1)
	nothingAnnounced(t, bob, 100*time.Millisecond)
	apiPublish(t, srv, "news", "m2")
	if m := next(t, own); m.Offset != 2 || m.Text() != "m2" {
		t.Fatalf("message #%d %q", m.Offset, m.Text())
	}
	if len(gaps.list()) != 0 {
		t.Fatalf("gaps %v", gaps.list())
	}

	// A later position: what lies between is reported as a gap, and the
	// subscription continues after it.
	push(4)
	apiPublish(t, srv, "news", "m3") // at or before the pushed position
	apiPublish(t, srv, "news", "m4")
	apiPublish(t, srv, "news", "m5")
	if m := next(t, own); m.Offset != 5 || m.Text() != "m5" {
		t.Errorf("message #%d %q", m.Offset, m.Text())
	}
	g := gaps.list()
	if len(g) != 1 || g[0].Reason != switchboard.GapRecoveryFailed || g[0].LastOffset != 2 || g[0].Position.GetOffset() != 4 {
		t.Errorf("gaps %+v", g)
	}
	nothingAnnounced(t, bob, 100*time.Millisecond)
}

func TestUnsubscribedPushForAnUnknownRoomIsIgnored(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	bob := dial(t, srv, "bob")
	sub := join(t, bob, "news")
	switchboard.DispatchForTesting(bob, &switchboardv1.ServerFrame{Kind: &switchboardv1.ServerFrame_Unsubscribed{
		Unsubscribed: &switchboardv1.Unsubscribed{Room: "elsewhere"},
	}})
	publish(t, bob, "news", "still here")
	if m := next(t, sub); m.Text() != "still here" || !sub.Active() {
		t.Errorf("text %q, active %v", m.Text(), sub.Active())
	}
}
