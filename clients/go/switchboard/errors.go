package switchboard

import (
	"context"
	"errors"
	"fmt"
	"time"

	switchboardv1 "github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1"
)

// ErrClosed matches (with errors.Is) every [*ClosedError]: the client is
// closed, or could not connect, and no command can run.
var ErrClosed = errors.New("switchboard: client closed")

// ServerError is an Error reply from the server: the command failed and the
// connection stays usable. Match on Code, never on Message.
type ServerError struct {
	// Code says what went wrong (e.g. ERROR_CODE_NOT_JOINED).
	Code switchboardv1.ErrorCode
	// Message is human-readable detail, for logs.
	Message string
	// Temporary is true when the same command may succeed if retried later.
	// Among the temporary codes, ERROR_CODE_UNAVAILABLE means the command
	// was not carried out, and ERROR_CODE_OUTCOME_UNKNOWN that the broker
	// did not confirm it in time: it may or may not have taken effect
	// (retry a publish with the same idempotency key; [Client.Publish] does
	// so itself, see [WithPublishRetries]).
	Temporary bool
	// RetryAfter is how long to wait before retrying (the server's
	// retry_after_ms), for ERROR_CODE_RATE_LIMITED; 0 otherwise.
	RetryAfter time.Duration
	// Command is the command that failed, e.g. "publish".
	Command string
}

func newServerError(e *switchboardv1.Error, command string) *ServerError {
	return &ServerError{
		Code:       e.GetCode(),
		Message:    e.GetMessage(),
		Temporary:  e.GetTemporary(),
		RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond,
		Command:    command,
	}
}

func (e *ServerError) Error() string {
	kind := "terminal"
	if e.Temporary {
		kind = "temporary"
	}
	prefix := "switchboard: "
	if e.Command != "" {
		prefix += e.Command + " failed: "
	}
	return fmt.Sprintf("%s%s (%s): %s", prefix, e.Code, kind, e.Message)
}

// CodeOf returns the server error code carried by err (anywhere in its chain),
// or ERROR_CODE_UNSPECIFIED when err is not a [*ServerError].
func CodeOf(err error) switchboardv1.ErrorCode {
	var se *ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return switchboardv1.ErrorCode_ERROR_CODE_UNSPECIFIED
}

// TimeoutError is a command that got no reply in time: within the client's
// command timeout or the context's deadline, whichever came first, including
// any time spent waiting for a reconnect. errors.Is(err,
// context.DeadlineExceeded) holds for it.
type TimeoutError struct {
	// Command is the command that timed out, e.g. "publish".
	Command string
	// After is the time the command was given.
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("switchboard: %s timed out after %s", e.Command, e.After)
}

// Timeout reports true: the error is a timeout (as net.Error has it).
func (e *TimeoutError) Timeout() bool { return true }

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// ClosedError says the client is closed for good, or could not connect. It
// matches [ErrClosed] with errors.Is.
type ClosedError struct {
	// Code is the WebSocket close code when one is known: 1000 after
	// [Client.Close], 1008 after an authentication failure or an expired
	// token, ... 0 when the connection could not be opened at all.
	Code int
	// Reason is the close reason or the failure, for logs.
	Reason string
	// Err is the underlying failure, if any.
	Err error
}

func (e *ClosedError) Error() string {
	text := "switchboard: connection failed"
	if e.Code != 0 {
		text = fmt.Sprintf("switchboard: connection closed (%d)", e.Code)
	}
	if e.Reason != "" {
		text += ": " + e.Reason
	}
	return text
}

// Is makes errors.Is(err, ErrClosed) true.
func (e *ClosedError) Is(target error) bool { return target == ErrClosed }

// Unwrap returns the underlying failure.
func (e *ClosedError) Unwrap() error { return e.Err }

// ConnectionLostError says the connection dropped while a command that is not
// safe to send twice was in flight: it may or may not have taken effect.
// Only [Client.Publish] without an application [IdempotencyKey] (inside a
// [*PublishError] that carries the generated key to retry with) and
// [Client.Direct] return it; give a publish an IdempotencyKey and the client
// sends it again after reconnecting instead.
type ConnectionLostError struct {
	// Command is the command whose outcome is unknown.
	Command string
}

func (e *ConnectionLostError) Error() string {
	return fmt.Sprintf("switchboard: connection lost while %s was in flight; its outcome is unknown", e.Command)
}

// PublishError is every error of [Client.Publish]: its cause and the
// idempotency key the publish carried, so that the application can publish
// again with [IdempotencyKey](err.IdempotencyKey) and be sure the message is
// delivered once. errors.As, errors.Is and [CodeOf] see through it to Err.
type PublishError struct {
	// IdempotencyKey is the key of every attempt: the application's
	// [IdempotencyKey], or the one the client generated for the call.
	IdempotencyKey string
	// Err is the cause: a [*ServerError], [*TimeoutError], [*ClosedError],
	// [*ConnectionLostError], the context's error, or content that cannot
	// be encoded.
	Err error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("%v (idempotency key %s)", e.Err, e.IdempotencyKey)
}

// Unwrap returns the cause.
func (e *PublishError) Unwrap() error { return e.Err }
