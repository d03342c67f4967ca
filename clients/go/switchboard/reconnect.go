package switchboard

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// open dials, authenticates and rejoins every room, then enters
// StateConnected. ctx bounds it (each step also has the command timeout).
func (c *Client) open(ctx context.Context) (*connection, error) {
	var lastSeen atomic.Int64
	lastSeen.Store(time.Now().UnixNano())
	dialCtx, cancel := context.WithTimeout(ctx, c.cfg.commandTimeout)
	ws, _, err := websocket.Dial(dialCtx, c.url, &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: c.transport},
		HTTPHeader:   c.cfg.header,
		Subprotocols: []string{Subprotocol},
		OnPingReceived: func(context.Context, []byte) bool {
			lastSeen.Store(time.Now().UnixNano())
			return true
		},
	})
	cancel()
	c.transport.CloseIdleConnections()
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, ctx.Err()
		}
		return nil, &ClosedError{Reason: fmt.Sprintf("cannot connect to %s: %v", c.url, err), Err: err}
	}
	if ws.Subprotocol() != Subprotocol {
		_ = ws.CloseNow()
		return nil, &ClosedError{Reason: fmt.Sprintf("the server did not accept the subprotocol %s", Subprotocol)}
	}
	ws.SetReadLimit(maxFrameSize)
	conn := newConnection(ws, &lastSeen)
	c.wg.Add(1)
	go c.read(conn)

	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	connect := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Connect{Connect: &switchboardv1.ConnectRequest{
		Token: token,
		Name:  c.cfg.name,
	}}}
	reply, err := c.call(ctx, conn, "connect", connect, nil)
	if err != nil {
		abandon(conn)
		return nil, err
	}
	if interval := time.Duration(reply.GetConnect().GetPingIntervalMs()) * time.Millisecond; interval > 0 {
		c.wg.Add(1)
		go c.watch(conn, interval)
	}
	c.mu.Lock()
	c.connectReply = reply.GetConnect()
	c.expiresAtMs = reply.GetConnect().GetExpiresAtMs()
	c.mu.Unlock()
	if err := c.rejoin(ctx, conn); err != nil {
		abandon(conn)
		return nil, err
	}

	c.mu.Lock()
	if c.closing || c.final != nil {
		err := c.closedErrorLocked()
		c.mu.Unlock()
		abandon(conn)
		return nil, err
	}
	if !conn.isAlive() { // lost right after the handshake: try again
		c.mu.Unlock()
		abandon(conn)
		return nil, &ConnectionLostError{Command: "connect"}
	}
	c.conn = conn
	c.state = StateConnected
	c.states.push(StateChange{State: StateConnected})
	close(c.ready)
	c.readyOpen = true
	c.mu.Unlock()
	return conn, nil
}

// rejoin joins every subscribed room on conn with since = its position.
// The joins are pipelined: all are sent, then their replies awaited.
func (c *Client) rejoin(ctx context.Context, conn *connection) error {
	c.mu.Lock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		subs = append(subs, sub)
	}
	c.mu.Unlock()
	if len(subs) == 0 {
		return nil
	}
	type pendingJoin struct {
		sub *Subscription
		inf *inflight
		id  uint32
	}
	joins := make([]pendingJoin, 0, len(subs))
	for _, sub := range subs {
		frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Join{Join: sub.joinRequest()}}
		inf, id, err := c.start(conn, "join", frame, false, func(f *switchboardv1.ServerFrame) {
			sub.rejoined(f.GetJoin())
		})
		if errors.Is(err, errNotSent) {
			return &ConnectionLostError{Command: "join"}
		}
		if err != nil {
			return err
		}
		joins = append(joins, pendingJoin{sub, inf, id})
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.commandTimeout)
	defer cancel()
	for _, j := range joins {
		r, err := c.await(wctx, conn, j.id, j.inf)
		if err != nil {
			return contextError(ctx, "join", c.cfg.commandTimeout)
		}
		var se *ServerError
		switch {
		case CodeOf(r.err) == switchboardv1.ErrorCode_ERROR_CODE_ALREADY_JOINED:
			// A backend subscribed this connection first (its Subscribed
			// push was applied to the subscription): still a member.
		case errors.As(r.err, &se) && !se.Temporary:
			// This room cannot be rejoined (e.g. access was revoked).
			c.log.Warn("switchboard: cannot rejoin a room", "room", j.sub.room, "error", r.err)
			c.mu.Lock()
			if c.subs[j.sub.room] == j.sub {
				delete(c.subs, j.sub.room)
			}
			c.mu.Unlock()
			j.sub.end(r.err)
		case r.err != nil:
			return r.err
		case c.subscription(j.sub.room) != j.sub:
			// Left while it was being rejoined: leave it on this connection.
			leave := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Leave{Leave: &switchboardv1.LeaveRequest{Room: j.sub.room}}}
			_, _ = c.call(ctx, conn, "leave", leave, nil)
		}
	}
	return nil
}

// abandon aborts a connection that will not be used and waits for its
// reader.
func abandon(conn *connection) {
	conn.cancel()
	<-conn.done
}

// supervise is the supervisor goroutine: after every lost connection it
// reconnects, until the client is closed or a close code is terminal.
func (c *Client) supervise(conn *connection) {
	defer c.wg.Done()
	for {
		<-conn.done
		if c.isClosing() {
			return
		}
		info := conn.info
		if !info.reconnect {
			c.finish(info.code, info.reason, &ClosedError{Code: info.code, Reason: info.reason})
			return
		}
		next := c.reconnect(info)
		if next == nil {
			return
		}
		conn = next
	}
}

func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing || c.final != nil
}

// reconnect makes attempts with full-jitter backoff until one succeeds (the
// new connection), the client is closed, or a login is refused for good
// (nil). Attempts continue as long as the client lives; each waits at least
// its backoff delay and is bounded by the command timeout.
func (c *Client) reconnect(info closeInfo) *connection {
	code, reason := info.code, info.reason
	for attempt := 0; ; attempt++ {
		delay := c.cfg.backoff.Delay(attempt, rand.Float64)
		c.mu.Lock()
		if c.final != nil {
			c.mu.Unlock()
			return nil
		}
		c.state = StateReconnecting
		if c.readyOpen { // the reader withdraws it too; make sure
			c.ready = make(chan struct{})
			c.readyOpen = false
		}
		c.states.push(StateChange{State: StateReconnecting, Code: code, Reason: reason, Attempt: attempt + 1, Delay: delay})
		c.mu.Unlock()
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-c.ctx.Done():
			timer.Stop()
			return nil
		}
		conn, err := c.open(c.ctx)
		if err == nil {
			return conn
		}
		if c.isClosing() {
			return nil
		}
		var se *ServerError
		var closed *ClosedError
		switch {
		case errors.As(err, &se) && !se.Temporary:
			// E.g. the token expired: retrying cannot help.
			c.finish(0, err.Error(), err)
			return nil
		case errors.As(err, &closed):
			code, reason = closed.Code, closed.Reason
		default:
			code, reason = 0, err.Error()
		}
		c.log.Info("switchboard: reconnect attempt failed", "attempt", attempt+1, "error", err)
	}
}
