package switchboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// Client is a Switchboard connection that reconnects on its own. Create one
// with [Dial]; it is safe for concurrent use. Always call [Client.Close]
// when done: it ends every goroutine the client started.
type Client struct {
	url   string
	cfg   config
	types *TypeRegistry
	log   *slog.Logger
	// transport dials every connection of this client; its idle
	// connections are closed after each handshake.
	transport *http.Transport
	// slots bounds the commands waiting or in flight.
	slots         chan struct{}
	directs       *dropOldest[*DirectMessage]
	notifications *dropOldest[*Notification]
	states        *dropOldest[StateChange]
	// serverSubs announces the subscriptions a backend made (Subscribed
	// pushes).
	serverSubs *dropOldest[*Subscription]
	// ctx lives until the client is closed; reconnect attempts use it.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed on entering StateClosed.
	done chan struct{}
	// abandon is closed by Close: delivery goroutines stop at once.
	abandon chan struct{}
	// wg counts the supervisor, readers, watchdogs and delivery goroutines.
	wg sync.WaitGroup

	// mu guards the fields below. Lock order: mu before a connection's mu
	// (never the reverse); no lock is held while calling the application or
	// waiting.
	mu    sync.Mutex
	state State
	// conn is the current connection; replaced by each successful
	// reconnect.
	conn *connection
	// ready is closed while conn is usable (readyOpen); commands wait on it.
	ready     chan struct{}
	readyOpen bool
	// subs are the joined rooms (by Join or by a backend's Subscribed
	// push), rejoined after every reconnect.
	subs         map[string]*Subscription
	connectReply *switchboardv1.ConnectReply
	// token is sent in every connect: the WithToken one until a Refresh
	// succeeds, then the refreshed one.
	token string
	// expiresAtMs is when token expires (Unix milliseconds; 0: never), as
	// the last connect or refresh reply said.
	expiresAtMs int64
	// closing is set by Close: nothing reconnects any more.
	closing bool
	// final is the StateClosed change, once closed.
	final *StateChange
}

// Dial connects to url (e.g. "ws://127.0.0.1:8080/ws"), authenticates, and
// returns the client once it is connected. The first connection is not
// retried: Dial returns a [*ServerError] if the login is refused, a
// [*ClosedError] if the server cannot be reached, a [*TimeoutError] if it
// does not answer in time. After that the client reconnects on its own.
//
// ctx bounds the first connection only; the client lives until Close.
// Authenticate [WithToken], or [WithName] on a development-mode server.
func Dial(ctx context.Context, url string, opts ...Option) (*Client, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		opt(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	types := cfg.registry
	if types == nil {
		types, _ = NewTypeRegistry()
	}
	for _, t := range cfg.types {
		if err := types.Register(t); err != nil {
			return nil, err
		}
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lifetime, cancel := context.WithCancel(context.Background())
	c := &Client{
		url:           url,
		cfg:           cfg,
		types:         types,
		log:           log,
		transport:     newTransport(),
		slots:         make(chan struct{}, cfg.maxInFlight),
		directs:       newDropOldest[*DirectMessage](cfg.bufferSize),
		notifications: newDropOldest[*Notification](cfg.bufferSize),
		states:        newDropOldest[StateChange](cfg.bufferSize),
		serverSubs:    newDropOldest[*Subscription](cfg.bufferSize),
		ctx:           lifetime,
		cancel:        cancel,
		done:          make(chan struct{}),
		abandon:       make(chan struct{}),
		state:         StateConnecting,
		ready:         make(chan struct{}),
		subs:          make(map[string]*Subscription),
		token:         cfg.token,
	}
	c.states.push(StateChange{State: StateConnecting})
	conn, err := c.open(ctx)
	if err != nil {
		var closed *ClosedError
		if errors.As(err, &closed) {
			c.finish(closed.Code, closed.Reason, err)
		} else {
			c.finish(0, err.Error(), err)
		}
		close(c.abandon)
		c.wg.Wait()
		c.transport.CloseIdleConnections()
		return nil, err
	}
	c.wg.Add(1)
	go c.supervise(conn)
	return c, nil
}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// A WebSocket handshake is HTTP/1.1 only.
	t.ForceAttemptHTTP2 = false
	return t
}

// State is the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// StateChanges is every state transition, in order, from the first
// StateConnecting on (the ones before Dial returned are buffered). Up to the
// buffer size of them wait; beyond that the oldest are dropped. The channel
// is closed after the StateClosed change.
func (c *Client) StateChanges() <-chan StateChange { return c.states.ch }

// Done is closed when the client enters StateClosed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil until Done is closed; then nil if the client was closed with
// Close, or the error that ended it (a [*ClosedError] with the server's
// close code, or the [*ServerError] that refused a reconnect's login).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final == nil {
		return nil
	}
	return c.final.Err
}

// User is the authenticated user id.
func (c *Client) User() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connectReply.GetUser()
}

// ClientID is the server's id of the current connection; it changes on
// reconnect.
func (c *Client) ClientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connectReply.GetClient()
}

// ExpiresAt is when the connection's token expires, as the server said in
// the connect reply or the last [Client.Refresh] reply; the zero Time when
// it never expires (or the client connected [WithName]). Refresh before
// then, or the server closes the connection with 1008 and the client ends.
func (c *Client) ExpiresAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiresAtMs == 0 {
		return time.Time{}
	}
	return time.UnixMilli(c.expiresAtMs)
}

// Types is the registry of payload types decoded on receipt.
func (c *Client) Types() *TypeRegistry { return c.types }

// DirectMessages is the direct messages to this user, in arrival order. Up
// to the buffer size of them wait; beyond that the oldest are dropped. The
// channel is closed when the client closes, once its messages are read.
func (c *Client) DirectMessages() <-chan *DirectMessage { return c.directs.ch }

// Notifications is the notifications from backends, to this user or to a
// joined room; buffered and closed like [Client.DirectMessages].
func (c *Client) Notifications() <-chan *Notification { return c.notifications.ch }

// ServerSubscriptions is the subscriptions a backend made for this
// connection through the server's HTTP API (PUT
// /api/v1/users/{user}/rooms/{room}), in arrival order. Each is a
// [*Subscription] like the ones [Client.Join] returns, starting at the
// room's position when the backend subscribed: receive its messages from
// [Subscription.Messages]. It is rejoined with since after a reconnect like
// a joined room, and ends (Messages is closed once read, Err is nil) when
// the backend unsubscribes the connection, or with [Subscription.Leave].
// A room this client has already joined is not announced again: its
// subscription keeps receiving the messages.
//
// Read it: up to the buffer size of subscriptions wait; beyond that the
// oldest announcements are dropped (their subscriptions stay joined, and
// [Client.Leave] leaves them). The channel is closed when the client
// closes, once read. [WithServerSubscriptionOptions] sets their
// [JoinOption]s.
func (c *Client) ServerSubscriptions() <-chan *Subscription { return c.serverSubs.ch }

// Join joins room and returns its [Subscription]. With since (a saved
// [Subscription.Position]), the messages after it are delivered first when
// the server still has them ([Subscription.Recovered] says whether it did);
// nil joins from now.
func (c *Client) Join(ctx context.Context, room string, since *switchboardv1.StreamPosition, opts ...JoinOption) (*Subscription, error) {
	var o joinOptions
	for _, opt := range opts {
		opt(&o)
	}
	sub := newSubscription(c, room, o)
	request := &switchboardv1.JoinRequest{Room: room, PresenceEvents: o.presenceEvents}
	if since != nil {
		since = proto.Clone(since).(*switchboardv1.StreamPosition)
		request.Since = since
	}
	started := false
	joined := func(frame *switchboardv1.ServerFrame) {
		c.mu.Lock()
		if c.final != nil { // the reply raced the close: nothing will arrive
			c.mu.Unlock()
			return
		}
		c.subs[room] = sub
		started = true
		// On the reader goroutine, which the wait group counts: Add is safe.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			sub.run(c.abandon)
		}()
		c.mu.Unlock()
		sub.joined(frame.GetJoin(), since)
	}
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Join{Join: request}}
	if _, err := c.command(ctx, "join", frame, true, joined); err != nil {
		return nil, err
	}
	c.mu.Lock()
	ok := started
	c.mu.Unlock()
	if !ok {
		return nil, c.closedError()
	}
	return sub, nil
}

// Leave leaves room (as [Subscription.Leave] does). Leaving a room that was
// not joined fails with ERROR_CODE_NOT_JOINED.
func (c *Client) Leave(ctx context.Context, room string) error {
	if sub := c.subscription(room); sub != nil {
		return c.leaveSubscription(ctx, sub)
	}
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Leave{Leave: &switchboardv1.LeaveRequest{Room: room}}}
	_, err := c.command(ctx, "leave", frame, true, nil)
	return err
}

// Direct sends content (see [Content]) to every connection of user. It
// succeeds, delivering nothing, when the user is not connected.
func (c *Client) Direct(ctx context.Context, user string, content Content) (*switchboardv1.DirectReply, error) {
	payload, err := ToPayload(content)
	if err != nil {
		return nil, err
	}
	request := &switchboardv1.DirectRequest{User: user, Payload: payload}
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Direct{Direct: request}}
	reply, err := c.command(ctx, "direct", frame, false, nil)
	if err != nil {
		return nil, err
	}
	return reply.GetDirect(), nil
}

// History reads a page of room's history; joining is not required. See
// [HistoryQuery] for paging.
func (c *Client) History(ctx context.Context, room string, q HistoryQuery) (*HistoryPage, error) {
	request := &switchboardv1.HistoryRequest{Room: room, Limit: q.Limit, Before: q.Before, After: q.After}
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_History{History: request}}
	reply, err := c.command(ctx, "history", frame, true, nil)
	if err != nil {
		return nil, err
	}
	h := reply.GetHistory()
	page := &HistoryPage{
		Messages: make([]*Message, 0, len(h.GetMessages())),
		Position: h.GetPosition(),
		HasMore:  h.GetHasMore(),
	}
	if page.Position == nil {
		page.Position = &switchboardv1.StreamPosition{}
	}
	for _, m := range h.GetMessages() {
		page.Messages = append(page.Messages, newMessage(m, c.types, c.log))
	}
	return page, nil
}

// Presence lists the connections present in room, in no particular order;
// joining is not required.
func (c *Client) Presence(ctx context.Context, room string) ([]*switchboardv1.Member, error) {
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Presence{Presence: &switchboardv1.PresenceRequest{Room: room}}}
	reply, err := c.command(ctx, "presence", frame, true, nil)
	if err != nil {
		return nil, err
	}
	return reply.GetPresence().GetMembers(), nil
}

// Ping measures a round trip to the server; the reply carries the server's
// time.
func (c *Client) Ping(ctx context.Context) (*switchboardv1.PingReply, error) {
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Ping{Ping: &switchboardv1.PingRequest{}}}
	reply, err := c.command(ctx, "ping", frame, true, nil)
	if err != nil {
		return nil, err
	}
	return reply.GetPing(), nil
}

// Refresh replaces the connection's token with token (a JWT, as
// [WithToken]), e.g. shortly before [Client.ExpiresAt]. The new token must
// be valid and name the same user; its expiry and room grants replace the
// old ones. The reply's ExpiresAtMs is the new expiry (Unix milliseconds; 0:
// never). From then on every reconnect authenticates with the new token.
//
// A refused token (invalid, expired, or another user's) fails with a
// [*ServerError] (ERROR_CODE_UNAUTHORIZED or ERROR_CODE_TOKEN_EXPIRED), and
// the server closes the connection with 1008: the client ends, as it does
// when a token expires without a refresh. A refresh cut off by a lost
// connection is sent again on the next one.
func (c *Client) Refresh(ctx context.Context, token string) (*switchboardv1.RefreshReply, error) {
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Refresh{Refresh: &switchboardv1.RefreshRequest{Token: token}}}
	// On the reader goroutine, before the connection can end: a reconnect
	// after this reply already uses the new token.
	refreshed := func(f *switchboardv1.ServerFrame) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.token = token
		c.expiresAtMs = f.GetRefresh().GetExpiresAtMs()
	}
	reply, err := c.command(ctx, "refresh", frame, true, refreshed)
	if err != nil {
		return nil, err
	}
	return reply.GetRefresh(), nil
}

// Close closes the connection (code 1000) for good and waits for every
// goroutine of the client to end. Subscriptions end (their Messages channels
// are closed; messages not yet received are dropped), DirectMessages,
// Notifications and StateChanges are closed once read, and waiting commands
// fail with a [*ClosedError]. Idempotent; always returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.done
		c.wg.Wait()
		return nil
	}
	c.closing = true
	conn := c.conn
	c.mu.Unlock()
	c.finish(1000, "client closed", nil)
	close(c.abandon)
	if conn != nil {
		closeGracefully(conn)
	}
	c.wg.Wait()
	c.transport.CloseIdleConnections()
	return nil
}

// closeGracefully sends close 1000 and waits for the server's answer, or
// aborts the connection after closeTimeout; then waits for its reader.
func closeGracefully(conn *connection) {
	if conn.isAlive() {
		timer := time.AfterFunc(closeTimeout, conn.cancel)
		_ = conn.ws.Close(1000, "client closed")
		timer.Stop()
	}
	conn.cancel()
	<-conn.done
}

// subscribed handles a Subscribed push on the reader goroutine: a backend
// made this connection a member of a room. Its messages after the pushed
// position follow on this connection.
func (c *Client) subscribed(push *switchboardv1.Subscribed) {
	room := push.GetRoom()
	c.mu.Lock()
	if c.final != nil {
		c.mu.Unlock()
		return
	}
	if sub := c.subs[room]; sub != nil {
		// Already subscribed (joined, or a rejoin racing the backend): keep
		// it, and start over from where the membership now begins.
		c.mu.Unlock()
		sub.resubscribed(push.GetPosition())
		return
	}
	opts := c.cfg.serverSubscription
	if push.GetPresenceEvents() {
		// The backend asked for them; rejoins ask too.
		opts.presenceEvents = true
	}
	sub := newSubscription(c, room, opts)
	sub.subscribed(push.GetPosition())
	c.subs[room] = sub
	// On the reader goroutine, which the wait group counts: Add is safe.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		sub.run(c.abandon)
	}()
	c.mu.Unlock()
	c.serverSubs.push(sub)
}

// unsubscribed handles an Unsubscribed push on the reader goroutine: a
// backend ended this connection's membership of a room. Its subscription
// ends as after Leave.
func (c *Client) unsubscribed(push *switchboardv1.Unsubscribed) {
	c.mu.Lock()
	sub := c.subs[push.GetRoom()]
	delete(c.subs, push.GetRoom())
	c.mu.Unlock()
	if sub != nil {
		sub.end(nil)
	}
}

// subscription is the subscription of room, if joined.
func (c *Client) subscription(room string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[room]
}

func (c *Client) leaveSubscription(ctx context.Context, sub *Subscription) error {
	c.mu.Lock()
	if c.subs[sub.room] == sub {
		delete(c.subs, sub.room)
	}
	connected := c.state == StateConnected
	c.mu.Unlock()
	if !sub.end(nil) || !connected {
		return nil // not joined on any live connection: it will not be rejoined
	}
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Leave{Leave: &switchboardv1.LeaveRequest{Room: sub.room}}}
	_, err := c.command(ctx, "leave", frame, false, nil)
	var lost *ConnectionLostError
	switch {
	case err == nil, errors.As(err, &lost), errors.Is(err, ErrClosed):
		return nil // the connection is gone, and the room with it
	case CodeOf(err) == switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED:
		return nil
	}
	return err
}

// closedError is the error of commands on a closed client.
func (c *Client) closedError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closedErrorLocked()
}

func (c *Client) closedErrorLocked() error {
	if c.final == nil {
		return &ClosedError{Code: 1000, Reason: "client closed"}
	}
	return &ClosedError{Code: c.final.Code, Reason: c.final.Reason, Err: c.final.Err}
}

// finish enters StateClosed for good: wakes waiting commands and ends the
// subscriptions and event channels.
func (c *Client) finish(code int, reason string, err error) {
	c.mu.Lock()
	if c.final != nil {
		c.mu.Unlock()
		return
	}
	change := StateChange{State: StateClosed, Code: code, Reason: reason, Err: err}
	c.final = &change
	c.state = StateClosed
	var endErr error
	if !c.closing {
		endErr = c.closedErrorLocked()
	}
	subs := make([]*Subscription, 0, len(c.subs))
	for room, sub := range c.subs {
		subs = append(subs, sub)
		delete(c.subs, room)
	}
	c.states.push(change)
	c.states.close()
	close(c.done)
	c.mu.Unlock()
	c.cancel()
	for _, sub := range subs {
		sub.end(endErr)
	}
	c.directs.close()
	c.notifications.close()
	c.serverSubs.close()
}

// command sends a command once connected and returns its reply, within the
// command timeout (which includes waiting for a reconnect) and ctx.
// Commands that are safe to repeat (retry) are sent again on the next
// connection when theirs is lost before the reply.
func (c *Client) command(ctx context.Context, name string, frame *switchboardv1.ClientFrame, retry bool, onReply func(*switchboardv1.ServerFrame)) (*switchboardv1.ServerFrame, error) {
	limit := c.cfg.commandTimeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < limit {
		limit = max(time.Until(deadline), 0)
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.commandTimeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-c.done:
		return nil, c.closedError()
	case <-cctx.Done():
		return nil, contextError(ctx, name, limit)
	}
	// Each round needs a new connection, so the loop is bounded by cctx.
	for {
		conn, err := c.waitReady(cctx)
		if err != nil {
			if cctx.Err() != nil {
				return nil, contextError(ctx, name, limit)
			}
			return nil, err
		}
		r, err := c.send(cctx, conn, name, frame, retry, onReply)
		if errors.Is(err, errNotSent) {
			continue
		}
		if err != nil {
			if cctx.Err() != nil {
				return nil, contextError(ctx, name, limit)
			}
			return nil, err
		}
		if r.lost {
			continue // safe to send again: wait for the next connection
		}
		if r.err != nil {
			return nil, r.err
		}
		return r.frame, nil
	}
}

// contextError is the error of a command whose context ended: a
// [*TimeoutError] for a deadline (the command timeout's or ctx's), ctx's
// own error for a cancellation.
func contextError(ctx context.Context, name string, limit time.Duration) error {
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &TimeoutError{Command: name, After: limit}
}

// waitReady returns the usable connection, waiting for one while the client
// is (re)connecting.
func (c *Client) waitReady(ctx context.Context) (*connection, error) {
	for {
		c.mu.Lock()
		if c.final != nil {
			c.mu.Unlock()
			return nil, c.closedError()
		}
		if c.readyOpen && c.conn != nil {
			conn := c.conn
			c.mu.Unlock()
			return conn, nil
		}
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// send sends frame on conn and waits for its result. errNotSent: conn had
// already ended (safe to send on the next).
func (c *Client) send(ctx context.Context, conn *connection, name string, frame *switchboardv1.ClientFrame, retry bool, onReply func(*switchboardv1.ServerFrame)) (result, error) {
	inf, id, err := c.start(conn, name, frame, retry, onReply)
	if err != nil {
		return result{}, err
	}
	return c.await(ctx, conn, id, inf)
}

// start registers a command on conn and writes it.
func (c *Client) start(conn *connection, name string, frame *switchboardv1.ClientFrame, retry bool, onReply func(*switchboardv1.ServerFrame)) (*inflight, uint32, error) {
	inf := &inflight{command: name, retry: retry, onReply: onReply, done: make(chan result, 1)}
	id, ok := conn.register(inf)
	if !ok {
		return nil, 0, errNotSent
	}
	// Each send gets its own copy: a retried command is never mutated while
	// an earlier send of it may still be encoding.
	frame = proto.Clone(frame).(*switchboardv1.ClientFrame)
	frame.Id = id
	data, err := proto.Marshal(frame)
	if err != nil {
		conn.forget(id, inf)
		return nil, 0, fmt.Errorf("switchboard: encoding %s: %w", name, err)
	}
	// A failed write needs no handling here: the reader sees the connection
	// end too and settles inf like everything in flight.
	_ = conn.write(data, c.cfg.commandTimeout)
	return inf, id, nil
}

// await waits for the result of inf, or for ctx.
func (c *Client) await(ctx context.Context, conn *connection, id uint32, inf *inflight) (result, error) {
	select {
	case r := <-inf.done:
		return r, nil
	case <-ctx.Done():
		if conn.forget(id, inf) {
			return result{}, ctx.Err()
		}
		// The reader took the reply first: it is on its way.
		return <-inf.done, nil
	}
}

// call is a command of the connection handshake: on conn itself, not
// waiting for StateConnected, failing when the connection is lost.
func (c *Client) call(ctx context.Context, conn *connection, name string, frame *switchboardv1.ClientFrame, onReply func(*switchboardv1.ServerFrame)) (*switchboardv1.ServerFrame, error) {
	limit := c.cfg.commandTimeout
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	r, err := c.send(cctx, conn, name, frame, false, onReply)
	if errors.Is(err, errNotSent) {
		return nil, &ConnectionLostError{Command: name}
	}
	if err != nil {
		if cctx.Err() != nil {
			return nil, contextError(ctx, name, limit)
		}
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	return r.frame, nil
}
