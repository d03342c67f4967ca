package switchboard

// closeAbnormal is the close code reported when a connection ended without a
// Close frame (WebSocket 1006).
const closeAbnormal = 1006

// ShouldReconnect reports whether a connection closed with code should be
// reconnected when no Disconnect push said otherwise. Code 0 means the
// connection ended without any Close frame.
//
// Reconnect: network failures (0, 1005, 1006), 1001 (server shutting down),
// 1002, 1011-1014 and the application range 4000-4499. Terminal: 1000, 1003,
// 1007, 1008 (authentication, expired token), 1009, 4500-4999 and every other
// code. Every Switchboard SDK applies the same policy.
func ShouldReconnect(code int) bool {
	switch code {
	case 0, 1001, 1002, 1005, 1006, 1011, 1012, 1013, 1014:
		return true
	}
	return code >= 4000 && code <= 4499
}
