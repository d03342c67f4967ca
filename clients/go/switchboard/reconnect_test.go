package switchboard_test

// Reconnect, recovery, close codes and timeouts, against real server
// processes (dropped sockets, SIGTERM, SIGSTOP, a production-mode server).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

const secret = "test-secret-0123456789"

func startProductionServer(t *testing.T) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.Options{Env: map[string]string{
		"SWITCHBOARD_DEVELOPMENT":      "false",
		"SWITCHBOARD_AUTH__JWT_SECRET": secret,
	}})
}

// gapRecorder collects a subscription's gaps.
type gapRecorder struct {
	mu   sync.Mutex
	gaps []switchboard.Gap
}

func (g *gapRecorder) record(gap switchboard.Gap) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gaps = append(g.gaps, gap)
}

func (g *gapRecorder) list() []switchboard.Gap {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.gaps)
}

func TestNetworkDropRecoversMissedMessagesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	bob := dial(t, srv, "bob", switchboard.WithBackoff(fast))
	s := watchStates(t, bob)
	join(t, alice, "feed")
	var gaps gapRecorder
	sub := join(t, bob, "feed", switchboard.OnGap(gaps.record))
	for i := 1; i <= 3; i++ {
		publish(t, alice, "feed", fmt.Sprintf("m%d", i))
	}
	if got := offsets(t, sub, 3); !equalOffsets(got, []uint64{1, 2, 3}) {
		t.Fatalf("offsets %v", got)
	}

	switchboard.DropConnectionForTesting(bob)
	lost := s.waitFor(switchboard.StateReconnecting)
	if lost.Code != 1006 || lost.Attempt != 1 { // no close frame: a network failure
		t.Errorf("reconnecting %+v", lost)
	}
	for i := 4; i <= 8; i++ { // published while bob is away
		publish(t, alice, "feed", fmt.Sprintf("m%d", i))
	}
	s.waitFor(switchboard.StateConnected)
	publish(t, alice, "feed", "m9")

	var texts []string
	var got []uint64
	for range 6 {
		m := next(t, sub)
		got = append(got, m.Offset)
		texts = append(texts, m.Text())
	}
	if !equalOffsets(got, []uint64{4, 5, 6, 7, 8, 9}) || !slices.Equal(texts, []string{"m4", "m5", "m6", "m7", "m8", "m9"}) {
		t.Errorf("after the drop: %v %v", got, texts)
	}
	noMessage(t, sub, 300*time.Millisecond)
	if len(gaps.list()) != 0 {
		t.Errorf("gaps %v", gaps.list())
	}
	if p := sub.Position(); p.GetOffset() != 9 {
		t.Errorf("position %v", p)
	}
}

func TestRepeatedDropsWhilePublishingLoseAndDuplicateNothing(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	bob := dial(t, srv, "bob", switchboard.WithBackoff(fast))
	join(t, alice, "feed")
	sub := join(t, bob, "feed")
	received := make(chan []uint64, 1)
	go func() {
		var got []uint64
		defer func() { received <- got }()
		timeout := time.After(2 * wait)
		for {
			select {
			case m, ok := <-sub.Messages():
				if !ok {
					return
				}
				got = append(got, m.Offset)
				if m.Offset == 60 {
					return
				}
			case <-timeout:
				return
			}
		}
	}()
	for i := 1; i <= 60; i++ {
		publish(t, alice, "feed", fmt.Sprintf("m%d", i))
		if i%15 == 0 {
			switchboard.DropConnectionForTesting(bob)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := recv(t, received)
	want := make([]uint64, 60)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !equalOffsets(got, want) {
		t.Errorf("received %v", got)
	}
}

func TestCommandsIssuedWhileReconnectingWaitForTheConnection(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", switchboard.WithBackoff(switchboard.Backoff{Initial: 300 * time.Millisecond, Max: 300 * time.Millisecond}))
	s := watchStates(t, alice)
	sub := join(t, alice, "room")
	switchboard.DropConnectionForTesting(alice)
	s.waitFor(switchboard.StateReconnecting)
	ack, err := alice.Publish(ctx(t), "room", "sent while away") // waits for the reconnect
	if err != nil {
		t.Fatal(err)
	}
	if alice.State() != switchboard.StateConnected || ack.GetOffset() != 1 {
		t.Errorf("state %s, ack %v", alice.State(), ack)
	}
	if m := next(t, sub); m.Text() != "sent while away" {
		t.Errorf("text %q", m.Text())
	}
	page, err := alice.History(ctx(t), "room", switchboard.HistoryQuery{})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Text() != "sent while away" {
		t.Errorf("history %v, %v", page, err)
	}
}

func TestInFlightPublishWithIdempotencyKeyIsResentOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", switchboard.WithBackoff(fast))
	bob := dial(t, srv, "bob")
	join(t, alice, "orders")
	sub := join(t, bob, "orders")
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		ack *switchboardv1.PublishReply
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		ack, err := alice.Publish(context.Background(), "orders", "paid", switchboard.IdempotencyKey("order-1"))
		done <- outcome{ack, err}
	}()
	time.Sleep(200 * time.Millisecond) // written to the socket, no reply possible
	switchboard.DropConnectionForTesting(alice)
	srv.Resume()
	o := recv(t, done)
	if o.err != nil || o.ack.GetOffset() != 1 {
		t.Fatalf("publish: %v, %v", o.ack, o.err)
	}
	if m := next(t, sub); m.Text() != "paid" {
		t.Errorf("text %q", m.Text())
	}
	publish(t, alice, "orders", "next")
	if m := next(t, sub); m.Offset != 2 { // "paid" was delivered once
		t.Errorf("offset %d", m.Offset)
	}
}

func TestInFlightDirectFailsAsLostInsteadOfRiskingADuplicate(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", switchboard.WithBackoff(fast))
	dial(t, srv, "bob")
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := alice.Direct(context.Background(), "bob", "psst")
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	switchboard.DropConnectionForTesting(alice)
	srv.Resume()
	err := recv(t, done)
	var lost *switchboard.ConnectionLostError
	if !errors.As(err, &lost) || lost.Command != "direct" {
		t.Fatalf("direct: %v", err)
	}
	if _, err := alice.Direct(ctx(t), "bob", "again"); err != nil { // reconnected
		t.Error(err)
	}
}

func TestServerShutdownClosesWith1001AndTheClientReconnects(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", switchboard.WithBackoff(fast))
	s := watchStates(t, alice)
	var gaps gapRecorder
	sub := join(t, alice, "room", switchboard.OnGap(gaps.record))
	publish(t, alice, "room", "before")
	if m := next(t, sub); m.Offset != 1 {
		t.Fatalf("offset %d", m.Offset)
	}

	if code := srv.Stop(); code != 0 { // SIGTERM: graceful, close 1001
		t.Fatalf("server exit code %d", code)
	}
	lost := s.waitFor(switchboard.StateReconnecting)
	if lost.Code != 1001 {
		t.Errorf("reconnecting %+v", lost)
	}
	time.Sleep(300 * time.Millisecond) // a few attempts fail while no server listens
	if alice.State() != switchboard.StateReconnecting {
		t.Errorf("state %s", alice.State())
	}

	testserver.Start(t, testserver.Options{Listen: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	s.waitFor(switchboard.StateConnected)
	// The new server has a new epoch: the subscription is told it cannot
	// recover, then continues live.
	publish(t, alice, "room", "after")
	m := next(t, sub)
	if m.Offset != 1 || m.Text() != "after" {
		t.Errorf("after the restart: %d %q", m.Offset, m.Text())
	}
	list := gaps.list()
	if len(list) != 1 {
		t.Fatalf("gaps %v", list)
	}
	g := list[0]
	if g.Reason != switchboard.GapRecoveryFailed || g.LastOffset != 1 || g.Position.GetOffset() != 0 || g.Position.GetEpoch() == g.Epoch {
		t.Errorf("gap %+v", g)
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	if states := s.all(); states[len(states)-1] != switchboard.StateClosed {
		t.Errorf("states %v", states)
	}
}

func TestRefusedTokenIsTerminal(t *testing.T) {
	t.Parallel()
	srv := startProductionServer(t)
	_, err := switchboard.Dial(ctx(t), srv.URL, switchboard.WithToken(testserver.JWT("eve", "wrong-secret", 0)))
	var se *switchboard.ServerError
	if !errors.As(err, &se) || se.Code != switchboardv1.ErrorCode_ERROR_CODE_UNAUTHORIZED || se.Temporary {
		t.Fatalf("Dial with a bad token: %v", err)
	}
	_, err = switchboard.Dial(ctx(t), srv.URL, switchboard.WithName("anonymous"))
	if switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_UNAUTHORIZED {
		t.Fatalf("anonymous Dial in production mode: %v", err)
	}
}

func TestClose1008OnTokenExpiryDoesNotReconnect(t *testing.T) {
	t.Parallel()
	srv := startProductionServer(t)
	token := testserver.JWT("alice", secret, time.Now().Add(2*time.Second).Unix())
	client, err := switchboard.Dial(ctx(t), srv.URL, switchboard.WithToken(token), switchboard.WithBackoff(fast))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	s := watchStates(t, client)
	if client.User() != "alice" {
		t.Errorf("user %q", client.User())
	}
	sub := join(t, client, "room")
	closed(t, client.Done())
	var closedErr *switchboard.ClosedError
	if !errors.As(client.Err(), &closedErr) || closedErr.Code != 1008 {
		t.Fatalf("Err = %v", client.Err())
	}
	want := []switchboard.State{switchboard.StateConnecting, switchboard.StateConnected, switchboard.StateClosed}
	if got := s.all(); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	if !closed(t, sub.Messages()) || !errors.As(sub.Err(), &closedErr) || closedErr.Code != 1008 {
		t.Errorf("subscription: %v", sub.Err())
	}
	if _, err := client.Publish(ctx(t), "room", "too late"); !errors.Is(err, switchboard.ErrClosed) {
		t.Errorf("publish after the close: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if client.State() != switchboard.StateClosed {
		t.Errorf("state %s", client.State())
	}
}

func TestCommandTimesOutWhenTheServerDoesNotAnswer(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	join(t, alice, "room")
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	started := time.Now()
	_, err := alice.Publish(c, "room", "into the void")
	elapsed := time.Since(started)
	srv.Resume()
	var te *switchboard.TimeoutError
	if !errors.As(err, &te) || te.Command != "publish" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish: %v", err)
	}
	if elapsed < 450*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("timed out after %s", elapsed)
	}
	if ack := publish(t, alice, "room", "back"); ack < 1 {
		t.Errorf("ack offset %d", ack)
	}
}

func TestDefaultCommandTimeoutBoundsWaitingForAReconnect(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", switchboard.WithCommandTimeout(500*time.Millisecond), switchboard.WithBackoff(fast))
	join(t, alice, "room")
	srv.Kill() // gone for good
	started := time.Now()
	_, err := alice.History(context.Background(), "room", switchboard.HistoryQuery{})
	var te *switchboard.TimeoutError
	if !errors.As(err, &te) || te.After != 500*time.Millisecond {
		t.Fatalf("history: %v", err)
	}
	if time.Since(started) > 2*time.Second {
		t.Errorf("took %s", time.Since(started))
	}
	if alice.State() != switchboard.StateReconnecting {
		t.Errorf("state %s", alice.State())
	}
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	if alice.State() != switchboard.StateClosed {
		t.Errorf("state %s", alice.State())
	}
}

func TestSilentServerIsDetectedAndTheClientReconnects(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, testserver.Options{Env: map[string]string{"SWITCHBOARD_LIMITS__PING_INTERVAL": "200ms"}})
	alice := dial(t, srv, "alice", switchboard.WithBackoff(fast))
	s := watchStates(t, alice)
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	// Nothing (not even a ping) for two intervals: the connection is dropped.
	lost := s.waitFor(switchboard.StateReconnecting)
	srv.Resume()
	if lost.Code != 1006 {
		t.Errorf("reconnecting %+v", lost)
	}
	s.waitFor(switchboard.StateConnected)
	if _, err := alice.Ping(ctx(t)); err != nil {
		t.Error(err)
	}
}

func TestBackoffDelaysAreReportedAndBounded(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	backoff := switchboard.Backoff{Initial: 20 * time.Millisecond, Max: 80 * time.Millisecond}
	alice := dial(t, srv, "alice", switchboard.WithBackoff(backoff))
	s := watchStates(t, alice)
	srv.Kill() // every attempt fails
	for attempt := 1; attempt <= 5; attempt++ {
		change := s.waitFor(switchboard.StateReconnecting)
		if change.Attempt != attempt || change.Delay < 0 || change.Delay >= backoff.Ceiling(attempt-1) {
			t.Errorf("attempt %d: %+v", attempt, change)
		}
		if attempt > 1 && change.Code != 0 {
			t.Errorf("a failed dial has no close code: %+v", change)
		}
	}
}
