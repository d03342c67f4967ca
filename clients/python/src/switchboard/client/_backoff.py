"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# 2**64 seconds is already far beyond any sane cap; stop growing the exponent
# there so huge attempt counts cannot overflow a float.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff.

    The delay before reconnect attempt `n` (0 for the first) is drawn
    uniformly from `[0, min(maximum, initial * 2**n))`. The defaults are the
    protocol's: 0.5 s growing to 20 s.
    """

    initial: float = 0.5
    maximum: float = 20.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum <= 0:
            raise ValueError("backoff delays must be positive")
        if self.initial > self.maximum:
            raise ValueError("backoff initial delay exceeds its maximum")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before attempt `attempt`."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        return min(self.maximum, self.initial * 2.0 ** min(attempt, _MAX_EXPONENT))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """A random delay before attempt `attempt`; `rand` returns [0, 1)."""
        return rand() * self.ceiling(attempt)
