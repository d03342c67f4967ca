package switchboard

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// Content is what [Client.Publish] and [Client.Direct] accept:
//   - a string: a text payload;
//   - a []byte: opaque application bytes, untyped;
//   - a *switchboardv1.Payload: sent as it is (text, data and type_name);
//   - any other generated protobuf message: a typed payload, its binary
//     encoding in data and its full name (e.g. "chat.v1.ChatMessage") in
//     type_name.
//
// Anything else is an error.
type Content = any

// ToPayload builds the wire payload for content (see [Content]).
func ToPayload(content Content) (*switchboardv1.Payload, error) {
	switch v := content.(type) {
	case string:
		return &switchboardv1.Payload{Text: v}, nil
	case []byte:
		return &switchboardv1.Payload{Data: v}, nil
	case *switchboardv1.Payload:
		if v == nil {
			return nil, errors.New("switchboard: cannot send a nil payload")
		}
		return v, nil
	case proto.Message:
		if v == nil || !v.ProtoReflect().IsValid() {
			return nil, errors.New("switchboard: cannot send a nil message")
		}
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("switchboard: encoding %s: %w", v.ProtoReflect().Descriptor().FullName(), err)
		}
		return &switchboardv1.Payload{Data: data, TypeName: string(v.ProtoReflect().Descriptor().FullName())}, nil
	}
	return nil, fmt.Errorf("switchboard: cannot send %T: pass a string, []byte, *switchboardv1.Payload or a proto.Message", content)
}

// Body is the content of a received message, embedded in [Message],
// [DirectMessage] and [Notification].
type Body struct {
	// Payload is the payload as it arrived; never nil.
	Payload *switchboardv1.Payload
	// Value is the decoded payload when its type_name is registered (see
	// [WithTypes]); nil for text, opaque bytes, unregistered types and bytes
	// that do not decode. Use a type assertion or [ValueAs].
	Value proto.Message
}

func newBody(p *switchboardv1.Payload, types *TypeRegistry, log *slog.Logger) Body {
	if p == nil {
		p = &switchboardv1.Payload{}
	}
	var value proto.Message
	if types != nil {
		value = types.decode(p, log)
	}
	return Body{Payload: p, Value: value}
}

// Text is the payload's text (empty when none).
func (b *Body) Text() string { return b.Payload.GetText() }

// Data is the payload's raw bytes (for a typed payload, the encoded value).
func (b *Body) Data() []byte { return b.Payload.GetData() }

// TypeName is the full protobuf name of Data; empty for text or opaque bytes.
func (b *Body) TypeName() string { return b.Payload.GetTypeName() }

func (b *Body) body() *Body { return b }

// Received is implemented by [*Message], [*DirectMessage] and
// [*Notification].
type Received interface {
	body() *Body
}

// ValueAs returns the decoded payload of item when it is a T:
//
//	if chat, ok := switchboard.ValueAs[*chatv1.ChatMessage](msg); ok { ... }
func ValueAs[T proto.Message](item Received) (T, bool) {
	v, ok := item.body().Value.(T)
	return v, ok
}

// Message is a message of a room: pushed to a subscription, replayed on
// recovery, or read from history.
type Message struct {
	// Room is the room it was published to.
	Room string
	// Offset is its position in the room (1, 2, 3, ...).
	Offset uint64
	// ID is the server-assigned message id.
	ID uint64
	// Sender is the user id of the publisher.
	Sender string
	// TimestampMs is the server time of the publish, in milliseconds since
	// the Unix epoch.
	TimestampMs int64
	Body
}

func newMessage(m *switchboardv1.RoomMessage, types *TypeRegistry, log *slog.Logger) *Message {
	return &Message{
		Room:        m.GetRoom(),
		Offset:      m.GetOffset(),
		ID:          m.GetId(),
		Sender:      m.GetSender(),
		TimestampMs: m.GetTimestampMs(),
		Body:        newBody(m.GetPayload(), types, log),
	}
}

// Time is TimestampMs as a time.Time.
func (m *Message) Time() time.Time { return time.UnixMilli(m.TimestampMs) }

// DirectMessage is a message sent directly to this connection's user.
type DirectMessage struct {
	// ID is the server-assigned message id.
	ID uint64
	// Sender is the user id of the sender.
	Sender string
	// TimestampMs is the server time of the send, in milliseconds since the
	// Unix epoch.
	TimestampMs int64
	Body
}

// Time is TimestampMs as a time.Time.
func (m *DirectMessage) Time() time.Time { return time.UnixMilli(m.TimestampMs) }

// Notification is a notification a backend sent to this user (Room empty) or
// to a joined room.
type Notification struct {
	// ID is the server-assigned notification id.
	ID uint64
	// Room is the room it was sent to; empty when sent to the user.
	Room string
	// TimestampMs is the server time, in milliseconds since the Unix epoch.
	TimestampMs int64
	Body
}

// Time is TimestampMs as a time.Time.
func (n *Notification) Time() time.Time { return time.UnixMilli(n.TimestampMs) }

// GapReason says why a subscription skipped messages.
type GapReason int

const (
	// GapRecoveryFailed: after a reconnect the server could not replay what
	// was missed (the room's epoch changed, e.g. a server restart, or its
	// history no longer reaches back). Live messages continue after
	// Gap.Position.
	GapRecoveryFailed GapReason = iota + 1
	// GapOverflow: the application read too slowly; the subscription's buffer
	// was full and the newest messages after Gap.LastOffset were dropped.
	GapOverflow
)

// String returns "recovery_failed" or "overflow".
func (r GapReason) String() string {
	switch r {
	case GapRecoveryFailed:
		return "recovery_failed"
	case GapOverflow:
		return "overflow"
	}
	return "unknown"
}

// Gap says messages of a room were skipped; read them back with
// [Client.History]. It is reported in order with the messages (see
// [OnGap]).
//
// For GapOverflow, History(room, HistoryQuery{After: gap.LastOffset})
// returns the dropped messages (up to the next one delivered). For
// GapRecoveryFailed, offsets of the old epoch mean nothing any more: reload
// the room, e.g. with History(room, HistoryQuery{}).
type Gap struct {
	// Room is the room.
	Room string
	// Reason says why.
	Reason GapReason
	// LastOffset is the offset of the last message delivered before the gap
	// (0: none).
	LastOffset uint64
	// Epoch is the epoch of LastOffset.
	Epoch string
	// Position is, for GapRecoveryFailed, the room's position when it was
	// rejoined: live messages continue after it. Nil for GapOverflow.
	Position *switchboardv1.StreamPosition
}

// HistoryQuery selects a page of a room's history. The zero value asks for
// the newest messages, in the server's default page size.
type HistoryQuery struct {
	// Limit is the page size; 0 means the server's default (larger values
	// are capped by the server).
	Limit uint32
	// Before is an exclusive upper bound on offsets; 0 means none. Without
	// After, the page holds the newest Limit messages below it: page
	// backwards by passing the smallest offset you have.
	Before uint64
	// After is an exclusive lower bound on offsets; 0 means none. With it,
	// the page holds the oldest Limit messages above it.
	After uint64
}

// HistoryPage is a page of a room's history.
type HistoryPage struct {
	// Messages are the page's messages, in offset order.
	Messages []*Message
	// Position is the room's current position (newest offset and epoch).
	Position *switchboardv1.StreamPosition
	// HasMore is true when more messages exist beyond the page in the
	// paging direction.
	HasMore bool
}

// PresenceKind says whether a member joined or left.
type PresenceKind int

const (
	// MemberJoined: a connection joined the room.
	MemberJoined PresenceKind = iota + 1
	// MemberLeft: a connection left the room (by leaving or disconnecting).
	MemberLeft
)

// String returns "joined" or "left".
func (k PresenceKind) String() string {
	switch k {
	case MemberJoined:
		return "joined"
	case MemberLeft:
		return "left"
	}
	return "unknown"
}

// PresenceEvent is a member joining or leaving a room joined with
// [WithPresenceEvents]. Events about this connection itself are never sent.
type PresenceEvent struct {
	// Kind says whether the member joined or left.
	Kind PresenceKind
	// Room is the room.
	Room string
	// Member is the connection that joined or left.
	Member *switchboardv1.Member
}
