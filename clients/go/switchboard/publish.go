package switchboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	mathrand "math/rand/v2"
	"time"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// publishBackoff spaces the automatic retries of a publish: full jitter,
// from 100 ms doubling up to 2 s.
var publishBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}

// PublishOption configures [Client.Publish].
type PublishOption func(*switchboardv1.PublishRequest)

// IdempotencyKey gives a publish the application's own key, e.g. an order
// id, or the key of a failed publish ([PublishError.IdempotencyKey]): a
// publish with the same key (from the same user, to the same room, within
// the server's idempotency window, 5 minutes by default) returns the first
// one's acknowledgement with Duplicate set and is delivered once. A publish
// with an application key that a lost connection cut off is also sent again
// after the reconnect. Without this option the client generates a key for
// each call.
func IdempotencyKey(key string) PublishOption {
	return func(r *switchboardv1.PublishRequest) { r.IdempotencyKey = key }
}

// Publish publishes content (see [Content]) to a joined room and returns the
// acknowledgement: the message's offset and epoch, id, timestamp, and
// whether it was a duplicate of an earlier publish with the same key.
//
// Every publish carries an idempotency key: the [IdempotencyKey] given, or
// 32 random hex characters generated for this call. That makes it safe to
// send again, which the client does when the server answers
// ERROR_CODE_UNAVAILABLE (not carried out) or ERROR_CODE_OUTCOME_UNKNOWN (the
// broker may or may not have applied it): the same publish, with the same
// key, after a full-jitter delay (100 ms doubling up to 2 s), up to
// [WithPublishRetries] times (default 3). If an earlier attempt was applied,
// the acknowledgement is its own, with Duplicate set, and nothing is
// delivered twice. Each attempt is a command with its own timeout; ctx
// bounds them all (when it ends between attempts, Publish returns as a
// command whose context ended does), and [Client.Close] stops them. Other
// errors, timeouts and lost connections are not retried here.
//
// Every error is a [*PublishError] carrying the key; errors.As, errors.Is
// and [CodeOf] see through it to the cause. To retry when the outcome is
// unknown (ERROR_CODE_OUTCOME_UNKNOWN, a [*TimeoutError], a
// [*ConnectionLostError]), publish the same content again with
// IdempotencyKey(err.IdempotencyKey). A publish that fails with
// ERROR_CODE_UNAVAILABLE had no effect: when an earlier attempt's outcome
// was unknown, the error is that attempt's ERROR_CODE_OUTCOME_UNKNOWN
// instead.
func (c *Client) Publish(ctx context.Context, room string, content Content, opts ...PublishOption) (*switchboardv1.PublishReply, error) {
	request := &switchboardv1.PublishRequest{Room: room}
	for _, opt := range opts {
		opt(request)
	}
	// Only the application's own keys are resent after a lost connection,
	// as before generated keys existed: a keyless publish still fails with
	// ConnectionLostError, now carrying the key to retry with.
	resend := request.IdempotencyKey != ""
	if !resend {
		request.IdempotencyKey = newIdempotencyKey()
	}
	payload, err := ToPayload(content)
	if err != nil {
		return nil, &PublishError{IdempotencyKey: request.IdempotencyKey, Err: err}
	}
	request.Payload = payload
	ack, err := c.publish(ctx, request, resend)
	if err != nil {
		return nil, &PublishError{IdempotencyKey: request.IdempotencyKey, Err: err}
	}
	return ack, nil
}

// publish sends request, and sends it again while the answer is a
// retryable broker error and retries are left.
func (c *Client) publish(ctx context.Context, request *switchboardv1.PublishRequest, resend bool) (*switchboardv1.PublishReply, error) {
	started := time.Now()
	frame := &switchboardv1.ClientFrame{Command: &switchboardv1.ClientFrame_Publish{Publish: request}}
	// unknown is the first OUTCOME_UNKNOWN answer: from then on the
	// publish may have been applied, whatever later attempts say.
	var unknown error
	for attempt := 0; ; attempt++ {
		reply, err := c.command(ctx, "publish", frame, resend, nil)
		if err == nil {
			return reply.GetPublish(), nil
		}
		code := CodeOf(err)
		switch {
		case code == switchboardv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN && unknown == nil:
			unknown = err
		case code == switchboardv1.ErrorCode_ERROR_CODE_UNAVAILABLE && unknown != nil:
			err = unknown
		}
		if !retryablePublish(code) || attempt >= c.cfg.publishRetries {
			return nil, err
		}
		delay := publishBackoff.Delay(attempt, mathrand.Float64)
		c.log.Debug("switchboard: retrying a publish", "room", request.GetRoom(), "retry", attempt+1, "delay", delay, "error", err)
		if err := c.sleep(ctx, delay); err != nil {
			if ctx.Err() != nil {
				given := time.Since(started)
				if deadline, ok := ctx.Deadline(); ok {
					given = deadline.Sub(started)
				}
				return nil, contextError(ctx, "publish", given)
			}
			return nil, err
		}
	}
}

// retryablePublish reports whether a publish answered with code is sent
// again automatically: the broker did not carry it out, or may have (the
// idempotency key makes a second application impossible).
func retryablePublish(code switchboardv1.ErrorCode) bool {
	return code == switchboardv1.ErrorCode_ERROR_CODE_UNAVAILABLE ||
		code == switchboardv1.ErrorCode_ERROR_CODE_OUTCOME_UNKNOWN
}

// sleep waits for d; it fails with ctx's error when ctx ends first, or with
// a [*ClosedError] when the client closes first.
func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.closedError()
	}
}

// newIdempotencyKey returns 32 lowercase hex characters (128 random bits),
// unique enough that two publishes never share one by chance.
func newIdempotencyKey() string {
	var b [16]byte
	// Since Go 1.24 crypto/rand.Read never returns an error (it crashes the
	// program instead).
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
