package switchboard_test

// Publishing safely: generated idempotency keys, the keys on every publish
// error, and the automatic retries against a real server whose real Redis
// hangs (SIGSTOP) mid-publish.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
	"github.com/switchboard-rt/switchboard/clients/go/internal/testserver"
	"github.com/switchboard-rt/switchboard/clients/go/switchboard"
)

var generatedKey = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestGeneratedIdempotencyKeysAre32RandomHexCharacters(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		key := switchboard.NewIdempotencyKeyForTesting()
		if !generatedKey.MatchString(key) {
			t.Fatalf("key %q is not 32 lowercase hex characters", key)
		}
		if seen[key] {
			t.Fatalf("key %q generated twice", key)
		}
		seen[key] = true
	}
}

func TestPublishRetryDelaysDoubleFrom100msTo2s(t *testing.T) {
	b := switchboard.PublishBackoffForTesting
	want := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for attempt, ms := range want {
		if got := b.Ceiling(attempt); got != ms*time.Millisecond {
			t.Errorf("ceiling of retry %d: %s, want %s", attempt, got, ms*time.Millisecond)
		}
	}
}

func TestNegativePublishRetriesAreRefused(t *testing.T) {
	_, err := switchboard.Dial(context.Background(), "ws://127.0.0.1:1/ws", switchboard.WithName("alice"), switchboard.WithPublishRetries(-1))
	if err == nil || errors.Is(err, switchboard.ErrClosed) {
		t.Fatalf("Dial with -1 publish retries: %v", err)
	}
}

func TestPublishesWithoutKeyAreDeliveredEachTime(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")
	sub := join(t, alice, "room")
	for i := range 2 {
		ack, err := alice.Publish(ctx(t), "room", "same text")
		if err != nil || ack.GetDuplicate() || ack.GetOffset() != uint64(i+1) {
			t.Fatalf("publish %d: %v, %v", i+1, ack, err)
		}
	}
	if got := offsets(t, sub, 2); got[0] != 1 || got[1] != 2 {
		t.Errorf("offsets %v", got)
	}
	noMessage(t, sub, 300*time.Millisecond)
}

func TestPublishErrorsCarryTheIdempotencyKey(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	alice := dial(t, srv, "alice")

	_, err := alice.Publish(ctx(t), "room", "not joined yet")
	var pe *switchboard.PublishError
	if !errors.As(err, &pe) || !generatedKey.MatchString(pe.IdempotencyKey) {
		t.Fatalf("publish before join: %v", err)
	}
	var se *switchboard.ServerError
	if !errors.As(err, &se) || switchboard.CodeOf(err) != switchboardv1.ErrorCode_ERROR_CODE_NOT_JOINED {
		t.Fatalf("the cause is not visible through the PublishError: %v", err)
	}
	first := pe.IdempotencyKey
	_, err = alice.Publish(ctx(t), "room", "not joined yet")
	if !errors.As(err, &pe) || pe.IdempotencyKey == first {
		t.Errorf("a second call reused the key %s: %v", first, err)
	}

	_, err = alice.Publish(ctx(t), "room", "not joined yet", switchboard.IdempotencyKey("order-7"))
	if !errors.As(err, &pe) || pe.IdempotencyKey != "order-7" {
		t.Errorf("publish with a key: %v", err)
	}
	_, err = alice.Publish(ctx(t), "room", 42, switchboard.IdempotencyKey("order-8"))
	if !errors.As(err, &pe) || pe.IdempotencyKey != "order-8" || switchboard.CodeOf(err) != 0 {
		t.Errorf("publish of bad content: %v", err)
	}

	// The key of a failed publish can be published with: the server sees
	// it for the first time, since the failure had no effect.
	join(t, alice, "room")
	ack := publishAck(t, alice, "room", "now joined", switchboard.IdempotencyKey(first))
	if ack.GetDuplicate() || ack.GetOffset() != 1 {
		t.Errorf("publish with the failed call's key: %v", ack)
	}
}

// The Redis broker's faults. A node gives up on Redis after 200 ms and
// checks Redis's health every 100 ms (default 1 s), so that it finds Redis
// answering again right after a SIGCONT, as a test can rely on.

// startRedisNode starts a redis-server and a server node using it, waits
// until the node is ready, and publishes once to a room of its own.
//
// That first publish makes Redis load the server's publish script, which
// the server sends as EVALSHA and loads only when Redis answers NOSCRIPT.
// On a fresh Redis, the first publish sent to a hung Redis would get that
// answer only after the resume, from a server that gave up on it: it would
// never be applied (its OUTCOME_UNKNOWN is still right, but these tests are
// about a publish that was).
func startRedisNode(t *testing.T) (*testserver.Redis, *testserver.Server) {
	t.Helper()
	redis := testserver.StartRedis(t)
	env := redis.ServerEnv()
	env["SWITCHBOARD_REDIS__COMMAND_TIMEOUT"] = "200ms"
	env["SWITCHBOARD_REDIS__HEALTH_INTERVAL"] = "100ms"
	srv := testserver.Start(t, testserver.Options{Env: env})
	waitReady(t, srv)
	apiPublish(t, srv, "warm-up", "loads the scripts")
	return redis, srv
}

// waitReady polls the server's /readyz until it answers 200 (it answers
// 503 while the node cannot reach Redis).
func waitReady(t *testing.T, srv *testserver.Server) {
	t.Helper()
	url := fmt.Sprintf("http://%s:%d/readyz", srv.Host, srv.Port)
	deadline := time.Now().Add(wait)
	for {
		req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		last := ""
		if resp, err := apiClient.Do(req); err != nil {
			last = err.Error()
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server was not ready within %s (last: %s); its output:\n%s", wait, last, srv.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishAck publishes and returns the acknowledgement; an error fails the
// test.
func publishAck(t *testing.T, c *switchboard.Client, room string, content switchboard.Content, opts ...switchboard.PublishOption) *switchboardv1.PublishReply {
	t.Helper()
	ack, err := c.Publish(ctx(t), room, content, opts...)
	if err != nil {
		t.Fatalf("publish to %s: %v", room, err)
	}
	return ack
}

func TestPublishRetriesWhileRedisHangsAndIsAppliedOnce(t *testing.T) {
	t.Parallel()
	redis, srv := startRedisNode(t)
	alice := dial(t, srv, "alice")
	bob := dial(t, srv, "bob")
	join(t, alice, "orders")
	sub := join(t, bob, "orders")

	if err := redis.Pause(); err != nil {
		t.Fatal(err)
	}
	// The first attempt reaches the hung Redis and is answered
	// OUTCOME_UNKNOWN after 200 ms; the retries (UNAVAILABLE while the node
	// waits for Redis) span at least 800 ms, so one is sent after the
	// resume, with the same key, and finds the first attempt applied.
	resume := time.AfterFunc(700*time.Millisecond, redis.Resume)
	defer resume.Stop()
	ack := publishAck(t, alice, "orders", "paid")
	if !ack.GetDuplicate() || ack.GetOffset() != 1 {
		t.Fatalf("ack %v: want the first attempt's (offset 1, duplicate)", ack)
	}
	if m := next(t, sub); m.Offset != 1 || m.Text() != "paid" || m.Sender != "alice" {
		t.Errorf("message %d %q from %s", m.Offset, m.Text(), m.Sender)
	}
	noMessage(t, sub, 500*time.Millisecond)
}

func TestPublishWithUnknownOutcomeIsRetriedWithItsKey(t *testing.T) {
	t.Parallel()
	redis, srv := startRedisNode(t)
	alice := dial(t, srv, "alice", switchboard.WithPublishRetries(0))
	bob := dial(t, srv, "bob")
	join(t, alice, "orders")
	sub := join(t, bob, "orders")

	if err := redis.Pause(); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Publish(ctx(t), "orders", "paid")
	redis.Resume()
	var pe *switchboard.PublishError
	var se *switchboard.ServerError
	if !errors.As(err, &pe) || !errors.As(err, &se) || se.Code != switchboardv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN || !se.Temporary {
		t.Fatalf("publish to a hung Redis: %v", err)
	}
	if !generatedKey.MatchString(pe.IdempotencyKey) {
		t.Fatalf("key %q", pe.IdempotencyKey)
	}

	waitReady(t, srv)
	ack := publishAck(t, alice, "orders", "paid", switchboard.IdempotencyKey(pe.IdempotencyKey))
	if !ack.GetDuplicate() || ack.GetOffset() != 1 {
		t.Fatalf("retry with the key: %v; want the first attempt's (offset 1, duplicate)", ack)
	}
	if m := next(t, sub); m.Offset != 1 || m.Text() != "paid" {
		t.Errorf("message %d %q", m.Offset, m.Text())
	}
	noMessage(t, sub, 500*time.Millisecond)
}

func TestPublishRetriesEndWithTheContextAndWithClose(t *testing.T) {
	t.Parallel()
	redis, srv := startRedisNode(t)
	alice := dial(t, srv, "alice", switchboard.WithPublishRetries(1000))
	join(t, alice, "orders")
	if err := redis.Pause(); err != nil {
		t.Fatal(err) // t.Cleanup resumes it
	}

	c, cancel := context.WithCancel(context.Background())
	time.AfterFunc(800*time.Millisecond, cancel)
	started := time.Now()
	_, err := alice.Publish(c, "orders", "cancelled")
	var pe *switchboard.PublishError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &pe) || pe.IdempotencyKey == "" {
		t.Fatalf("publish with a cancelled context: %v", err)
	}
	if elapsed := time.Since(started); elapsed > 5*time.Second {
		t.Errorf("the cancel took %s to stop the retries", elapsed)
	}

	done := make(chan error, 1)
	go func() {
		_, err := alice.Publish(context.Background(), "orders", "closed")
		done <- err
	}()
	time.Sleep(800 * time.Millisecond)
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done); !errors.Is(err, switchboard.ErrClosed) || !errors.As(err, &pe) {
		t.Fatalf("publish while closing: %v", err)
	}
}
