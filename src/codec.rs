//! Envelope ⇄ WebSocket frame, for both subprotocols. Pure functions: no I/O,
//! no shared state, so they can be fuzzed directly.
//!
//! Server frames travel through the system as binary protobuf `Bytes`,
//! encoded once and shared by every recipient; a connection that negotiated
//! the JSON subprotocol converts them to canonical proto3 JSON just before
//! writing. JSON is the debugging path, protobuf the product.

use bytes::Bytes;
use prost::Message as _;
use tokio_tungstenite::tungstenite::Message;

use crate::proto::{ClientFrame, ServerFrame};

/// Subprotocol name for binary protobuf frames (the default).
pub const PROTO_SUBPROTOCOL: &str = "switchboard.v1.proto";
/// Subprotocol name for text frames with canonical proto3 JSON.
pub const JSON_SUBPROTOCOL: &str = "switchboard.v1.json";

/// The negotiated frame encoding of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Binary frames, protobuf-encoded.
    Proto,
    /// Text frames, canonical proto3 JSON.
    Json,
}

impl Encoding {
    /// The subprotocol name for this encoding.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Proto => PROTO_SUBPROTOCOL,
            Encoding::Json => JSON_SUBPROTOCOL,
        }
    }

    /// Chooses the encoding from a `Sec-WebSocket-Protocol` request header.
    ///
    /// No header means protobuf (and no protocol is echoed back). Otherwise
    /// the first offered name that the server supports wins. `Err` when names
    /// were offered but none is supported.
    pub fn negotiate(offered: Option<&str>) -> Result<Option<Encoding>, UnsupportedSubprotocol> {
        let Some(offered) = offered else {
            return Ok(None);
        };
        for name in offered.split(',').map(str::trim) {
            match name {
                PROTO_SUBPROTOCOL => return Ok(Some(Encoding::Proto)),
                JSON_SUBPROTOCOL => return Ok(Some(Encoding::Json)),
                _ => {}
            }
        }
        Err(UnsupportedSubprotocol)
    }
}

/// None of the subprotocols a client offered is supported.
#[derive(Debug, thiserror::Error)]
#[error("unsupported subprotocol; use {PROTO_SUBPROTOCOL} or {JSON_SUBPROTOCOL}")]
pub struct UnsupportedSubprotocol;

/// Why a client frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A text frame on the binary subprotocol or a binary frame on the JSON
    /// one (close 1003).
    #[error("{0} frame not allowed on this subprotocol")]
    WrongFrameType(&'static str),
    /// The bytes are not a valid `ClientFrame` (error reply, connection kept).
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Decodes a data frame into a `ClientFrame`. Returns `Ok(None)` for control
/// frames (ping, pong, close), which the caller handles itself.
pub fn decode_client(
    encoding: Encoding,
    message: &Message,
) -> Result<Option<ClientFrame>, DecodeError> {
    match (encoding, message) {
        (Encoding::Proto, Message::Binary(data)) => ClientFrame::decode(data.as_ref())
            .map(Some)
            .map_err(|e| DecodeError::Malformed(e.to_string())),
        (Encoding::Json, Message::Text(text)) => serde_json::from_str(text.as_str())
            .map(Some)
            .map_err(|e| DecodeError::Malformed(e.to_string())),
        (Encoding::Proto, Message::Text(_)) => Err(DecodeError::WrongFrameType("text")),
        (Encoding::Json, Message::Binary(_)) => Err(DecodeError::WrongFrameType("binary")),
        (_, Message::Frame(_)) => Err(DecodeError::Malformed("raw frame".to_owned())),
        _ => Ok(None),
    }
}

/// Encodes a server frame once, as binary protobuf.
pub fn encode_server(frame: &ServerFrame) -> Bytes {
    Bytes::from(frame.encode_to_vec())
}

/// Turns a binary-encoded server frame into the WebSocket message for
/// `encoding`. For protobuf this only wraps the shared bytes.
pub fn to_message(encoding: Encoding, frame: Bytes) -> Message {
    match encoding {
        Encoding::Proto => Message::Binary(frame),
        Encoding::Json => {
            // The bytes were produced by `encode_server`, so decoding them and
            // serializing generated types cannot fail.
            let decoded = ServerFrame::decode(frame).unwrap_or_default();
            let json = serde_json::to_string(&decoded).unwrap_or_else(|_| "{}".to_owned());
            Message::text(json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{client_frame::Command, server_frame::Kind, PingReply, PingRequest};

    #[test]
    fn negotiation() {
        assert_eq!(Encoding::negotiate(None).unwrap(), None);
        assert_eq!(
            Encoding::negotiate(Some("foo, switchboard.v1.json")).unwrap(),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::negotiate(Some("switchboard.v1.proto,switchboard.v1.json")).unwrap(),
            Some(Encoding::Proto)
        );
        assert!(Encoding::negotiate(Some("chat")).is_err());
    }

    #[test]
    fn wrong_frame_types() {
        let text = Message::text("{}");
        assert!(matches!(
            decode_client(Encoding::Proto, &text),
            Err(DecodeError::WrongFrameType("text"))
        ));
        let bin = Message::Binary(Bytes::from_static(b"\x08\x01"));
        assert!(matches!(
            decode_client(Encoding::Json, &bin),
            Err(DecodeError::WrongFrameType("binary"))
        ));
    }

    #[test]
    fn json_round_trip() {
        let msg = Message::text(r#"{"id":7,"ping":{},"futureField":1}"#);
        let frame = decode_client(Encoding::Json, &msg).unwrap().unwrap();
        assert_eq!(frame.id, 7);
        assert_eq!(frame.command, Some(Command::Ping(PingRequest {})));

        let reply = ServerFrame {
            id: 7,
            kind: Some(Kind::Ping(PingReply { timestamp_ms: 5 })),
        };
        let Message::Text(text) = to_message(Encoding::Json, encode_server(&reply)) else {
            panic!("expected text");
        };
        assert_eq!(text.as_str(), r#"{"id":7,"ping":{"timestampMs":"5"}}"#);
    }

    #[test]
    fn malformed_binary_is_an_error_not_a_panic() {
        let msg = Message::Binary(Bytes::from_static(&[0xff, 0xff, 0xff]));
        assert!(matches!(
            decode_client(Encoding::Proto, &msg),
            Err(DecodeError::Malformed(_))
        ));
    }
}
