package switchboard_test

// Token refresh and rate limits, against production-mode servers (HS256
// tokens, no anonymous logins).

import (
	"errors"
	"slices"
	"testing"
	"time"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

// token returns a token for sub signed with the test secret, expiring at
// least lifetime from now (exp has whole seconds: rounded up), and that
// expiry.
func token(sub string, lifetime time.Duration) (string, time.Time) {
	exp := time.Now().Add(lifetime).Truncate(time.Second).Add(time.Second)
	return testserver.JWT(sub, secret, exp.Unix()), exp
}

// dialToken connects a client to srv with token; it is closed when the test
// ends.
func dialToken(t *testing.T, srv *testserver.Server, token string, opts ...switchboard.Option) *switchboard.Client {
	t.Helper()
	opts = append([]switchboard.Option{switchboard.WithToken(token)}, opts...)
	c, err := switchboard.Dial(ctx(t), srv.URL, opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sleepUntil sleeps until at.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
}

// pendingStates returns the state changes waiting in the channel now,
// without waiting for more.
func pendingStates(ch <-chan switchboard.StateChange) []switchboard.State {
	var got []switchboard.State
	for {
		select {
		case change, ok := <-ch:
			if !ok {
				return got
			}
			got = append(got, change.State)
		default:
			return got
		}
	}
}

func TestRefreshKeepsTheConnectionPastTheFirstTokensExpiry(t *testing.T) {
	t.Parallel()
	srv := startProductionServer(t)
	short, firstExpiry := token("alice", 2*time.Second)
	alice := dialToken(t, srv, short, switchboard.WithBackoff(fast))
	if !alice.ExpiresAt().Equal(firstExpiry) {
		t.Errorf("ExpiresAt %v, want %v", alice.ExpiresAt(), firstExpiry)
	}
	client := alice.ClientID()

	long, newExpiry := token("alice", time.Hour)
	reply, err := alice.Refresh(ctx(t), long)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if reply.GetExpiresAtMs() != newExpiry.UnixMilli() {
		t.Errorf("expires_at_ms %d, want %d", reply.GetExpiresAtMs(), newExpiry.UnixMilli())
	}
	if !alice.ExpiresAt().Equal(newExpiry) {
		t.Errorf("ExpiresAt %v, want %v", alice.ExpiresAt(), newExpiry)
	}

	sleepUntil(firstExpiry.Add(time.Second)) // the old token would have been closed by now
	if _, err := alice.Ping(ctx(t)); err != nil {
		t.Fatalf("ping after the first expiry: %v", err)
	}
	sub := join(t, alice, "room")
	publish(t, alice, "room", "still here")
	if m := next(t, sub); m.Text() != "still here" || m.Sender != "alice" {
		t.Errorf("message %q from %q", m.Text(), m.Sender)
	}
	want := []switchboard.State{switchboard.StateConnecting, switchboard.StateConnected}
	if got := pendingStates(alice.StateChanges()); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v (no reconnect)", got, want)
	}
	if alice.State() != switchboard.StateConnected || alice.ClientID() != client {
		t.Errorf("state %s, client %q (was %q)", alice.State(), alice.ClientID(), client)
	}
}

func TestReconnectAfterARefreshUsesTheNewToken(t *testing.T) {
	t.Parallel()
	srv := startProductionServer(t)
	short, firstExpiry := token("alice", 2*time.Second)
	alice := dialToken(t, srv, short, switchboard.WithBackoff(fast))
	s := watchStates(t, alice)
	bobToken, _ := token("bob", time.Hour)
	bob := dialToken(t, srv, bobToken)
	var gaps gapRecorder
	sub := join(t, alice, "feed", switchboard.OnGap(gaps.record))
	join(t, bob, "feed")
	publish(t, bob, "feed", "m1")
	if m := next(t, sub); m.Offset != 1 {
		t.Fatalf("offset %d", m.Offset)
	}
	long, newExpiry := token("alice", time.Hour)
	if _, err := alice.Refresh(ctx(t), long); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	sleepUntil(firstExpiry.Add(time.Second)) // the old token is expired now
	first := alice.ClientID()

	switchboard.DropConnectionForTesting(alice)
	lost := s.waitFor(switchboard.StateReconnecting)
	if lost.Code != 1006 {
		t.Errorf("reconnecting %+v", lost)
	}
	publish(t, bob, "feed", "m2") // while alice is away
	publish(t, bob, "feed", "m3")
	s.waitFor(switchboard.StateConnected)
	publish(t, bob, "feed", "m4")

	var got []uint64
	var texts []string
	for range 3 {
		m := next(t, sub)
		got = append(got, m.Offset)
		texts = append(texts, m.Text())
	}
	if !equalOffsets(got, []uint64{2, 3, 4}) || !slices.Equal(texts, []string{"m2", "m3", "m4"}) {
		t.Errorf("after the reconnect: %v %v", got, texts)
	}
	noMessage(t, sub, 300*time.Millisecond)
	if len(gaps.list()) != 0 {
		t.Errorf("gaps %v", gaps.list())
	}
	// The new connection's connect reply names the refreshed token's expiry.
	if alice.ClientID() == first || alice.User() != "alice" || !alice.ExpiresAt().Equal(newExpiry) {
		t.Errorf("client %q (was %q), user %q, expires %v (want %v)", alice.ClientID(), first, alice.User(), alice.ExpiresAt(), newExpiry)
	}
	if alice.Err() != nil || alice.State() != switchboard.StateConnected {
		t.Errorf("state %s, err %v", alice.State(), alice.Err())
	}
}

func TestRefusedRefreshEndsTheClient(t *testing.T) {
	t.Parallel()
	srv := startProductionServer(t)
	otherUser, _ := token("bob", time.Hour)
	past := time.Now().Add(-time.Minute).Unix()
	for _, tc := range []struct {
		name  string
		token string
		code  switchboardv1.ErrorCode
	}{
		{"another user's token", otherUser, switchboardv1.ErrorCode_ERROR_CODE_UNAUTHORIZED},
		{"bad signature", testserver.JWT("alice", "wrong-secret", 0), switchboardv1.ErrorCode_ERROR_CODE_UNAUTHORIZED},
		{"expired token", testserver.JWT("alice", secret, past), switchboardv1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			valid, expiry := token("alice", time.Hour)
			alice := dialToken(t, srv, valid, switchboard.WithBackoff(fast))
			s := watchStates(t, alice)
			sub := join(t, alice, "room")

			_, err := alice.Refresh(ctx(t), tc.token)
			var se *switchboard.ServerError
			if !errors.As(err, &se) || se.Code != tc.code || se.Temporary || se.Command != "refresh" {
				t.Fatalf("refresh: %v", err)
			}
			closed(t, alice.Done())
			var closedErr *switchboard.ClosedError
			if !errors.As(alice.Err(), &closedErr) || closedErr.Code != 1008 {
				t.Fatalf("Err = %v", alice.Err())
			}
			want := []switchboard.State{switchboard.StateConnecting, switchboard.StateConnected, switchboard.StateClosed}
			if got := s.all(); !slices.Equal(got, want) {
				t.Errorf("states %v, want %v (no reconnect)", got, want)
			}
			if !closed(t, sub.Messages()) || !errors.As(sub.Err(), &closedErr) || closedErr.Code != 1008 {
				t.Errorf("subscription: %v", sub.Err())
			}
			if _, err := alice.Ping(ctx(t)); !errors.Is(err, switchboard.ErrClosed) {
				t.Errorf("ping after the close: %v", err)
			}
			if !alice.ExpiresAt().Equal(expiry) { // the refused token changed nothing
				t.Errorf("ExpiresAt %v, want %v", alice.ExpiresAt(), expiry)
			}
		})
	}
}

func TestRateLimitedCommandCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, testserver.Options{Env: map[string]string{
		"SWITCHBOARD_DEVELOPMENT":                 "false",
		"SWITCHBOARD_AUTH__JWT_SECRET":            secret,
		"SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND": "2",
		"SWITCHBOARD_LIMITS__COMMAND_BURST":       "2",
		"SWITCHBOARD_LIMITS__RATE_LIMIT_STRIKES":  "100",
	}})
	valid, _ := token("alice", time.Hour)
	alice := dialToken(t, srv, valid)
	var se *switchboard.ServerError
	for i := 0; i < 20 && se == nil; i++ {
		_, err := alice.Ping(ctx(t))
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("ping %d: %v", i+1, err)
		}
	}
	if se == nil {
		t.Fatal("20 quick pings were never rate-limited")
	}
	if se.Code != switchboardv1.ErrorCode_ERROR_CODE_RATE_LIMITED || !se.Temporary || se.Command != "ping" {
		t.Fatalf("error %v", se)
	}
	if se.RetryAfter <= 0 || se.RetryAfter > time.Second {
		t.Errorf("RetryAfter %s, want within (0, 1s] at 2 commands/s", se.RetryAfter)
	}
	time.Sleep(se.RetryAfter + 50*time.Millisecond)
	if _, err := alice.Ping(ctx(t)); err != nil {
		t.Errorf("ping after waiting RetryAfter: %v", err)
	}
	want := []switchboard.State{switchboard.StateConnecting, switchboard.StateConnected}
	if got := pendingStates(alice.StateChanges()); !slices.Equal(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
}

func TestSustainedRateLimitViolationsClose4003AndTheClientReconnects(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, testserver.Options{Env: map[string]string{
		"SWITCHBOARD_DEVELOPMENT":                 "false",
		"SWITCHBOARD_AUTH__JWT_SECRET":            secret,
		"SWITCHBOARD_LIMITS__COMMANDS_PER_SECOND": "2",
		"SWITCHBOARD_LIMITS__COMMAND_BURST":       "2",
		"SWITCHBOARD_LIMITS__RATE_LIMIT_STRIKES":  "3",
	}})
	valid, _ := token("alice", time.Hour)
	alice := dialToken(t, srv, valid, switchboard.WithBackoff(fast))
	s := watchStates(t, alice)
	// Three rate-limited commands in a row: the third one's error is followed
	// by close 4003.
	limited := 0
	for i := 0; i < 20 && limited < 3; i++ {
		_, err := alice.Ping(ctx(t))
		switch code := switchboard.CodeOf(err); {
		case code == switchboardv1.ErrorCode_ERROR_CODE_RATE_LIMITED:
			limited++
		case err != nil:
			t.Fatalf("ping %d: %v", i+1, err)
		}
	}
	if limited < 3 {
		t.Fatalf("%d of 20 quick pings were rate-limited, want 3", limited)
	}
	lost := s.waitFor(switchboard.StateReconnecting)
	if lost.Code != int(switchboardv1.CloseCode_CLOSE_CODE_RATE_LIMITED) {
		t.Errorf("reconnecting %+v", lost)
	}
	s.waitFor(switchboard.StateConnected)
	if _, err := alice.Ping(ctx(t)); err != nil {
		t.Errorf("ping after the reconnect: %v", err)
	}
}
