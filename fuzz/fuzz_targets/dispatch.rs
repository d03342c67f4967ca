//! A script of frames from three connections of one node through the real
//! command dispatch (connect, rooms, publish, history, presence, direct,
//! refresh, ...): it must never panic, whatever the order or the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::fuzzing::Dispatch;

fuzz_target!(|data: &[u8]| {
    Dispatch::new(3).run(data);
});
