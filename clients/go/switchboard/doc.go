// Package switchboard is the Go SDK of Switchboard, a schema-first real-time
// server: one WebSocket per client, binary protobuf frames, rooms with
// ordered and recoverable message streams.
//
//	client, err := switchboard.Dial(ctx, "ws://127.0.0.1:8080/ws", switchboard.WithName("alice"))
//	if err != nil { ... }
//	defer client.Close()
//	sub, err := client.Join(ctx, "lobby", nil)
//	ack, err := client.Publish(ctx, "lobby", "hello")
//	for msg := range sub.Messages() {
//		fmt.Println(msg.Offset, msg.Sender, msg.Text())
//	}
//
// # Components
//
//   - client.go: [Dial], the [Client] and its commands. Every command takes a
//     context, waits (bounded) for a connection while reconnecting, and has a
//     timeout ([WithCommandTimeout], default 10 s).
//   - publish.go: [Client.Publish]: the idempotency key of every publish
//     (the application's, or a generated one) and the automatic retries of
//     a publish the broker did not carry out or did not confirm
//     ([WithPublishRetries]).
//   - connection.go: one WebSocket, its reader goroutine and the commands in
//     flight on it. The reader decodes frames and dispatches them in arrival
//     order; it never blocks on the application.
//   - reconnect.go: the supervisor goroutine: after a lost connection it
//     reconnects with full-jitter [Backoff], sends connect again and rejoins
//     every room with since = the last delivered position, or ends the client
//     after a terminal close code ([ShouldReconnect]).
//   - subscription.go: a joined room, or one a backend subscribed the
//     connection to ([Client.ServerSubscriptions]). A bounded buffer between
//     the reader and one delivery goroutine that hands messages to
//     [Subscription.Messages] in offset order, once each, and reports each
//     [Gap] in order.
//   - messages.go, registry.go: received values and typed application
//     payloads ([TypeRegistry]).
//   - queue.go: the bounded, drop-oldest channels of direct messages,
//     notifications, server subscriptions, presence events and state
//     changes.
//   - errors.go, state.go, backoff.go, codes.go: error types, connection
//     states, reconnect delays and the close-code policy.
//
// The generated protocol types live in
// github.com/switchboard-rt/switchboard/clients/go/gen/switchboard/v1
// (package switchboardv1); the API takes and returns them where they fit
// (acknowledgements, positions, members).
//
// # Goroutines
//
// A client runs one supervisor goroutine, one reader and one watchdog per
// connection, and one delivery goroutine per joined room. [Client.Close]
// ends all of them before it returns.
package switchboard
