package switchboard

import "sync"

// dropOldest is a bounded channel its producers never block on: when it is
// full, the oldest value is dropped to make room. The application reads the
// channel directly; after close it still yields what is buffered, then ends.
type dropOldest[T any] struct {
	// mu serialises producers and close, so a send never races the close and
	// the drain-then-send below cannot be overtaken by another producer.
	mu     sync.Mutex
	ch     chan T
	closed bool
	// dropped counts values dropped because the channel was full.
	dropped uint64
}

func newDropOldest[T any](capacity int) *dropOldest[T] {
	return &dropOldest[T]{ch: make(chan T, capacity)}
}

// push appends v, dropping the oldest buffered value when the channel is
// full. It never blocks; after close it does nothing.
func (q *dropOldest[T]) push(v T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	// Two rounds suffice: the consumer only ever removes values, so after
	// one is drained here the send has room.
	for range 2 {
		select {
		case q.ch <- v:
			return
		default:
		}
		select {
		case <-q.ch:
			q.dropped++
		default:
		}
	}
	q.dropped++
}

// close ends the channel once its buffered values are read. Idempotent.
func (q *dropOldest[T]) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}
