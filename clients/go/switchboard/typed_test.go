package switchboard_test

// Typed application payloads end to end: registered types arrive decoded,
// unknown ones as bytes plus type name, text and opaque bytes as they were.

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	chatv1 "github.com/switchboard-rt/switchboard/clients/go/gen/chat/v1"
	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

var chatTypes = switchboard.WithTypes((*chatv1.ChatMessage)(nil), (*chatv1.TypingEvent)(nil))

func richChatMessage() *chatv1.ChatMessage {
	return &chatv1.ChatMessage{
		Text:     "Ship it, @bob 🚀 **today**",
		Format:   chatv1.Format_FORMAT_MARKDOWN,
		Mentions: []*chatv1.Mention{{User: "bob", Start: 9, Length: 4}},
		Attachments: []*chatv1.Attachment{{
			Url:       "https://files.example.com/a/diagram.png",
			MediaType: "image/png",
			SizeBytes: 48213,
			Thumbnail: []byte("\x89PNG\r\n\x1a\n"),
		}},
		ReplyTo:  1<<62 + 7,
		SentAtMs: 1_760_000_000_123,
		Tags:     []string{"release", "ünïcödé"},
	}
}

func TestTypedRoundTripThroughPublishHistoryAndDirect(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", chatTypes)
	bob := dial(t, srv, "bob", chatTypes)
	join(t, alice, "chat")
	sub := join(t, bob, "chat")
	chat := richChatMessage()
	typing := &chatv1.TypingEvent{User: "alice", Typing: true}

	publish(t, alice, "chat", chat)
	publish(t, alice, "chat", typing)
	publish(t, alice, "chat", "plain text")

	first := next(t, sub)
	encoded, _ := proto.Marshal(chat)
	if first.TypeName() != "chat.v1.ChatMessage" || !proto.Equal(first.Value, chat) ||
		!bytes.Equal(first.Data(), encoded) || first.Sender != "alice" {
		t.Errorf("first: %q %v", first.TypeName(), first.Value)
	}
	if got, ok := switchboard.ValueAs[*chatv1.ChatMessage](first); !ok || !proto.Equal(got, chat) {
		t.Error("ValueAs ChatMessage")
	}
	if _, ok := switchboard.ValueAs[*chatv1.TypingEvent](first); ok {
		t.Error("ValueAs TypingEvent of a ChatMessage")
	}
	second := next(t, sub)
	if got, ok := second.Value.(*chatv1.TypingEvent); !ok || !proto.Equal(got, typing) {
		t.Errorf("second: %v", second.Value)
	}
	third := next(t, sub)
	if third.Text() != "plain text" || third.Value != nil || third.TypeName() != "" {
		t.Errorf("third: %q %v %q", third.Text(), third.Value, third.TypeName())
	}

	page, err := bob.History(ctx(t), "chat", switchboard.HistoryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 3 || !proto.Equal(page.Messages[0].Value, chat) ||
		!proto.Equal(page.Messages[1].Value, typing) || page.Messages[2].Value != nil {
		t.Errorf("history values %v", page.Messages)
	}

	if _, err := alice.Direct(ctx(t), "bob", chat); err != nil {
		t.Fatal(err)
	}
	dm := recv(t, bob.DirectMessages())
	if dm.Sender != "alice" || !proto.Equal(dm.Value, chat) {
		t.Errorf("direct: %s %v", dm.Sender, dm.Value)
	}
}

func TestUnregisteredAndOpaquePayloadsArriveAsBytes(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", chatTypes)
	bob := dial(t, srv, "bob") // registers nothing
	join(t, alice, "chat")
	sub := join(t, bob, "chat")
	chat := richChatMessage()

	publish(t, alice, "chat", chat)
	publish(t, alice, "chat", &switchboardv1.Payload{Data: []byte{0, 1, 2, 0xff}, TypeName: "acme.v1.Unknown"})
	publish(t, alice, "chat", []byte{0xde, 0xad, 0xbe, 0xef})
	publish(t, alice, "chat", &switchboardv1.Payload{Text: "caption", Data: []byte{1}})

	var received []*switchboard.Message
	for range 4 {
		received = append(received, next(t, sub))
	}
	names := []string{"chat.v1.ChatMessage", "acme.v1.Unknown", "", ""}
	for i, m := range received {
		if m.TypeName() != names[i] || m.Value != nil {
			t.Errorf("message %d: type %q, value %v", i, m.TypeName(), m.Value)
		}
	}
	decoded := &chatv1.ChatMessage{}
	if err := proto.Unmarshal(received[0].Data(), decoded); err != nil || !proto.Equal(decoded, chat) {
		t.Errorf("the ChatMessage bytes do not decode: %v", err)
	}
	if !bytes.Equal(received[1].Data(), []byte{0, 1, 2, 0xff}) || !bytes.Equal(received[2].Data(), []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Error("opaque bytes changed")
	}
	if received[3].Text() != "caption" || !bytes.Equal(received[3].Data(), []byte{1}) {
		t.Errorf("text and data: %q %x", received[3].Text(), received[3].Data())
	}
}

func TestRegisteredTypeWithUndecodableBytesIsNotAnError(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice", chatTypes)
	sub := join(t, alice, "chat")
	publish(t, alice, "chat", &switchboardv1.Payload{Data: []byte{0xff, 0xff, 0xff}, TypeName: "chat.v1.ChatMessage"})
	publish(t, alice, "chat", "still flowing")
	broken := next(t, sub)
	if broken.Value != nil || !bytes.Equal(broken.Data(), []byte{0xff, 0xff, 0xff}) {
		t.Errorf("broken: %v %x", broken.Value, broken.Data())
	}
	if m := next(t, sub); m.Text() != "still flowing" {
		t.Errorf("text %q", m.Text())
	}
}

func TestRegistryIsOpenToLaterRegistrations(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	registry, err := switchboard.NewTypeRegistry()
	if err != nil {
		t.Fatal(err)
	}
	alice := dial(t, srv, "alice", switchboard.WithTypeRegistry(registry))
	sub := join(t, alice, "chat")
	typing := &chatv1.TypingEvent{User: "alice"}
	publish(t, alice, "chat", typing)
	if m := next(t, sub); m.Value != nil {
		t.Errorf("decoded before registration: %v", m.Value)
	}
	if err := alice.Types().Register(typing); err != nil {
		t.Fatal(err)
	}
	publish(t, alice, "chat", typing)
	if m := next(t, sub); !proto.Equal(m.Value, typing) {
		t.Errorf("not decoded after registration: %v", m.Value)
	}
}
