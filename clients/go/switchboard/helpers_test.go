package switchboard_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

// wait bounds every wait for something that should happen.
const wait = 10 * time.Second

// fast is a backoff for tests: reconnects come quickly.
var fast = switchboard.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}

// TestMain fails the run when any goroutine outlives the tests: every
// client, subscription and server process must be gone by then.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer starts a development-mode server for the test.
func startServer(t *testing.T) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.Options{})
}

// dial connects a client to srv as name; it is closed when the test ends.
func dial(t *testing.T, srv *testserver.Server, name string, opts ...switchboard.Option) *switchboard.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	opts = append([]switchboard.Option{switchboard.WithName(name)}, opts...)
	c, err := switchboard.Dial(ctx, srv.URL, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ctx is a context bounded by wait, cancelled when the test ends.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

func join(t *testing.T, c *switchboard.Client, room string, opts ...switchboard.JoinOption) *switchboard.Subscription {
	t.Helper()
	sub, err := c.Join(ctx(t), room, nil, opts...)
	if err != nil {
		t.Fatalf("join %s: %v", room, err)
	}
	return sub
}

func publish(t *testing.T, c *switchboard.Client, room string, content switchboard.Content, opts ...switchboard.PublishOption) uint64 {
	t.Helper()
	ack, err := c.Publish(ctx(t), room, content, opts...)
	if err != nil {
		t.Fatalf("publish to %s: %v", room, err)
	}
	return ack.GetOffset()
}

// next receives the subscription's next message within wait.
func next(t *testing.T, sub *switchboard.Subscription) *switchboard.Message {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if !ok {
			t.Fatalf("subscription of %s ended: %v", sub.Room(), sub.Err())
		}
		return m
	case <-time.After(wait):
		t.Fatalf("no message in %s within %s", sub.Room(), wait)
	}
	return nil
}

// offsets receives n messages and returns their offsets.
func offsets(t *testing.T, sub *switchboard.Subscription, n int) []uint64 {
	t.Helper()
	var got []uint64
	for range n {
		got = append(got, next(t, sub).Offset)
	}
	return got
}

// noMessage checks that nothing arrives for d.
func noMessage(t *testing.T, sub *switchboard.Subscription, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if ok {
			t.Fatalf("unexpected message %d %q", m.Offset, m.Text())
		}
	case <-time.After(d):
	}
}

// drain reads the remaining messages until the channel closes (within
// wait) and returns their texts.
func drain(t *testing.T, sub *switchboard.Subscription) []string {
	t.Helper()
	var texts []string
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-sub.Messages():
			if !ok {
				return texts
			}
			texts = append(texts, m.Text())
		case <-timeout:
			t.Fatalf("subscription of %s did not end within %s", sub.Room(), wait)
		}
	}
}

// states reads a client's state changes.
type states struct {
	t       *testing.T
	ch      <-chan switchboard.StateChange
	changes []switchboard.StateChange
}

func watchStates(t *testing.T, c *switchboard.Client) *states {
	return &states{t: t, ch: c.StateChanges()}
}

// waitFor returns the first change to state not returned before, reading
// (and recording) the changes in between.
func (s *states) waitFor(state switchboard.State) switchboard.StateChange {
	s.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case change, ok := <-s.ch:
			if !ok {
				s.t.Fatalf("state changes ended before %s; saw %v", state, s.list())
			}
			s.changes = append(s.changes, change)
			if change.State == state {
				return change
			}
		case <-timeout:
			s.t.Fatalf("no %s state within %s; saw %v", state, wait, s.list())
		}
	}
}

// all reads the remaining changes until the channel closes.
func (s *states) all() []switchboard.State {
	s.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case change, ok := <-s.ch:
			if !ok {
				return s.list()
			}
			s.changes = append(s.changes, change)
		case <-timeout:
			s.t.Fatalf("state changes did not end within %s; saw %v", wait, s.list())
		}
	}
}

func (s *states) list() []switchboard.State {
	var out []switchboard.State
	for _, c := range s.changes {
		out = append(out, c.State)
	}
	return out
}

// recv receives one value from ch within wait; a closed channel fails.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return v
	case <-time.After(wait):
		t.Fatalf("nothing received within %s", wait)
	}
	var zero T
	return zero
}

// closed reports whether ch is closed (with nothing left in it) within wait.
func closed[T any](t *testing.T, ch <-chan T) bool {
	t.Helper()
	select {
	case _, ok := <-ch:
		return !ok
	case <-time.After(wait):
		t.Fatalf("channel neither closed nor sent within %s", wait)
	}
	return false
}
