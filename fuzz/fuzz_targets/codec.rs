//! Any bytes as a client frame, in both subprotocols: the codec must never
//! panic, and a frame that decodes must re-encode to an equal frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    switchboard::fuzzing::codec(data);
});
