package switchboard

// Test hooks, compiled into the tests only: they reach the internals the
// black-box tests cannot, and are no part of the API.

import (
	"log/slog"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// DropConnectionForTesting aborts the current connection without a close
// handshake, as a network failure would, so tests exercise the reconnect,
// rejoin-with-since and dedupe path against a real server.
func DropConnectionForTesting(c *Client) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.cancel()
	}
}

// DispatchForTesting hands frame to the client's dispatcher as if the
// current connection had received it.
func DispatchForTesting(c *Client, frame *switchboardv1.ServerFrame) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	c.dispatch(conn, frame)
}

// TestSubscription is a subscription driven directly, as the reader drives
// it, with its delivery goroutine running until Stop.
type TestSubscription struct {
	*Subscription
	abandon chan struct{}
	stopped chan struct{}
}

// NewTestSubscription returns a subscription of room "room" with a running
// delivery goroutine.
func NewTestSubscription(bufferSize int, types *TypeRegistry, onGap func(Gap)) *TestSubscription {
	if types == nil {
		types, _ = NewTypeRegistry()
	}
	c := &Client{cfg: config{bufferSize: bufferSize}, types: types, log: slog.New(slog.DiscardHandler)}
	var o joinOptions
	OnGap(onGap)(&o)
	sub := newSubscription(c, "room", o)
	ts := &TestSubscription{Subscription: sub, abandon: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(ts.stopped)
		sub.run(ts.abandon)
	}()
	return ts
}

// Joined applies a first join's reply.
func (s *TestSubscription) Joined(reply *switchboardv1.JoinReply, since *switchboardv1.StreamPosition) {
	s.joined(reply, since)
}

// Rejoined applies a rejoin's reply.
func (s *TestSubscription) Rejoined(reply *switchboardv1.JoinReply) { s.rejoined(reply) }

// Deliver takes in a live message.
func (s *TestSubscription) Deliver(m *switchboardv1.RoomMessage) { s.deliver(m) }

// End ends the subscription with err.
func (s *TestSubscription) End(err error) { s.end(err) }

// Stop abandons delivery (as Client.Close does) and waits for the delivery
// goroutine.
func (s *TestSubscription) Stop() {
	select {
	case <-s.abandon:
	default:
		close(s.abandon)
	}
	<-s.stopped
}

// Buffered is the number of items (messages and gaps) not yet handed over.
func (s *TestSubscription) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// NewIdempotencyKeyForTesting returns a key as Publish generates one.
func NewIdempotencyKeyForTesting() string { return newIdempotencyKey() }

// PublishBackoffForTesting is the delays between a publish's automatic
// retries.
var PublishBackoffForTesting = publishBackoff
