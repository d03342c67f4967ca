//! The benchmark payload: a marker every target carries untouched.
//!
//! Each published payload is ASCII so that every protocol can carry it (a
//! protobuf `bytes` field, a Centrifugo publication, a Socket.IO string):
//!
//! ```text
//! ~SB<kind><20-digit send time, ns since the run's clock origin><10-digit sequence><padding>
//! ```
//!
//! Receivers find markers by scanning the frame, which costs the same for
//! every target and needs no protocol decoding on the hot path. A frame that
//! batches several deliveries (Centrifugo may) holds several markers.

use std::time::Instant;

/// First bytes of every marker.
const MAGIC: &[u8; 3] = b"~SB";
const STAMP_DIGITS: usize = 20;
const SEQ_DIGITS: usize = 10;
/// The smallest payload that holds a marker.
pub const MIN_SIZE: usize = MAGIC.len() + 1 + STAMP_DIGITS + SEQ_DIGITS;

/// What a payload is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Counted and timed.
    Measured,
    /// Confirms that a subscriber is joined; not counted.
    Warmup,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Measured => b'm',
            Kind::Warmup => b'w',
        }
    }
}

/// One marker found in a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Measured or warm-up.
    pub kind: Kind,
    /// Send time, nanoseconds since the clock origin.
    pub sent_ns: u64,
    /// Publisher's sequence number.
    pub seq: u64,
}

/// The run's clock: one monotonic origin shared by publishers and receivers
/// (they live in the same process), so latency is receive time minus send time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the origin.
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// Writes a payload of `size` bytes (at least [`MIN_SIZE`]) into `out`.
pub fn encode(out: &mut Vec<u8>, kind: Kind, sent_ns: u64, seq: u64, size: usize) {
    use std::io::Write as _;
    out.clear();
    out.extend_from_slice(MAGIC);
    out.push(kind.byte());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{sent_ns:020}{:010}", seq % 10_000_000_000);
    out.resize(size.max(MIN_SIZE), b'.');
}

/// Calls `f` for every marker in `frame`.
pub fn scan(frame: &[u8], mut f: impl FnMut(Mark)) {
    let mut at = 0;
    while let Some(found) = find(&frame[at..]) {
        let start = at + found;
        if let Some(mark) = parse(&frame[start..]) {
            f(mark);
            at = start + MIN_SIZE;
        } else {
            at = start + MAGIC.len();
        }
    }
}

fn find(hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + MAGIC.len() <= hay.len() {
        match hay[i..].iter().position(|&b| b == MAGIC[0]) {
            None => return None,
            Some(p) => {
                i += p;
                if hay[i..].starts_with(MAGIC) {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

fn parse(bytes: &[u8]) -> Option<Mark> {
    if bytes.len() < MIN_SIZE {
        return None;
    }
    let kind = match bytes[MAGIC.len()] {
        b'm' => Kind::Measured,
        b'w' => Kind::Warmup,
        _ => return None,
    };
    let digits = &bytes[MAGIC.len() + 1..MIN_SIZE];
    let sent_ns = number(&digits[..STAMP_DIGITS])?;
    let seq = number(&digits[STAMP_DIGITS..])?;
    Some(Mark { kind, sent_ns, seq })
}

fn number(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_scan_many() {
        let mut a = Vec::new();
        encode(&mut a, Kind::Measured, 123_456_789, 42, 100);
        assert_eq!(a.len(), 100);
        let mut b = Vec::new();
        encode(&mut b, Kind::Warmup, u64::MAX, 7, 10);
        assert_eq!(b.len(), MIN_SIZE);
        let mut frame = b"\x0a\x03~S~~SBx".to_vec();
        frame.extend_from_slice(&a);
        frame.extend_from_slice(b"\x12\x00");
        frame.extend_from_slice(&b);
        let mut marks = Vec::new();
        scan(&frame, |m| marks.push(m));
        assert_eq!(
            marks,
            vec![
                Mark {
                    kind: Kind::Measured,
                    sent_ns: 123_456_789,
                    seq: 42
                },
                Mark {
                    kind: Kind::Warmup,
                    sent_ns: u64::MAX,
                    seq: 7
                },
            ]
        );
    }

    #[test]
    fn truncated_marker_is_ignored() {
        let mut a = Vec::new();
        encode(&mut a, Kind::Measured, 1, 1, 100);
        let mut marks = 0;
        scan(&a[..MIN_SIZE - 1], |_| marks += 1);
        assert_eq!(marks, 0);
    }
}
