package switchboard

import "time"

// State is where a client is in its life.
type State int32

const (
	// StateConnecting: opening the first connection (inside [Dial]).
	StateConnecting State = iota + 1
	// StateConnected: connected, authenticated and every room rejoined;
	// commands flow.
	StateConnected
	// StateReconnecting: the connection dropped; the client is waiting for
	// or making the next attempt. Commands wait for it (within their
	// timeout).
	StateReconnecting
	// StateClosed: closed for good, by [Client.Close], a terminal close code
	// or a refused login. Commands fail with a [*ClosedError].
	StateClosed
)

// String returns "connecting", "connected", "reconnecting" or "closed".
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// StateChange is one transition, as [Client.StateChanges] reports it.
type StateChange struct {
	// State is the new state.
	State State
	// Code is the close code that caused StateReconnecting or StateClosed;
	// 0 when the connection failed without one (e.g. the server was
	// unreachable).
	Code int
	// Reason is the close reason or the failure, for logs.
	Reason string
	// Attempt is, for StateReconnecting, the number of the attempt about to
	// be made (1, 2, ...).
	Attempt int
	// Delay is, for StateReconnecting, the wait before that attempt.
	Delay time.Duration
	// Err is, for StateClosed, the error that ended the client (nil after
	// [Client.Close]).
	Err error
}
