package switchboard

import (
	"errors"
	"time"
)

// maxExponent caps the exponent of the backoff ceiling: 2^62 times any
// positive initial delay is already far beyond any sane maximum, and the
// shift cannot overflow.
const maxExponent = 62

// Backoff is full-jitter exponential backoff: the delay before reconnect
// attempt n (0 for the first) is drawn uniformly from
// [0, min(Max, Initial * 2^n)). The zero value is not valid; start from
// [DefaultBackoff].
type Backoff struct {
	// Initial is the ceiling of the first delay.
	Initial time.Duration
	// Max caps every delay.
	Max time.Duration
}

// DefaultBackoff is the protocol's default: 0.5 s growing to 20 s.
var DefaultBackoff = Backoff{Initial: 500 * time.Millisecond, Max: 20 * time.Second}

// Validate reports whether the bounds are usable: both positive, Initial at
// most Max.
func (b Backoff) Validate() error {
	if b.Initial <= 0 || b.Max <= 0 {
		return errors.New("switchboard: backoff delays must be positive")
	}
	if b.Initial > b.Max {
		return errors.New("switchboard: backoff initial delay exceeds its maximum")
	}
	return nil
}

// Ceiling is the upper bound of the delay before attempt (0 for the first);
// a negative attempt counts as 0.
func (b Backoff) Ceiling(attempt int) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	if attempt > maxExponent {
		attempt = maxExponent
	}
	// Initial << attempt overflows long before maxExponent; compare first.
	if b.Initial > b.Max>>uint(attempt) {
		return b.Max
	}
	return b.Initial << uint(attempt)
}

// Delay is a random delay before attempt; rand returns values in [0, 1)
// (e.g. math/rand/v2.Float64).
func (b Backoff) Delay(attempt int, rand func() float64) time.Duration {
	return time.Duration(rand() * float64(b.Ceiling(attempt)))
}
