//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a
//! public API). They drive the real codec and the real command dispatch with
//! an in-memory broker, without sockets.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::Message;

use crate::codec::{self, Encoding};
use crate::config::Config;
use crate::outbound::{ConnHandle, Outbound};
use crate::server::Shared;
use crate::session::Session;

/// Decodes `data` as a client frame in both encodings; whatever decodes is
/// re-encoded, so both directions of the codec run.
pub fn codec(data: &[u8]) {
    if let Ok(Some(frame)) = codec::decode_client(Encoding::Proto, &Message::binary(data.to_vec()))
    {
        let bytes = prost::Message::encode_to_vec(&frame);
        let again = codec::decode_client(Encoding::Proto, &Message::binary(bytes))
            .expect("a re-encoded frame decodes")
            .expect("a re-encoded frame is a data frame");
        assert_eq!(again, frame, "re-encoding changed the frame");
    }
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = codec::decode_client(Encoding::Json, &Message::text(text));
    let _ = codec::to_message(Encoding::Json, bytes::Bytes::copy_from_slice(data));
}

/// Several sessions on one node, fed a script of frames.
pub struct Dispatch {
    runtime: tokio::runtime::Runtime,
    sessions: Vec<(Session, ConnHandle)>,
    scratch: VecDeque<Outbound>,
}

impl Dispatch {
    /// A node in development mode with small limits, and `sessions`
    /// sessions on it.
    pub fn new(sessions: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = Config::default();
        config.limits.outbound_queue = 64;
        config.limits.max_rooms_per_connection = 8;
        config.history.max_messages = 16;
        let (shared, _broker) = {
            let _guard = runtime.enter();
            Shared::new(config).expect("default configuration")
        };
        let sessions = (0..sessions)
            .map(|_| {
                let conn = ConnHandle::new(shared.config.limits.outbound_queue);
                (Session::new(shared.clone(), conn.clone(), None), conn)
            })
            .collect();
        Self {
            runtime,
            sessions,
            scratch: VecDeque::new(),
        }
    }

    /// Runs a script: each step is a session byte, a length byte, then that
    /// many bytes of frame. Frames that do not decode take the malformed
    /// path, like a real connection's.
    pub fn run(&mut self, mut script: &[u8]) {
        while script.len() >= 2 {
            let who = usize::from(script[0]) % self.sessions.len();
            let len = usize::from(script[1]).min(script.len() - 2);
            let data = &script[2..2 + len];
            script = &script[2 + len..];
            let (session, _) = &mut self.sessions[who];
            match codec::decode_client(Encoding::Proto, &Message::binary(data.to_vec())) {
                Ok(Some(frame)) => {
                    self.runtime.block_on(Box::pin(session.handle(frame)));
                }
                Ok(None) => {}
                Err(e) => session.malformed(&e.to_string()),
            }
            // Deliver, as a connection's writer would.
            for (_, conn) in &self.sessions {
                self.scratch.clear();
                conn.take_into(&mut self.scratch);
            }
        }
        for (session, _) in &mut self.sessions {
            self.runtime.block_on(session.close());
        }
    }
}
