//! Conformance material shared by every Switchboard implementation.
//!
//! - [`vectors`]: the golden vectors (`tests/vectors/`): representative
//!   envelopes in binary and canonical JSON, produced from the Rust types by
//!   the `switchboard-vectors` tool and checked by every SDK.
//! - [`runner`]: the reference scenario runner. It replays the data-driven
//!   scenarios of `tests/scenarios/` (schema:
//!   `proto/switchboard/testing/v1/scenario.proto`) against a live server
//!   with a minimal client that implements the SDK contract: reconnect,
//!   rejoin with `since`, dedupe by offset.
//! - [`proto`]: the generated test-only and example types.

pub mod runner;
pub mod vectors;

pub mod proto {
    //! Generated types for `switchboard.testing.v1` and the example `chat.v1`
    //! package, with their proto3 JSON mapping.
    #![allow(missing_docs, clippy::all, unreachable_pub)]

    pub mod testing {
        //! `switchboard.testing.v1`: scenario and vector schemas.
        include!(concat!(env!("OUT_DIR"), "/switchboard.testing.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/switchboard.testing.v1.serde.rs"));
    }

    pub mod chat {
        //! `chat.v1`: the example application's payload types.
        include!(concat!(env!("OUT_DIR"), "/chat.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/chat.v1.serde.rs"));
    }
}
