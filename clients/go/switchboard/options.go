package switchboard

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"
)

// Defaults of the options.
const (
	// DefaultCommandTimeout bounds every command, including the time spent
	// waiting for a reconnect.
	DefaultCommandTimeout = 10 * time.Second
	// DefaultBufferSize bounds every receive buffer.
	DefaultBufferSize = 1024
	// DefaultMaxInFlight bounds the commands waiting or in flight at once.
	DefaultMaxInFlight = 1024
	// DefaultPublishRetries is how many times a publish answered
	// ERROR_CODE_UNAVAILABLE or ERROR_CODE_OUTCOME_UNKNOWN is sent again.
	DefaultPublishRetries = 3
)

// Option configures [Dial].
type Option func(*config)

type config struct {
	token          string
	name           string
	types          []proto.Message
	registry       *TypeRegistry
	commandTimeout time.Duration
	backoff        Backoff
	bufferSize     int
	maxInFlight    int
	publishRetries int
	header         http.Header
	logger         *slog.Logger
	// serverSubscription configures the subscriptions of Subscribed
	// pushes.
	serverSubscription joinOptions
}

func defaultConfig() config {
	return config{
		commandTimeout: DefaultCommandTimeout,
		backoff:        DefaultBackoff,
		bufferSize:     DefaultBufferSize,
		maxInFlight:    DefaultMaxInFlight,
		publishRetries: DefaultPublishRetries,
	}
}

func (c *config) validate() error {
	if c.commandTimeout <= 0 {
		return errors.New("switchboard: the command timeout must be positive")
	}
	if c.bufferSize < 1 {
		return errors.New("switchboard: the buffer size must be at least 1")
	}
	if c.maxInFlight < 1 {
		return errors.New("switchboard: max in flight must be at least 1")
	}
	if c.publishRetries < 0 {
		return errors.New("switchboard: publish retries must not be negative")
	}
	return c.backoff.Validate()
}

// WithToken authenticates with a JWT signed with the server's key. It is sent
// again on every reconnect, until [Client.Refresh] replaces it.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// WithName connects as an anonymous user of this name (servers in
// development mode only).
func WithName(name string) Option {
	return func(c *config) { c.name = name }
}

// WithTypes registers generated message types (any value of each, e.g.
// (*chatv1.ChatMessage)(nil)): received payloads of these types are decoded
// into [Body.Value]. May be given more than once.
func WithTypes(types ...proto.Message) Option {
	return func(c *config) { c.types = append(c.types, types...) }
}

// WithTypeRegistry uses registry (shared, and open to later registrations)
// for received payloads; types given [WithTypes] are added to it.
func WithTypeRegistry(registry *TypeRegistry) Option {
	return func(c *config) { c.registry = registry }
}

// WithCommandTimeout bounds every command (default 10 s), including time
// spent waiting for a reconnect, and every step of opening a connection. A
// context deadline can only shorten it.
func WithCommandTimeout(d time.Duration) Option {
	return func(c *config) { c.commandTimeout = d }
}

// WithBackoff sets the reconnect delays (default [DefaultBackoff]: full
// jitter from 0.5 s to 20 s).
func WithBackoff(b Backoff) Option {
	return func(c *config) { c.backoff = b }
}

// WithBufferSize bounds every receive buffer (default 1024): each
// subscription's undelivered messages and presence events, the direct
// messages, notifications, server subscriptions and state changes.
func WithBufferSize(n int) Option {
	return func(c *config) { c.bufferSize = n }
}

// WithMaxInFlight bounds the commands waiting or in flight at once (default
// 1024); more wait for a slot, within their timeout.
func WithMaxInFlight(n int) Option {
	return func(c *config) { c.maxInFlight = n }
}

// WithPublishRetries sets how many times [Client.Publish] sends a publish
// again, with the same idempotency key, after the server answered
// ERROR_CODE_UNAVAILABLE or ERROR_CODE_OUTCOME_UNKNOWN (default 3; 0 turns
// the retries off). The delay before retry n (0 for the first) is drawn
// from [0, min(2 s, 100 ms * 2^n)).
func WithPublishRetries(n int) Option {
	return func(c *config) { c.publishRetries = n }
}

// WithHTTPHeader adds headers to the WebSocket handshake (e.g. Origin).
func WithHTTPHeader(h http.Header) Option {
	return func(c *config) { c.header = h.Clone() }
}

// WithLogger logs reconnect attempts and ignored frames to logger (default:
// nothing is logged).
func WithLogger(logger *slog.Logger) Option {
	return func(c *config) { c.logger = logger }
}

// WithServerSubscriptionOptions configures the subscriptions a backend makes
// for this client (see [Client.ServerSubscriptions]) as opts configure a
// [Client.Join]: [OnGap] is told about their gaps (Gap.Room says which).
// Presence events follow the backend's choice, which the Subscribed push
// carries, also when the room is rejoined after a reconnect;
// [WithPresenceEvents] asks for them for every such subscription.
func WithServerSubscriptionOptions(opts ...JoinOption) Option {
	return func(c *config) {
		for _, opt := range opts {
			opt(&c.serverSubscription)
		}
	}
}
