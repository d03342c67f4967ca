package switchboard

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// Subprotocol is the WebSocket subprotocol this SDK speaks: one binary
// protobuf envelope per frame.
const Subprotocol = "switchboard.v1.proto"

const (
	// maxFrameSize is the largest frame accepted from the server: a full
	// history page (1000 messages of up to 64 KiB) fits. The server is
	// trusted; this only bounds memory.
	maxFrameSize = 128 << 20
	// closeTimeout bounds the close handshake of Client.Close.
	closeTimeout = 2 * time.Second
)

// errNotSent says a command was not sent because its connection had already
// ended: it is safe to send on the next one.
var errNotSent = errors.New("switchboard: connection ended before the command was sent")

// result settles a command in flight.
type result struct {
	// frame is the reply (nil with err or lost).
	frame *switchboardv1.ServerFrame
	// err is the command's failure.
	err error
	// lost is true when the connection ended first and the command is safe
	// to send again on the next one.
	lost bool
}

// inflight is a command sent on a connection, waiting for its reply.
type inflight struct {
	// command is the command's name, also the reply kind expected.
	command string
	// retry tells whether the command may be sent again after a lost
	// connection.
	retry bool
	// onReply runs on the reader goroutine with a successful reply, before
	// any later frame is dispatched (join uses it so that no live message can
	// overtake the reply).
	onReply func(*switchboardv1.ServerFrame)
	// done receives exactly one result; its capacity of 1 means the reader
	// never blocks on it.
	done chan result
}

// closeInfo is how a connection ended.
type closeInfo struct {
	code      int
	reason    string
	reconnect bool
}

// connection is one WebSocket and the commands in flight on it.
type connection struct {
	ws *websocket.Conn
	// ctx is the reader's context; cancel aborts the connection without a
	// close handshake (the socket is closed at once).
	ctx    context.Context
	cancel context.CancelFunc
	// lastSeen is when anything (a frame or a ping) last arrived, in Unix
	// nanoseconds; the watchdog reads it.
	lastSeen *atomic.Int64
	// done is closed when the reader has ended; info is set before.
	done chan struct{}
	info closeInfo

	mu sync.Mutex
	// pending holds the commands awaiting their reply, by request id.
	pending map[uint32]*inflight
	lastID  uint32
	// alive is false once the reader has seen the connection end.
	alive bool
	// disconnect is the server's Disconnect push, when one preceded the
	// close.
	disconnect *switchboardv1.Disconnect
}

func newConnection(ws *websocket.Conn, lastSeen *atomic.Int64) *connection {
	ctx, cancel := context.WithCancel(context.Background())
	return &connection{
		ws:       ws,
		ctx:      ctx,
		cancel:   cancel,
		lastSeen: lastSeen,
		done:     make(chan struct{}),
		pending:  make(map[uint32]*inflight),
		alive:    true,
	}
}

// register gives inf a request id unused on this connection; false when the
// connection has ended.
func (c *connection) register(inf *inflight) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.alive {
		return 0, false
	}
	// Ids wrap around; at most len(pending)+1 candidates are in use or tried.
	for range len(c.pending) + 1 {
		c.lastID++
		if c.lastID == 0 {
			c.lastID = 1
		}
		if _, used := c.pending[c.lastID]; !used {
			break
		}
	}
	c.pending[c.lastID] = inf
	return c.lastID, true
}

// take removes and returns the command waiting for id (nil: none, e.g. it
// timed out).
func (c *connection) take(id uint32) *inflight {
	c.mu.Lock()
	defer c.mu.Unlock()
	inf := c.pending[id]
	delete(c.pending, id)
	return inf
}

// forget removes inf (given up by its caller); false when the reader took it
// first, so its result is on the way.
func (c *connection) forget(id uint32, inf *inflight) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[id] != inf {
		return false
	}
	delete(c.pending, id)
	return true
}

// end marks the connection ended and returns what was in flight.
func (c *connection) end() []*inflight {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.alive = false
	pending := make([]*inflight, 0, len(c.pending))
	for id, inf := range c.pending {
		pending = append(pending, inf)
		delete(c.pending, id)
	}
	return pending
}

func (c *connection) isAlive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.alive
}

func (c *connection) setDisconnect(d *switchboardv1.Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.disconnect = d
}

func (c *connection) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// write sends one encoded frame.
func (c *connection) write(data []byte, timeout time.Duration) error {
	// The connection's context, not the command's: a write cut off halfway
	// would break the framing, so only a write that cannot finish in time
	// (and so closes the connection) is abandoned.
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageBinary, data)
}

// replyKind names the kind of a reply frame as its command is named.
func replyKind(f *switchboardv1.ServerFrame) string {
	switch f.GetKind().(type) {
	case *switchboardv1.ServerFrame_Error:
		return "error"
	case *switchboardv1.ServerFrame_Connect:
		return "connect"
	case *switchboardv1.ServerFrame_Join:
		return "join"
	case *switchboardv1.ServerFrame_Leave:
		return "leave"
	case *switchboardv1.ServerFrame_Publish:
		return "publish"
	case *switchboardv1.ServerFrame_Direct:
		return "direct"
	case *switchboardv1.ServerFrame_History:
		return "history"
	case *switchboardv1.ServerFrame_Presence:
		return "presence"
	case *switchboardv1.ServerFrame_Ping:
		return "ping"
	case *switchboardv1.ServerFrame_Refresh:
		return "refresh"
	case nil:
		return "empty"
	}
	return "push"
}

// read is a connection's reader goroutine: it dispatches every frame in
// arrival order until the connection ends, then settles what was in flight.
func (c *Client) read(conn *connection) {
	defer c.wg.Done()
	code, reason := closeAbnormal, ""
	for {
		typ, data, err := conn.ws.Read(conn.ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				code, reason = int(ce.Code), ce.Reason
			}
			break
		}
		conn.touch()
		if typ != websocket.MessageBinary {
			c.log.Warn("switchboard: ignoring a text frame on the binary protocol")
			continue
		}
		frame := &switchboardv1.ServerFrame{}
		if err := proto.Unmarshal(data, frame); err != nil {
			c.log.Warn("switchboard: ignoring an undecodable frame", "error", err)
			continue
		}
		c.dispatch(conn, frame)
	}
	c.lost(conn)
	conn.mu.Lock()
	disconnect := conn.disconnect
	conn.mu.Unlock()
	info := closeInfo{code: code, reason: reason, reconnect: ShouldReconnect(code)}
	if disconnect != nil {
		info.reconnect = disconnect.GetReconnect()
		if disconnect.GetCode() != 0 {
			info.code = int(disconnect.GetCode())
		}
		if disconnect.GetReason() != "" {
			info.reason = disconnect.GetReason()
		}
	}
	conn.info = info
	close(conn.done)
}

// dispatch handles one frame on the reader goroutine.
func (c *Client) dispatch(conn *connection, frame *switchboardv1.ServerFrame) {
	if id := frame.GetId(); id != 0 {
		inf := conn.take(id)
		if inf == nil {
			return // its command gave up (timed out)
		}
		switch kind := replyKind(frame); kind {
		case "error":
			inf.done <- result{err: newServerError(frame.GetError(), inf.command)}
		case inf.command:
			if inf.onReply != nil {
				inf.onReply(frame)
			}
			inf.done <- result{frame: frame}
		default:
			inf.done <- result{err: &ServerError{
				Code:    switchboardv1.ErrorCode_ERROR_CODE_INTERNAL,
				Message: "unexpected " + kind + " reply",
				Command: inf.command,
			}}
		}
		return
	}
	switch kind := frame.GetKind().(type) {
	case *switchboardv1.ServerFrame_Message:
		if sub := c.subscription(kind.Message.GetRoom()); sub != nil {
			sub.deliver(kind.Message)
		}
	case *switchboardv1.ServerFrame_MemberJoined:
		ev := kind.MemberJoined
		if sub := c.subscription(ev.GetRoom()); sub != nil {
			sub.presenceEvent(PresenceEvent{Kind: MemberJoined, Room: ev.GetRoom(), Member: ev.GetMember()})
		}
	case *switchboardv1.ServerFrame_MemberLeft:
		ev := kind.MemberLeft
		if sub := c.subscription(ev.GetRoom()); sub != nil {
			sub.presenceEvent(PresenceEvent{Kind: MemberLeft, Room: ev.GetRoom(), Member: ev.GetMember()})
		}
	case *switchboardv1.ServerFrame_Subscribed:
		c.subscribed(kind.Subscribed)
	case *switchboardv1.ServerFrame_Unsubscribed:
		c.unsubscribed(kind.Unsubscribed)
	case *switchboardv1.ServerFrame_DirectMessage:
		m := kind.DirectMessage
		c.directs.push(&DirectMessage{
			ID:          m.GetId(),
			Sender:      m.GetSender(),
			TimestampMs: m.GetTimestampMs(),
			Body:        newBody(m.GetPayload(), c.types, c.log),
		})
	case *switchboardv1.ServerFrame_Notification:
		n := kind.Notification
		c.notifications.push(&Notification{
			ID:          n.GetId(),
			Room:        n.GetRoom(),
			TimestampMs: n.GetTimestampMs(),
			Body:        newBody(n.GetPayload(), c.types, c.log),
		})
	case *switchboardv1.ServerFrame_Disconnect:
		conn.setDisconnect(kind.Disconnect)
	case *switchboardv1.ServerFrame_Error:
		c.log.Warn("switchboard: the server rejected a frame", "code", kind.Error.GetCode(), "message", kind.Error.GetMessage())
	}
	// Any other kind is from a newer protocol: ignored.
}

// lost settles what was in flight on a connection that ended.
func (c *Client) lost(conn *connection) {
	// Under the client's lock, so that open (which checks that the
	// connection is alive before handing it out, under the same lock) and
	// this never interleave: either the connection is never handed out, or
	// it is withdrawn here.
	c.mu.Lock()
	if c.conn == conn && c.readyOpen {
		c.ready = make(chan struct{})
		c.readyOpen = false
	}
	pending := conn.end()
	closing := c.closing
	c.mu.Unlock()
	for _, inf := range pending {
		switch {
		case closing:
			inf.done <- result{err: c.closedError()}
		case inf.retry:
			inf.done <- result{lost: true}
		default:
			inf.done <- result{err: &ConnectionLostError{Command: inf.command}}
		}
	}
}

// watch is a connection's watchdog goroutine. The server pings every
// interval; when nothing at all arrived for two intervals the server (or
// the path to it) is gone, and the connection is aborted so the client
// reconnects.
func (c *Client) watch(conn *connection, interval time.Duration) {
	defer c.wg.Done()
	limit := 2 * interval
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case <-conn.done:
			return
		case <-timer.C:
			quiet := time.Since(time.Unix(0, conn.lastSeen.Load()))
			if quiet >= limit {
				c.log.Warn("switchboard: nothing received from the server; dropping the connection", "quiet", quiet)
				conn.cancel()
				return
			}
			timer.Reset(limit - quiet)
		}
	}
}
