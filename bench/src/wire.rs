//! How each target is spoken to: the upgrade request, the frames to connect,
//! join and publish, and the keepalive frames that must be answered.
//!
//! Deliveries are recognised by the payload marker ([`crate::payload`]), not
//! by decoding, so every target pays the same receive cost in this tool.

use bytes::Bytes;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use switchboard::proto::{
    client_frame::Command, server_frame::Kind, ClientFrame, ConnectRequest, JoinRequest, Payload,
    PublishRequest, ServerFrame,
};
use tokio_tungstenite::tungstenite::Message;

/// A benchmark target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The Switchboard server (release build), binary protobuf subprotocol.
    Switchboard,
    /// Two Switchboard nodes sharing rooms through a local `redis-server`;
    /// connections alternate between the nodes, publishers use the first.
    #[value(name = "switchboard-redis")]
    SwitchboardRedis,
    /// The minimal tokio-tungstenite forwarder in this crate.
    Yardstick,
    /// Centrifugo v6 over its protobuf client protocol.
    Centrifugo,
    /// Socket.IO 4.8 on Node over its WebSocket transport.
    Socketio,
}

impl Target {
    /// Every target, in report order.
    pub const ALL: [Target; 5] = [
        Target::Switchboard,
        Target::SwitchboardRedis,
        Target::Yardstick,
        Target::Centrifugo,
        Target::Socketio,
    ];

    /// Lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Switchboard => "switchboard",
            Target::SwitchboardRedis => "switchboard-redis",
            Target::Yardstick => "yardstick",
            Target::Centrifugo => "centrifugo",
            Target::Socketio => "socketio",
        }
    }

    /// Path and query of the WebSocket endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Target::Switchboard | Target::SwitchboardRedis => "/ws",
            Target::Yardstick => "/",
            Target::Centrifugo => "/connection/websocket?format=protobuf",
            Target::Socketio => "/socket.io/?EIO=4&transport=websocket",
        }
    }

    /// The subprotocol to offer, if any.
    pub fn subprotocol(self) -> Option<&'static str> {
        match self {
            Target::Switchboard | Target::SwitchboardRedis => {
                Some(switchboard::codec::PROTO_SUBPROTOCOL)
            }
            _ => None,
        }
    }

    /// The frame that authenticates a new connection (sent right after the
    /// upgrade), if the protocol has one.
    pub fn hello(self, user: &str) -> Option<Message> {
        match self {
            Target::Switchboard | Target::SwitchboardRedis => Some(switchboard_frame(
                1,
                Command::Connect(ConnectRequest {
                    token: String::new(),
                    name: user.to_owned(),
                }),
            )),
            Target::Yardstick => None,
            Target::Centrifugo => Some(centrifugo::connect(1)),
            // The namespace connect; the open packet arrives first, unasked.
            Target::Socketio => Some(Message::text("40")),
        }
    }

    /// Whether `frame` completes the connect handshake.
    pub fn is_ready(self, frame: &Message) -> bool {
        match (self, frame) {
            (Target::Switchboard | Target::SwitchboardRedis, Message::Binary(data)) => {
                ServerFrame::decode(data.as_ref())
                    .is_ok_and(|f| f.id == 1 && matches!(f.kind, Some(Kind::Connect(_))))
            }
            (Target::Yardstick, _) => true,
            (Target::Centrifugo, Message::Binary(data)) => centrifugo::is_connect_reply(data, 1),
            (Target::Socketio, Message::Text(text)) => text.as_str().starts_with("40"),
            _ => false,
        }
    }

    /// The frame that joins `room`, as command `id`.
    pub fn join(self, room: &str, id: u32) -> Message {
        match self {
            Target::Switchboard | Target::SwitchboardRedis => switchboard_frame(
                id,
                Command::Join(JoinRequest {
                    room: room.to_owned(),
                    since: None,
                    presence_events: false,
                }),
            ),
            Target::Yardstick => {
                let mut frame = Vec::with_capacity(room.len() + 1);
                frame.push(b'j');
                frame.extend_from_slice(room.as_bytes());
                Message::binary(frame)
            }
            Target::Centrifugo => centrifugo::subscribe(id, room),
            Target::Socketio => Message::text(format!(r#"42["join",{}]"#, json_string(room))),
        }
    }

    /// The frame that publishes `payload` (ASCII, see [`crate::payload`]) to
    /// `room`, as command `id`.
    pub fn publish(self, room: &str, payload: &[u8], id: u32) -> Message {
        match self {
            Target::Switchboard | Target::SwitchboardRedis => switchboard_frame(
                id,
                Command::Publish(PublishRequest {
                    room: room.to_owned(),
                    payload: Some(Payload {
                        text: String::new(),
                        data: Bytes::copy_from_slice(payload),
                        type_name: String::new(),
                    }),
                    idempotency_key: String::new(),
                }),
            ),
            Target::Yardstick => {
                let mut frame = Vec::with_capacity(room.len() + payload.len() + 2);
                frame.push(b'p');
                frame.extend_from_slice(room.as_bytes());
                frame.push(b'\n');
                frame.extend_from_slice(payload);
                Message::binary(frame)
            }
            Target::Centrifugo => centrifugo::publish(id, room, payload),
            Target::Socketio => {
                // The payload is ASCII without quotes or backslashes.
                let text = String::from_utf8_lossy(payload);
                Message::text(format!(r#"42["publish",{},"{text}"]"#, json_string(room)))
            }
        }
    }

    /// The answer to an application-level keepalive in `frame`, if it is one.
    /// (WebSocket Pings are answered by tungstenite itself.)
    pub fn answer(self, frame: &Message) -> Option<Message> {
        match (self, frame) {
            (Target::Centrifugo, Message::Binary(data)) if centrifugo::has_ping(data) => {
                Some(centrifugo::pong())
            }
            (Target::Socketio, Message::Text(text)) if text.as_str() == "2" => {
                Some(Message::text("3"))
            }
            _ => None,
        }
    }
}

fn switchboard_frame(id: u32, command: Command) -> Message {
    Message::binary(
        ClientFrame {
            id,
            command: Some(command),
        }
        .encode_to_vec(),
    )
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The subset of Centrifugo's client protocol (protocol v2, protobuf) this
/// tool needs, declared with prost's derive: field numbers as in Centrifugo's
/// `client.proto`. Every WebSocket frame holds one or more length-delimited
/// messages.
mod centrifugo {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Command {
        #[prost(uint32, tag = "1")]
        pub(super) id: u32,
        #[prost(message, optional, tag = "4")]
        pub(super) connect: Option<ConnectRequest>,
        #[prost(message, optional, tag = "5")]
        pub(super) subscribe: Option<SubscribeRequest>,
        #[prost(message, optional, tag = "7")]
        pub(super) publish: Option<PublishRequest>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ConnectRequest {
        #[prost(string, tag = "1")]
        pub(super) token: String,
        #[prost(string, tag = "4")]
        pub(super) name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SubscribeRequest {
        #[prost(string, tag = "1")]
        pub(super) channel: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct PublishRequest {
        #[prost(string, tag = "1")]
        pub(super) channel: String,
        #[prost(bytes = "vec", tag = "2")]
        pub(super) data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Reply {
        #[prost(uint32, tag = "1")]
        pub(super) id: u32,
        #[prost(message, optional, tag = "2")]
        pub(super) error: Option<Error>,
        #[prost(message, optional, tag = "5")]
        pub(super) connect: Option<ConnectResult>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Error {
        #[prost(uint32, tag = "1")]
        pub(super) code: u32,
        #[prost(string, tag = "2")]
        pub(super) message: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct ConnectResult {
        #[prost(string, tag = "1")]
        pub(super) client: String,
    }

    fn frame(command: &Command) -> Message {
        Message::binary(command.encode_length_delimited_to_vec())
    }

    pub(super) fn connect(id: u32) -> Message {
        frame(&Command {
            id,
            connect: Some(ConnectRequest::default()),
            ..Default::default()
        })
    }

    pub(super) fn subscribe(id: u32, channel: &str) -> Message {
        frame(&Command {
            id,
            subscribe: Some(SubscribeRequest {
                channel: channel.to_owned(),
            }),
            ..Default::default()
        })
    }

    pub(super) fn publish(id: u32, channel: &str, data: &[u8]) -> Message {
        frame(&Command {
            id,
            publish: Some(PublishRequest {
                channel: channel.to_owned(),
                data: data.to_vec(),
            }),
            ..Default::default()
        })
    }

    /// An empty command: the answer to the server's ping (an empty reply).
    pub(super) fn pong() -> Message {
        frame(&Command::default())
    }

    /// The length-delimited replies in a frame.
    fn replies(data: &Bytes) -> impl Iterator<Item = Reply> + '_ {
        let mut buf = data.as_ref();
        std::iter::from_fn(move || {
            if buf.is_empty() {
                return None;
            }
            Reply::decode_length_delimited(&mut buf).ok()
        })
    }

    pub(super) fn is_connect_reply(data: &Bytes, id: u32) -> bool {
        replies(data).any(|r| r.id == id && r.connect.is_some())
    }

    /// Whether the frame holds a ping: an empty reply, i.e. a zero length
    /// prefix. Only the prefixes are read, so deliveries cost next to nothing.
    pub(super) fn has_ping(data: &Bytes) -> bool {
        let mut buf = data.as_ref();
        while !buf.is_empty() {
            match prost::encoding::decode_varint(&mut buf) {
                Ok(0) => return true,
                Ok(len) => match usize::try_from(len) {
                    Ok(len) if len <= buf.len() => buf = &buf[len..],
                    _ => return false,
                },
                Err(_) => return false,
            }
        }
        false
    }
}
