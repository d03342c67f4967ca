package switchboard_test

// Conformance scenarios (tests/scenarios/*.json), replayed through the SDK's
// public API against a fresh server each, with the rules of
// proto/switchboard/testing/v1/scenario.proto. Only drop_connection uses a
// test hook (DropConnectionForTesting), so the recovery scenario passes
// through the SDK's own reconnect, rejoin with since and dedupe.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	chatv1 "github.com/switchboard-rt/switchboard/clients/go/gen/chat/v1"
	testingv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/testing/v1"
	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

const (
	defaultPushTimeout = 5 * time.Second
	defaultNoPushWait  = 300 * time.Millisecond
	// scenarioTimeout bounds a whole scenario.
	scenarioTimeout = 90 * time.Second
)

var scenariosDir = filepath.Join(testserver.RepoRoot(), "tests", "scenarios")

// scenarioTypes are the types the runners register.
var scenarioTypes = []proto.Message{(*chatv1.ChatMessage)(nil), (*chatv1.TypingEvent)(nil)}

var scenarioRegistry = func() *switchboard.TypeRegistry {
	r, err := switchboard.NewTypeRegistry(scenarioTypes...)
	if err != nil {
		panic(err)
	}
	return r
}()

func TestScenarios(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(scenariosDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scenario in %s", scenariosDir) // a failure, not a skip
	}
	sort.Strings(files)
	for _, path := range files {
		stem := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(stem, func(t *testing.T) {
			t.Parallel()
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			scenario, raw, err := parseScenario(text)
			if err != nil {
				t.Fatal(err)
			}
			if scenario.GetName() != stem {
				t.Fatalf("a scenario's name is its file's stem: %q in %s", scenario.GetName(), path)
			}
			if len(scenario.GetSteps()) == 0 {
				t.Fatal("a scenario has steps")
			}
			srv := startServer(t)
			if err := runScenario(srv.URL, scenario, raw); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestScenarioRunnerCatchesWrongExpectations checks that the runner can
// fail: each wrong expectation below must be reported.
func TestScenarioRunnerCatchesWrongExpectations(t *testing.T) {
	t.Parallel()
	const base = `{"name": "runner_check", "steps": [
		{"client": "alice", "connect": {"name": "alice"}},
		{"client": "alice", "join": {"room": "r"}},
		{"client": "alice", "publish": {"room": "r", "payload": {"text": "hello"}, "expectOffset": "1"}},
		%s
	]}`
	cases := []struct {
		name, steps, failure string
	}{
		{"right", `{"client": "alice", "expectPush": {"message": {"room": "r", "offset": "1", "sender": "alice", "payload": {"text": "hello"}}}}`, ""},
		{"wrong text", `{"client": "alice", "expectPush": {"message": {"room": "r", "offset": "1", "payload": {"text": "goodbye"}}}}`, "does not match"},
		{"wrong sender", `{"client": "alice", "expectPush": {"message": {"room": "r", "sender": "bob"}}}`, "does not match"},
		{"missing push", `{"client": "alice", "expectPush": {"message": {"room": "r"}}},
			{"client": "alice", "expectPush": {"message": {"room": "r"}, "timeoutMs": 300}}`, "no message"},
		{"unexpected push", `{"client": "alice", "expectNoPush": {}}`, "unexpected pushes"},
		{"wrong offset", `{"client": "alice", "publish": {"room": "r", "payload": {"text": "again"}, "expectOffset": "7"}}`, "ack offset"},
		{"wrong error", `{"client": "alice", "join": {"room": "r", "expectError": "ERROR_CODE_INVALID_ROOM"}}`, "ERROR_CODE_ALREADY_JOINED"},
		{"missing error", `{"client": "alice", "leave": {"room": "r", "expectError": "ERROR_CODE_NOT_JOINED"}}`, "succeeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			scenario, raw, err := parseScenario([]byte(fmt.Sprintf(base, tc.steps)))
			if err != nil {
				t.Fatal(err)
			}
			srv := startServer(t)
			err = runScenario(srv.URL, scenario, raw)
			switch {
			case tc.failure == "" && err != nil:
				t.Fatalf("a right expectation failed: %v", err)
			case tc.failure != "" && err == nil:
				t.Fatal("a wrong expectation passed")
			case tc.failure != "" && !strings.Contains(err.Error(), tc.failure):
				t.Fatalf("failed for another reason: %v", err)
			}
		})
	}
}

// parseScenario reads a scenario file both as the proto message and as
// plain JSON (whose present keys are what the matching rules check).
func parseScenario(text []byte) (*testingv1.Scenario, map[string]any, error) {
	scenario := &testingv1.Scenario{}
	if err := protojson.Unmarshal(text, scenario); err != nil {
		return nil, nil, fmt.Errorf("scenario: %w", err)
	}
	raw, ok := decodeJSON(text).(map[string]any)
	if !ok {
		return nil, nil, errors.New("scenario: not a JSON object")
	}
	return scenario, raw, nil
}

func decodeJSON(text []byte) any {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return v
}

// field returns the value of a JSON object's key in either spelling proto3
// JSON allows (jsonName or the proto name).
func field(raw map[string]any, fd protoreflect.FieldDescriptor) (any, bool) {
	if v, ok := raw[fd.JSONName()]; ok {
		return v, true
	}
	v, ok := raw[string(fd.Name())]
	return v, ok
}

// Matching (scenario.proto: every key present in the expected JSON equals
// the actual field; nested messages by the same rule; repeated fields by
// length and element by element).

func mismatches(expected map[string]any, actual protoreflect.Message, path string) []string {
	var problems []string
	keys := make([]string, 0, len(expected))
	for k := range expected {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := actual.Descriptor().Fields()
	for _, key := range keys {
		want := expected[key]
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		if fd == nil {
			problems = append(problems, fmt.Sprintf("%s has no field %q", actual.Descriptor().FullName(), key))
			continue
		}
		where := path + string(fd.Name())
		got := actual.Get(fd)
		if fd.Message() != nil && !fd.IsMap() {
			if fd.IsList() {
				wants, _ := want.([]any)
				if len(wants) != got.List().Len() {
					problems = append(problems, fmt.Sprintf("%s: %d elements, expected %d", where, got.List().Len(), len(wants)))
					continue
				}
				for i, w := range wants {
					wm, _ := w.(map[string]any)
					problems = append(problems, mismatches(wm, got.List().Get(i).Message(), fmt.Sprintf("%s[%d].", where, i))...)
				}
				continue
			}
			wm, _ := want.(map[string]any)
			problems = append(problems, mismatches(wm, got.Message(), where+".")...)
			continue
		}
		// A scalar (or a list of them): parse it the proto3 JSON way (int64
		// strings, base64 bytes, enum names) into a message of this type.
		holder := actual.New()
		data, _ := json.Marshal(map[string]any{key: want})
		if err := protojson.Unmarshal(data, holder.Interface()); err != nil {
			problems = append(problems, fmt.Sprintf("%s: bad expected value %s: %v", where, data, err))
			continue
		}
		if !equalField(fd, holder.Get(fd), got) {
			problems = append(problems, fmt.Sprintf("%s: got %v, expected %v", where, got, holder.Get(fd)))
		}
	}
	return problems
}

func equalField(fd protoreflect.FieldDescriptor, a, b protoreflect.Value) bool {
	if fd.IsList() {
		la, lb := a.List(), b.List()
		if la.Len() != lb.Len() {
			return false
		}
		for i := range la.Len() {
			if !equalScalar(la.Get(i), lb.Get(i)) {
				return false
			}
		}
		return true
	}
	return equalScalar(a, b)
}

func equalScalar(a, b protoreflect.Value) bool {
	if x, ok := a.Interface().([]byte); ok {
		y, _ := b.Interface().([]byte)
		return bytes.Equal(x, y)
	}
	return a.Interface() == b.Interface()
}

func checkMatch(expected map[string]any, actual proto.Message, what string) error {
	if problems := mismatches(expected, actual.ProtoReflect(), ""); len(problems) > 0 {
		return fmt.Errorf("%s does not match: %s\n  actual: %v", what, strings.Join(problems, "; "), actual)
	}
	return nil
}

// The SDK's values, seen as the protocol messages the scenarios expect. A
// typed value is re-encoded, so "decodes and re-encodes to the same bytes"
// is what gets checked.

func wirePayload(b *switchboard.Body) (*switchboardv1.Payload, error) {
	data := b.Data()
	if _, registered := scenarioRegistry.Lookup(b.TypeName()); registered {
		if b.Value == nil {
			return nil, fmt.Errorf("registered type %s arrived undecoded", b.TypeName())
		}
		var err error
		if data, err = (proto.MarshalOptions{Deterministic: true}).Marshal(b.Value); err != nil {
			return nil, err
		}
	} else if b.Value != nil {
		return nil, fmt.Errorf("unregistered type %q was decoded", b.TypeName())
	}
	return &switchboardv1.Payload{Text: b.Text(), Data: data, TypeName: b.TypeName()}, nil
}

// contentOf is how an application would send payload through the SDK:
// registered types through the typed API, plain text as a string, anything
// else as a Payload.
func contentOf(payload *switchboardv1.Payload) (switchboard.Content, error) {
	if payload == nil {
		return &switchboardv1.Payload{}, nil
	}
	if mt, ok := scenarioRegistry.Lookup(payload.GetTypeName()); ok && payload.GetText() == "" {
		value := mt.New().Interface()
		if err := proto.Unmarshal(payload.GetData(), value); err != nil {
			return nil, err
		}
		return value, nil
	}
	if payload.GetText() != "" && len(payload.GetData()) == 0 && payload.GetTypeName() == "" {
		return payload.GetText(), nil
	}
	return payload, nil
}

// streamKey names a stream of pushes: room messages, presence events and
// notifications of one room, or direct messages.
type streamKey struct{ kind, room string }

// actor is one scenario client: the SDK client plus every push it received,
// in per-stream queues.
type actor struct {
	alias  string
	client *switchboard.Client
	pumps  sync.WaitGroup

	mu      sync.Mutex
	streams map[streamKey][]proto.Message
	errs    []error
	// arrived is signalled (capacity 1) whenever a push is queued.
	arrived chan struct{}
}

func newActor(alias string, client *switchboard.Client) *actor {
	a := &actor{alias: alias, client: client, streams: map[streamKey][]proto.Message{}, arrived: make(chan struct{}, 1)}
	pump(a, client.DirectMessages(), func(m *switchboard.DirectMessage) (streamKey, proto.Message, error) {
		p, err := wirePayload(&m.Body)
		return streamKey{"direct", ""}, &switchboardv1.DirectMessage{Id: m.ID, Sender: m.Sender, TimestampMs: m.TimestampMs, Payload: p}, err
	})
	pump(a, client.Notifications(), func(n *switchboard.Notification) (streamKey, proto.Message, error) {
		p, err := wirePayload(&n.Body)
		return streamKey{"notification", n.Room}, &switchboardv1.Notification{Id: n.ID, Room: n.Room, TimestampMs: n.TimestampMs, Payload: p}, err
	})
	return a
}

// pump moves everything from ch into the actor's streams until ch closes
// (at Close).
func pump[T any](a *actor, ch <-chan T, convert func(T) (streamKey, proto.Message, error)) {
	a.pumps.Add(1)
	go func() {
		defer a.pumps.Done()
		for v := range ch {
			key, m, err := convert(v)
			a.mu.Lock()
			if err != nil {
				a.errs = append(a.errs, err)
			} else {
				a.streams[key] = append(a.streams[key], m)
			}
			a.mu.Unlock()
			select {
			case a.arrived <- struct{}{}:
			default:
			}
		}
	}()
}

func (a *actor) subscribed(sub *switchboard.Subscription) {
	room := sub.Room()
	pump(a, sub.Messages(), func(m *switchboard.Message) (streamKey, proto.Message, error) {
		p, err := wirePayload(&m.Body)
		return streamKey{"message", m.Room}, &switchboardv1.RoomMessage{
			Id: m.ID, Room: m.Room, Offset: m.Offset, Sender: m.Sender, TimestampMs: m.TimestampMs, Payload: p,
		}, err
	})
	pump(a, sub.PresenceEvents(), func(ev switchboard.PresenceEvent) (streamKey, proto.Message, error) {
		if ev.Kind == switchboard.MemberJoined {
			return streamKey{"presence", room}, &switchboardv1.MemberJoined{Room: ev.Room, Member: ev.Member}, nil
		}
		return streamKey{"presence", room}, &switchboardv1.MemberLeft{Room: ev.Room, Member: ev.Member}, nil
	})
}

// next waits up to timeout for the next push of key.
func (a *actor) next(key streamKey, timeout time.Duration) (proto.Message, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		if queue := a.streams[key]; len(queue) > 0 {
			a.streams[key] = queue[1:]
			a.mu.Unlock()
			return queue[0], true
		}
		a.mu.Unlock()
		select {
		case <-a.arrived:
		case <-deadline.C:
			return nil, false
		}
	}
}

// unread describes the pushes received and not consumed.
func (a *actor) unread() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var parts []string
	for key, queue := range a.streams {
		if len(queue) > 0 {
			parts = append(parts, fmt.Sprintf("%s %q: %d (first: %v)", key.kind, key.room, len(queue), queue[0]))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// stop closes the client and waits for the pumps to end.
func (a *actor) stop() error {
	_ = a.client.Close()
	done := make(chan struct{})
	go func() {
		a.pumps.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s: receive loops did not end after close", a.alias)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.errs) > 0 {
		return fmt.Errorf("%s: receiving failed: %w", a.alias, a.errs[0])
	}
	return nil
}

// runner replays one scenario.
type runner struct {
	url    string
	ctx    context.Context
	actors map[string]*actor
	// retired are actors replaced by a later connect of the same alias.
	retired []*actor
}

func runScenario(url string, scenario *testingv1.Scenario, raw map[string]any) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	r := &runner{url: url, ctx: ctx, actors: map[string]*actor{}}
	defer func() {
		for _, a := range append(r.retired, r.sortedActors()...) {
			if stopErr := a.stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}
	}()
	rawSteps, _ := raw["steps"].([]any)
	if len(rawSteps) != len(scenario.GetSteps()) {
		return errors.New("the raw and parsed step lists differ")
	}
	actionOneof := (&testingv1.Step{}).ProtoReflect().Descriptor().Oneofs().ByName("action")
	for i, step := range scenario.GetSteps() {
		fd := step.ProtoReflect().WhichOneof(actionOneof)
		if fd == nil {
			return fmt.Errorf("%s: step %d has no action", scenario.GetName(), i)
		}
		rawStep, _ := rawSteps[i].(map[string]any)
		rawAction, _ := field(rawStep, fd)
		rawMap, _ := rawAction.(map[string]any)
		if err := r.step(step, rawMap); err != nil {
			return fmt.Errorf("%s: step %d (%s %s): %w", scenario.GetName(), i, step.GetClient(), fd.Name(), err)
		}
	}
	return nil
}

func (r *runner) sortedActors() []*actor {
	var out []*actor
	for _, a := range r.actors {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].alias < out[j].alias })
	return out
}

func (r *runner) actor(alias string) (*actor, error) {
	a, ok := r.actors[alias]
	if !ok {
		return nil, fmt.Errorf("client %q acts before its connect step", alias)
	}
	return a, nil
}

// expectError checks a command's outcome against an expected error code
// (UNSPECIFIED: must succeed).
func expectError(expected switchboardv1.ErrorCode, call string, err error) error {
	var se *switchboard.ServerError
	if err != nil && !errors.As(err, &se) {
		return fmt.Errorf("%s failed: %w", call, err)
	}
	switch {
	case expected != 0 && se == nil:
		return fmt.Errorf("%s succeeded, expected %s", call, expected)
	case expected != 0 && se.Code != expected:
		return fmt.Errorf("%s failed with %s, expected %s", call, se.Code, expected)
	case expected == 0 && se != nil:
		return fmt.Errorf("%s failed: %w", call, err)
	}
	return nil
}

func (r *runner) step(step *testingv1.Step, raw map[string]any) error {
	if _, ok := step.GetAction().(*testingv1.Step_Connect); ok {
		return r.connect(step)
	}
	a, err := r.actor(step.GetClient())
	if err != nil {
		return err
	}
	c := a.client
	ctx := r.ctx
	switch action := step.GetAction().(type) {
	case *testingv1.Step_Join:
		join := action.Join
		var since *switchboardv1.StreamPosition
		if join.GetSince() != nil {
			since = join.GetSince()
		}
		var opts []switchboard.JoinOption
		if join.GetPresenceEvents() {
			opts = append(opts, switchboard.WithPresenceEvents())
		}
		sub, err := c.Join(ctx, join.GetRoom(), since, opts...)
		if err := expectError(join.GetExpectError(), "join", err); err != nil || sub == nil {
			return err
		}
		if join.ExpectRecovered != nil && sub.Recovered() != join.GetExpectRecovered() {
			return fmt.Errorf("recovered = %v, expected %v", sub.Recovered(), join.GetExpectRecovered())
		}
		a.subscribed(sub)
	case *testingv1.Step_Leave:
		return expectError(action.Leave.GetExpectError(), "leave", c.Leave(ctx, action.Leave.GetRoom()))
	case *testingv1.Step_Publish:
		publish := action.Publish
		content, err := contentOf(publish.GetPayload())
		if err != nil {
			return err
		}
		var opts []switchboard.PublishOption
		if key := publish.GetIdempotencyKey(); key != "" {
			opts = append(opts, switchboard.IdempotencyKey(key))
		}
		ack, err := c.Publish(ctx, publish.GetRoom(), content, opts...)
		if err := expectError(publish.GetExpectError(), "publish", err); err != nil || ack == nil {
			return err
		}
		if publish.GetExpectOffset() != 0 && ack.GetOffset() != publish.GetExpectOffset() {
			return fmt.Errorf("ack offset %d, expected %d", ack.GetOffset(), publish.GetExpectOffset())
		}
		if ack.GetDuplicate() != publish.GetExpectDuplicate() {
			return fmt.Errorf("ack duplicate = %v, expected %v", ack.GetDuplicate(), publish.GetExpectDuplicate())
		}
	case *testingv1.Step_Direct:
		content, err := contentOf(action.Direct.GetPayload())
		if err != nil {
			return err
		}
		_, err = c.Direct(ctx, action.Direct.GetUser(), content)
		return expectError(action.Direct.GetExpectError(), "direct", err)
	case *testingv1.Step_History:
		return r.history(c, action.History, raw)
	case *testingv1.Step_Presence:
		presence := action.Presence
		members, err := c.Presence(ctx, presence.GetRoom())
		if err := expectError(presence.GetExpectError(), "presence", err); err != nil {
			return err
		}
		if presence.GetExpectError() != 0 {
			return nil
		}
		var users []string
		for _, m := range members {
			users = append(users, m.GetUser())
		}
		want := slices.Clone(presence.GetExpectUsers())
		sort.Strings(users)
		sort.Strings(want)
		if !slices.Equal(users, want) {
			return fmt.Errorf("members %v, expected %v", users, want)
		}
	case *testingv1.Step_ExpectPush:
		return r.expectPush(a, action.ExpectPush, raw)
	case *testingv1.Step_ExpectNoPush:
		wait := time.Duration(action.ExpectNoPush.GetWaitMs()) * time.Millisecond
		if wait == 0 {
			wait = defaultNoPushWait
		}
		time.Sleep(wait)
		if unread := a.unread(); unread != "" {
			return fmt.Errorf("unexpected pushes: %s", unread)
		}
	case *testingv1.Step_DropConnection:
		switchboard.DropConnectionForTesting(c)
	case *testingv1.Step_Close:
		return c.Close()
	default:
		return fmt.Errorf("unknown action %T", action)
	}
	return nil
}

func (r *runner) connect(step *testingv1.Step) error {
	connect := step.GetConnect()
	client, err := switchboard.Dial(r.ctx, r.url, switchboard.WithName(connect.GetName()), switchboard.WithTypes(scenarioTypes...))
	if err := expectError(connect.GetExpectError(), "connect", err); err != nil || client == nil {
		return err
	}
	if previous, ok := r.actors[step.GetClient()]; ok {
		r.retired = append(r.retired, previous)
	}
	r.actors[step.GetClient()] = newActor(step.GetClient(), client)
	return nil
}

func (r *runner) history(c *switchboard.Client, history *testingv1.History, raw map[string]any) error {
	page, err := c.History(r.ctx, history.GetRoom(), switchboard.HistoryQuery{
		Limit: history.GetLimit(), Before: history.GetBefore(), After: history.GetAfter(),
	})
	if err := expectError(history.GetExpectError(), "history", err); err != nil || page == nil {
		return err
	}
	fd := history.ProtoReflect().Descriptor().Fields().ByName("expect_messages")
	rawExpected, _ := field(raw, fd)
	expected, _ := rawExpected.([]any)
	if len(page.Messages) != len(expected) {
		var got []uint64
		for _, m := range page.Messages {
			got = append(got, m.Offset)
		}
		return fmt.Errorf("history returned %d messages (offsets %v), expected %d", len(page.Messages), got, len(expected))
	}
	for i, m := range page.Messages {
		p, err := wirePayload(&m.Body)
		if err != nil {
			return err
		}
		actual := &switchboardv1.RoomMessage{Id: m.ID, Room: m.Room, Offset: m.Offset, Sender: m.Sender, TimestampMs: m.TimestampMs, Payload: p}
		want, _ := expected[i].(map[string]any)
		if err := checkMatch(want, actual, fmt.Sprintf("history message %d", i)); err != nil {
			return err
		}
	}
	if page.HasMore != history.GetExpectHasMore() {
		return fmt.Errorf("has_more = %v, expected %v", page.HasMore, history.GetExpectHasMore())
	}
	return nil
}

func (r *runner) expectPush(a *actor, expect *testingv1.ExpectPush, raw map[string]any) error {
	oneof := expect.ProtoReflect().Descriptor().Oneofs().ByName("push")
	fd := expect.ProtoReflect().WhichOneof(oneof)
	if fd == nil {
		return errors.New("expect_push names no push")
	}
	var key streamKey
	switch push := expect.GetPush().(type) {
	case *testingv1.ExpectPush_Message:
		key = streamKey{"message", push.Message.GetRoom()}
	case *testingv1.ExpectPush_DirectMessage:
		key = streamKey{"direct", ""}
	case *testingv1.ExpectPush_Notification:
		key = streamKey{"notification", push.Notification.GetRoom()}
	case *testingv1.ExpectPush_MemberJoined:
		key = streamKey{"presence", push.MemberJoined.GetRoom()}
	case *testingv1.ExpectPush_MemberLeft:
		key = streamKey{"presence", push.MemberLeft.GetRoom()}
	}
	timeout := time.Duration(expect.GetTimeoutMs()) * time.Millisecond
	if timeout == 0 {
		timeout = defaultPushTimeout
	}
	got, ok := a.next(key, timeout)
	if !ok {
		return fmt.Errorf("no %s on stream %s %q within %s", fd.Name(), key.kind, key.room, timeout)
	}
	wanted := expect.ProtoReflect().Get(fd).Message().Descriptor()
	if got.ProtoReflect().Descriptor() != wanted {
		return fmt.Errorf("next push of stream %s %q is a %s: %v", key.kind, key.room, got.ProtoReflect().Descriptor().Name(), got)
	}
	rawPush, _ := field(raw, fd)
	want, _ := rawPush.(map[string]any)
	return checkMatch(want, got, string(fd.Name()))
}
