package switchboard

import (
	"context"
	"log/slog"
	"sync"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// JoinOption configures [Client.Join].
type JoinOption func(*joinOptions)

type joinOptions struct {
	presenceEvents bool
	onGap          func(Gap)
}

// WithPresenceEvents also delivers MemberJoined / MemberLeft events of the
// room on [Subscription.PresenceEvents].
func WithPresenceEvents() JoinOption {
	return func(o *joinOptions) { o.presenceEvents = true }
}

// OnGap sets the function told about skipped messages (see [Gap]). It runs on
// the subscription's delivery goroutine, in order with the messages: after
// the application has received the message before the gap from
// [Subscription.Messages] and before the next one is offered. It may call
// the client (e.g. [Client.History] to fill the gap) but must not call
// [Client.Close], which waits for that goroutine.
func OnGap(fn func(Gap)) JoinOption {
	return func(o *joinOptions) { o.onGap = fn }
}

// item is one entry of a subscription's buffer: a message or a gap.
type item struct {
	msg *Message
	gap *Gap
}

// Subscription is a joined room: by [Client.Join], or by a backend (see
// [Client.ServerSubscriptions]). Receive its messages from Messages():
//
//	for msg := range sub.Messages() {
//		fmt.Println(msg.Offset, msg.Sender, msg.Text())
//	}
//
// Messages arrive in offset order, each once, across reconnects. Up to the
// client's buffer size of them wait for the application (see
// [WithBufferSize]); when it falls that far behind, newer messages are
// dropped and a [Gap] (GapOverflow) marks the spot, and a reconnect that could
// not recover what was missed is marked the same way (GapRecoveryFailed).
// Gaps go to the [OnGap] function, in order with the messages.
//
// The connection's reader never waits for the application: a bounded buffer
// sits between it and one delivery goroutine per subscription.
type Subscription struct {
	client         *Client
	room           string
	presenceEvents bool
	onGap          func(Gap)
	types          *TypeRegistry
	log            *slog.Logger
	// capacity bounds the undelivered messages in items (gaps may take one
	// slot beyond it, as in every Switchboard SDK).
	capacity int

	// out is unbuffered: a message stays in items (and counts against the
	// capacity) until the application has taken it.
	out chan *Message
	// presence carries presence events; oldest dropped when full.
	presence *dropOldest[PresenceEvent]
	// wake tells the delivery goroutine that items changed (capacity 1).
	wake chan struct{}

	mu sync.Mutex
	// items are the messages and gaps not yet handed over, oldest first.
	items []item
	// offset and epoch locate the last message put into items (or skipped by
	// a gap): the dedupe bound and the since of the next rejoin.
	offset uint64
	epoch  string
	// recovered is whether the first join's since was honoured.
	recovered bool
	// ended is set when the room was left or the client closed: no more
	// messages come; the buffered ones are still delivered.
	ended bool
	// err is why the subscription ended (nil after Leave or Close).
	err error
}

func newSubscription(c *Client, room string, o joinOptions) *Subscription {
	return &Subscription{
		client:         c,
		room:           room,
		presenceEvents: o.presenceEvents,
		onGap:          o.onGap,
		types:          c.types,
		log:            c.log,
		capacity:       c.cfg.bufferSize,
		out:            make(chan *Message),
		presence:       newDropOldest[PresenceEvent](c.cfg.bufferSize),
		wake:           make(chan struct{}, 1),
	}
}

// Room is the room's name.
func (s *Subscription) Room() string { return s.room }

// Messages is the room's messages, in offset order, once each. The channel
// is closed when the subscription ends: after [Subscription.Leave] or a
// backend's unsubscribe (once the buffered messages are received), after the server closed the client for
// good (likewise; see [Subscription.Err]), or at [Client.Close] (at once:
// messages not yet received are dropped). The same channel is returned
// every time.
func (s *Subscription) Messages() <-chan *Message { return s.out }

// PresenceEvents is the room's MemberJoined / MemberLeft events, in order,
// when joined [WithPresenceEvents] (otherwise nothing arrives). Up to the
// client's buffer size of them wait; beyond that the oldest are dropped. The
// channel is closed when the subscription ends, once its events are read.
func (s *Subscription) PresenceEvents() <-chan PresenceEvent { return s.presence.ch }

// Position is the offset and epoch of the last message delivered (or
// skipped). Save it to resume later with Join(ctx, room, position).
func (s *Subscription) Position() *switchboardv1.StreamPosition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &switchboardv1.StreamPosition{Offset: s.offset, Epoch: s.epoch}
}

// Recovered reports whether the join's since was honoured: the server still
// had everything after it and replayed it first. False when no since was
// given.
func (s *Subscription) Recovered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// Active reports whether the subscription still receives messages: true
// until it is left (or a backend unsubscribes it) or the client closes.
func (s *Subscription) Active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended
}

// Err is why the subscription ended: nil while it is active and after
// Leave, a backend's unsubscribe or Close; a [*ClosedError] when the server closed the client for good; a
// [*ServerError] when the room could not be rejoined after a reconnect.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Leave leaves the room: no more messages arrive, and Messages is closed
// once the buffered ones are received. Leaving twice is a no-op.
func (s *Subscription) Leave(ctx context.Context) error {
	return s.client.leaveSubscription(ctx, s)
}

// The client's reader calls the methods below, one frame at a time.

// joinRequest is the join that resumes this subscription on a new
// connection.
func (s *Subscription) joinRequest() *switchboardv1.JoinRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &switchboardv1.JoinRequest{
		Room:           s.room,
		Since:          &switchboardv1.StreamPosition{Offset: s.offset, Epoch: s.epoch},
		PresenceEvents: s.presenceEvents,
	}
}

// joined applies the first join's reply; since is the position the join
// asked to recover from (nil: none).
func (s *Subscription) joined(reply *switchboardv1.JoinReply, since *switchboardv1.StreamPosition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recovered = since != nil && reply.GetRecovered()
	if s.recovered {
		s.offset, s.epoch = since.GetOffset(), since.GetEpoch()
		for _, m := range reply.GetMessages() {
			s.deliverLocked(m)
		}
		return
	}
	s.offset, s.epoch = reply.GetPosition().GetOffset(), reply.GetPosition().GetEpoch()
}

// subscribed starts a subscription of a Subscribed push at position: the
// messages after it follow.
func (s *Subscription) subscribed(position *switchboardv1.StreamPosition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset, s.epoch = position.GetOffset(), position.GetEpoch()
}

// resubscribed applies a Subscribed push for a room this subscription
// already has: the connection had no membership (a backend subscribed a
// new connection before it was rejoined), and messages now follow from
// position. What lies between the last message taken in and position is
// reported as a gap, as a rejoin that could not recover.
func (s *Subscription) resubscribed(position *switchboardv1.StreamPosition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if position.GetEpoch() == s.epoch && position.GetOffset() <= s.offset {
		return // nothing missed; the overlap is deduplicated
	}
	next := &switchboardv1.StreamPosition{Offset: position.GetOffset(), Epoch: position.GetEpoch()}
	gap := &Gap{Room: s.room, Reason: GapRecoveryFailed, LastOffset: s.offset, Epoch: s.epoch, Position: next}
	s.offset, s.epoch = next.Offset, next.Epoch
	s.pushLocked(item{gap: gap})
}

// rejoined applies the reply to the join that resumed after a reconnect.
func (s *Subscription) rejoined(reply *switchboardv1.JoinReply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reply.GetRecovered() {
		for _, m := range reply.GetMessages() {
			s.deliverLocked(m)
		}
		return
	}
	position := &switchboardv1.StreamPosition{
		Offset: reply.GetPosition().GetOffset(),
		Epoch:  reply.GetPosition().GetEpoch(),
	}
	gap := &Gap{Room: s.room, Reason: GapRecoveryFailed, LastOffset: s.offset, Epoch: s.epoch, Position: position}
	s.offset, s.epoch = position.Offset, position.Epoch
	s.pushLocked(item{gap: gap})
}

// deliver takes in a live message of the room.
func (s *Subscription) deliver(m *switchboardv1.RoomMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverLocked(m)
}

func (s *Subscription) deliverLocked(m *switchboardv1.RoomMessage) {
	if m.GetOffset() <= s.offset {
		return // already delivered: replay and live overlap after a reconnect
	}
	previous := s.offset
	s.offset = m.GetOffset()
	if len(s.items) < s.capacity {
		s.pushLocked(item{msg: newMessage(m, s.types, s.log)})
		return
	}
	// Full: drop the message, and mark the spot once (one slot beyond the
	// capacity) until the application catches up.
	if n := len(s.items); n > 0 && s.items[n-1].gap != nil && s.items[n-1].gap.Reason == GapOverflow {
		return
	}
	s.pushLocked(item{gap: &Gap{Room: s.room, Reason: GapOverflow, LastOffset: previous, Epoch: s.epoch}})
}

func (s *Subscription) pushLocked(it item) {
	if s.ended {
		return
	}
	s.items = append(s.items, it)
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// presenceEvent takes in a presence push of the room.
func (s *Subscription) presenceEvent(ev PresenceEvent) {
	s.presence.push(ev)
}

// end marks the subscription ended (no more messages come in); it reports
// whether it was active. The delivery goroutine hands over what is buffered,
// then closes Messages.
func (s *Subscription) end(err error) bool {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	s.ended = true
	s.err = err
	s.signal()
	s.mu.Unlock()
	s.presence.close()
	return true
}

// run is the delivery goroutine: it hands the buffered items to the
// application in order until the subscription ended and its buffer is
// empty, or until abandon is closed (by Client.Close).
func (s *Subscription) run(abandon <-chan struct{}) {
	defer close(s.out)
	for {
		s.mu.Lock()
		for len(s.items) == 0 {
			if s.ended {
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
			select {
			case <-s.wake:
			case <-abandon:
				return
			}
			s.mu.Lock()
		}
		// Peek, not pop: the item counts against the capacity until handed
		// over. Only this goroutine removes items.
		next := s.items[0]
		s.mu.Unlock()
		if next.gap != nil {
			if s.onGap != nil {
				s.onGap(*next.gap)
			}
		} else {
			select {
			case s.out <- next.msg:
			case <-abandon:
				return
			}
		}
		s.mu.Lock()
		s.items[0] = item{}
		s.items = s.items[1:]
		s.mu.Unlock()
	}
}
