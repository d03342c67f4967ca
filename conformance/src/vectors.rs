//! The golden vectors: representative messages in both directions, encoded
//! by the Rust types (prost) and printed in canonical proto3 JSON (pbjson).
//!
//! `switchboard-vectors write tests/vectors` writes them; every language's
//! test suite reads them back and checks the rules stated in
//! `proto/switchboard/testing/v1/vectors.proto`. [`check`] applies the same
//! rules to the Rust types, so a vector that the Rust side cannot reproduce
//! fails here first.
//!
//! Vectors with unknown fields are built by appending raw fields to encoded
//! messages: prost drops unknown fields when decoding, so the Rust runtime
//! re-encodes them to the canonical bytes (rule 4's second case), while
//! runtimes that keep unknown fields must reproduce the input exactly.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use switchboard::proto::{
    client_frame::Command, server_frame::Kind, ClientFrame, ConnectReply, ConnectRequest,
    DirectMessage, DirectReply, DirectRequest, Disconnect, Error, ErrorCode, HistoryReply,
    HistoryRequest, JoinReply, JoinRequest, LeaveReply, LeaveRequest, Member, MemberJoined,
    MemberLeft, Notification, Payload, PingReply, PingRequest, PresenceReply, PresenceRequest,
    PublishReply, PublishRequest, RefreshReply, RefreshRequest, RoomMessage, ServerFrame,
    StreamPosition, Subscribed, Unsubscribed,
};

use crate::proto::chat::{Attachment, ChatMessage, Format, Mention, TypingEvent};
use crate::proto::testing::{Vector, VectorSet};

/// Name of the manifest file in the vectors directory.
pub const MANIFEST: &str = "manifest.json";

/// The message types vectors are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// `switchboard.v1.ClientFrame`
    ClientFrame,
    /// `switchboard.v1.ServerFrame`
    ServerFrame,
    /// `chat.v1.ChatMessage`
    ChatMessage,
    /// `chat.v1.TypingEvent`
    TypingEvent,
}

impl MessageType {
    /// The fully-qualified protobuf name.
    pub fn full_name(self) -> &'static str {
        match self {
            Self::ClientFrame => "switchboard.v1.ClientFrame",
            Self::ServerFrame => "switchboard.v1.ServerFrame",
            Self::ChatMessage => "chat.v1.ChatMessage",
            Self::TypingEvent => "chat.v1.TypingEvent",
        }
    }

    /// Looks a type up by its fully-qualified name.
    pub fn from_full_name(name: &str) -> Option<Self> {
        [
            Self::ClientFrame,
            Self::ServerFrame,
            Self::ChatMessage,
            Self::TypingEvent,
        ]
        .into_iter()
        .find(|t| t.full_name() == name)
    }
}

/// One vector, in memory.
#[derive(Clone, Debug)]
pub struct Case {
    /// File stem.
    pub name: &'static str,
    /// What it covers.
    pub description: &'static str,
    /// Its message type.
    pub message_type: MessageType,
    /// The binary encoding, possibly with unknown fields.
    pub binary: Vec<u8>,
    /// The encoding without unknown fields, when `binary` has some.
    pub canonical: Option<Vec<u8>>,
    /// The canonical proto3 JSON.
    pub json: serde_json::Value,
}

/// A vector that does not hold, or a file that could not be read or written.
#[derive(Debug)]
pub struct VectorError(String);

impl fmt::Display for VectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VectorError {}

fn fail(message: impl Into<String>) -> VectorError {
    VectorError(message.into())
}

fn case<M: Message + Serialize>(
    name: &'static str,
    description: &'static str,
    message_type: MessageType,
    message: &M,
) -> Case {
    Case {
        name,
        description,
        message_type,
        binary: message.encode_to_vec(),
        canonical: None,
        json: serde_json::to_value(message).expect("generated types serialize"),
    }
}

/// `message`'s encoding followed by raw extra fields that the schema does
/// not define.
fn with_unknown<M: Message + Serialize>(
    name: &'static str,
    description: &'static str,
    message_type: MessageType,
    message: &M,
    binary: Vec<u8>,
) -> Case {
    let mut case = case(name, description, message_type, message);
    case.canonical = Some(std::mem::replace(&mut case.binary, binary));
    case
}

fn key(buf: &mut Vec<u8>, field: u32, wire_type: prost::encoding::WireType) {
    prost::encoding::encode_key(field, wire_type, buf);
}

fn raw_bytes_field(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(buf, field, prost::encoding::WireType::LengthDelimited);
    prost::encoding::encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
}

fn raw_varint_field(buf: &mut Vec<u8>, field: u32, value: u64) {
    key(buf, field, prost::encoding::WireType::Varint);
    prost::encoding::encode_varint(value, buf);
}

fn client(id: u32, command: Command) -> ClientFrame {
    ClientFrame {
        id,
        command: Some(command),
    }
}

fn server(id: u32, kind: Kind) -> ServerFrame {
    ServerFrame {
        id,
        kind: Some(kind),
    }
}

fn text(s: &str) -> Option<Payload> {
    Some(Payload {
        text: s.into(),
        ..Payload::default()
    })
}

/// 2^53 + 1: the first integer a JSON number (an IEEE double) cannot hold.
const BEYOND_F64: u64 = (1 << 53) + 1;
const EPOCH: &str = "7f3a9c2e41d0b856";
const TIMESTAMP: i64 = 1_764_028_800_123;
const MIXED_TEXT: &str = "héllo wörld 👋🏽 — 你好, ¿qué tal? 🇺🇦 \u{200d}👩‍💻";

/// The example chat message used by the typed-payload vectors and scenario.
pub fn example_chat_message() -> ChatMessage {
    ChatMessage {
        text: "Ship it, @bob 🚀 **today**".into(),
        format: Format::Markdown as i32,
        mentions: vec![Mention {
            user: "bob".into(),
            start: 9,
            length: 4,
        }],
        attachments: vec![Attachment {
            url: "https://files.example.com/a/diagram.png".into(),
            media_type: "image/png".into(),
            size_bytes: 48_213,
            thumbnail: Bytes::from_static(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]),
        }],
        reply_to: BEYOND_F64 + 6,
        sent_at_ms: TIMESTAMP,
        tags: vec!["release".into(), "ünïcödé".into()],
    }
}

fn typed_payload() -> Option<Payload> {
    Some(Payload {
        text: String::new(),
        data: example_chat_message().encode_to_vec().into(),
        type_name: "chat.v1.ChatMessage".into(),
    })
}

/// Deterministic pseudo-random bytes (a 64-bit LCG), so the large payload is
/// incompressible yet reproducible without a dependency.
fn filler(len: usize) -> Bytes {
    let mut state: u64 = 0x5eed_5eed_5eed_5eed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

fn room_message(offset: u64, payload: Option<Payload>) -> RoomMessage {
    RoomMessage {
        id: BEYOND_F64 + offset,
        room: "général 💬".into(),
        offset,
        sender: "alice".into(),
        timestamp_ms: TIMESTAMP + (offset % 1000) as i64,
        payload,
    }
}

fn member(user: &str, client: &str) -> Option<Member> {
    Some(Member {
        user: user.into(),
        client: client.into(),
    })
}

/// Every vector, in manifest order.
pub fn all() -> Vec<Case> {
    use MessageType::{ChatMessage as Chat, ClientFrame as C, ServerFrame as S, TypingEvent as T};
    let mut cases = vec![
        case(
            "client_connect_token",
            "connect with a JWT",
            C,
            &client(
                1,
                Command::Connect(ConnectRequest {
                    token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl".into(),
                    name: String::new(),
                }),
            ),
        ),
        case(
            "client_connect_name",
            "development-mode connect with a non-ASCII name",
            C,
            &client(
                1,
                Command::Connect(ConnectRequest {
                    token: String::new(),
                    name: "Zoë 🚀".into(),
                }),
            ),
        ),
        case(
            "client_join_since",
            "join with recovery from an offset above 2^53, presence events on",
            C,
            &client(
                2,
                Command::Join(JoinRequest {
                    room: "lobby".into(),
                    since: Some(StreamPosition {
                        offset: BEYOND_F64,
                        epoch: EPOCH.into(),
                    }),
                    presence_events: true,
                }),
            ),
        ),
        case(
            "client_leave",
            "leave a room",
            C,
            &client(
                3,
                Command::Leave(LeaveRequest {
                    room: "lobby".into(),
                }),
            ),
        ),
        case(
            "client_publish_text",
            "publish UTF-8 text with emoji to a non-ASCII room, largest request id, idempotency key",
            C,
            &client(
                u32::MAX,
                Command::Publish(PublishRequest {
                    room: "général 💬".into(),
                    payload: text(MIXED_TEXT),
                    idempotency_key: "order-42/retry".into(),
                }),
            ),
        ),
        case(
            "client_publish_empty_payload",
            "publish an empty (present but default) payload",
            C,
            &client(
                4,
                Command::Publish(PublishRequest {
                    room: "r".into(),
                    payload: Some(Payload::default()),
                    idempotency_key: String::new(),
                }),
            ),
        ),
        case(
            "client_publish_large",
            "publish 60,000 bytes of binary data, untyped",
            C,
            &client(
                5,
                Command::Publish(PublishRequest {
                    room: "bulk".into(),
                    payload: Some(Payload {
                        data: filler(60_000),
                        ..Payload::default()
                    }),
                    idempotency_key: String::new(),
                }),
            ),
        ),
        case(
            "client_publish_typed",
            "publish a typed application payload (chat.v1.ChatMessage)",
            C,
            &client(
                6,
                Command::Publish(PublishRequest {
                    room: "général 💬".into(),
                    payload: typed_payload(),
                    idempotency_key: String::new(),
                }),
            ),
        ),
        case(
            "client_direct",
            "direct message to a user",
            C,
            &client(
                7,
                Command::Direct(DirectRequest {
                    user: "bob".into(),
                    payload: text("psst 🤫"),
                }),
            ),
        ),
        case(
            "client_history",
            "history page before the largest uint64 offset",
            C,
            &client(
                8,
                Command::History(HistoryRequest {
                    room: "lobby".into(),
                    limit: 50,
                    before: u64::MAX,
                    after: 0,
                }),
            ),
        ),
        case(
            "client_presence",
            "presence query",
            C,
            &client(
                9,
                Command::Presence(PresenceRequest {
                    room: "lobby".into(),
                }),
            ),
        ),
        case(
            "client_ping",
            "ping: an empty command message",
            C,
            &client(10, Command::Ping(PingRequest {})),
        ),
        case(
            "client_refresh",
            "refresh: a new token for the same user",
            C,
            &client(
                11,
                Command::Refresh(RefreshRequest {
                    token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl".into(),
                }),
            ),
        ),
        case(
            "server_error",
            "terminal error reply",
            S,
            &server(
                4,
                Kind::Error(Error {
                    code: ErrorCode::NotJoined as i32,
                    message: "join the room before publishing to it".into(),
                    temporary: false,
                    retry_after_ms: 0,
                }),
            ),
        ),
        case(
            "server_error_rate_limited",
            "retryable error reply with a retry delay",
            S,
            &server(
                5,
                Kind::Error(Error {
                    code: ErrorCode::RateLimited as i32,
                    message: "slow down".into(),
                    temporary: true,
                    retry_after_ms: 1500,
                }),
            ),
        ),
        case(
            "server_error_outcome_unknown",
            "retryable error: the publish may have been applied; retry with the same idempotency key",
            S,
            &server(
                6,
                Kind::Error(Error {
                    code: ErrorCode::OutcomeUnknown as i32,
                    message: "broker unavailable: redis: no answer within redis.command_timeout"
                        .into(),
                    temporary: true,
                    retry_after_ms: 0,
                }),
            ),
        ),
        case(
            "server_connect",
            "connect reply",
            S,
            &server(
                1,
                Kind::Connect(ConnectReply {
                    client: "c-0f9e8d7c6b5a4938".into(),
                    user: "alice".into(),
                    ping_interval_ms: 25_000,
                    max_message_size: 65_536,
                    expires_at_ms: 1_893_456_000_000,
                }),
            ),
        ),
        case(
            "server_join_recovered",
            "join reply that recovered two messages with ids above 2^53",
            S,
            &server(
                2,
                Kind::Join(JoinReply {
                    position: Some(StreamPosition {
                        offset: BEYOND_F64 + 2,
                        epoch: EPOCH.into(),
                    }),
                    recovered: true,
                    messages: vec![
                        room_message(BEYOND_F64 + 1, text("missed one")),
                        room_message(BEYOND_F64 + 2, text("missed two")),
                    ],
                }),
            ),
        ),
        case(
            "server_join_not_recovered",
            "join reply that could not recover",
            S,
            &server(
                2,
                Kind::Join(JoinReply {
                    position: Some(StreamPosition {
                        offset: 17,
                        epoch: EPOCH.into(),
                    }),
                    recovered: false,
                    messages: vec![],
                }),
            ),
        ),
        case(
            "server_leave",
            "leave reply: an empty reply message",
            S,
            &server(3, Kind::Leave(LeaveReply {})),
        ),
        case(
            "server_publish",
            "publish acknowledgement with a message id above 2^63",
            S,
            &server(
                u32::MAX,
                Kind::Publish(PublishReply {
                    offset: BEYOND_F64,
                    epoch: EPOCH.into(),
                    id: (1 << 63) + 5,
                    timestamp_ms: TIMESTAMP,
                    duplicate: true,
                }),
            ),
        ),
        case(
            "server_direct",
            "direct reply",
            S,
            &server(7, Kind::Direct(DirectReply { id: u64::MAX })),
        ),
        case(
            "server_history",
            "history page with more to come",
            S,
            &server(
                8,
                Kind::History(HistoryReply {
                    messages: vec![room_message(41, text("a")), room_message(42, text(""))],
                    position: Some(StreamPosition {
                        offset: 99,
                        epoch: EPOCH.into(),
                    }),
                    has_more: true,
                }),
            ),
        ),
        case(
            "server_presence",
            "presence reply with two connections of one user",
            S,
            &server(
                9,
                Kind::Presence(PresenceReply {
                    members: vec![
                        Member {
                            user: "alice".into(),
                            client: "c-1".into(),
                        },
                        Member {
                            user: "alice".into(),
                            client: "c-2".into(),
                        },
                        Member {
                            user: "Zoë 🚀".into(),
                            client: "c-3".into(),
                        },
                    ],
                }),
            ),
        ),
        case(
            "server_refresh",
            "refresh reply with the new expiry",
            S,
            &server(
                11,
                Kind::Refresh(RefreshReply {
                    expires_at_ms: 1_764_118_800_000,
                }),
            ),
        ),
        case(
            "server_ping_negative",
            "ping reply with a negative int64 (a ten-byte varint)",
            S,
            &server(10, Kind::Ping(PingReply { timestamp_ms: -1 })),
        ),
        case(
            "server_message",
            "room message push (id 0, so absent)",
            S,
            &server(0, Kind::Message(room_message(3, text(MIXED_TEXT)))),
        ),
        case(
            "server_message_typed",
            "room message push carrying a typed application payload",
            S,
            &server(0, Kind::Message(room_message(4, typed_payload()))),
        ),
        case(
            "server_message_large",
            "room message push with 60,000 bytes of data and an unregistered type name",
            S,
            &server(
                0,
                Kind::Message(room_message(
                    5,
                    Some(Payload {
                        text: String::new(),
                        data: filler(60_000),
                        type_name: "acme.v1.Telemetry".into(),
                    }),
                )),
            ),
        ),
        case(
            "server_direct_message",
            "direct message push",
            S,
            &server(
                0,
                Kind::DirectMessage(DirectMessage {
                    id: BEYOND_F64,
                    sender: "bob".into(),
                    timestamp_ms: TIMESTAMP,
                    payload: text("psst 🤫"),
                }),
            ),
        ),
        case(
            "server_notification",
            "notification push to the user (no room)",
            S,
            &server(
                0,
                Kind::Notification(Notification {
                    id: 77,
                    room: String::new(),
                    timestamp_ms: TIMESTAMP,
                    payload: text("Your export is ready"),
                }),
            ),
        ),
        case(
            "server_member_joined",
            "presence push: member joined",
            S,
            &server(
                0,
                Kind::MemberJoined(MemberJoined {
                    room: "lobby".into(),
                    member: member("bob", "c-4"),
                }),
            ),
        ),
        case(
            "server_member_left",
            "presence push: member left",
            S,
            &server(
                0,
                Kind::MemberLeft(MemberLeft {
                    room: "lobby".into(),
                    member: member("bob", "c-4"),
                }),
            ),
        ),
        case(
            "server_disconnect",
            "disconnect push before close 4000 (slow consumer, reconnect)",
            S,
            &server(
                0,
                Kind::Disconnect(Disconnect {
                    code: 4000,
                    reason: "slow consumer".into(),
                    reconnect: true,
                }),
            ),
        ),
        case(
            "server_subscribed",
            "a backend subscribed this connection to a room (HTTP API)",
            S,
            &server(
                0,
                Kind::Subscribed(Subscribed {
                    room: "news".into(),
                    position: Some(StreamPosition {
                        offset: 42,
                        epoch: "9f2c4e1a".into(),
                    }),
                    presence_events: true,
                }),
            ),
        ),
        case(
            "server_unsubscribed",
            "a backend unsubscribed this connection from a room",
            S,
            &server(
                0,
                Kind::Unsubscribed(Unsubscribed {
                    room: "news".into(),
                }),
            ),
        ),
        case(
            "chat_message",
            "the example app's chat message: enum, repeated messages, bytes, uint64 above 2^53",
            Chat,
            &example_chat_message(),
        ),
        case(
            "chat_typing",
            "the example app's typing event",
            T,
            &TypingEvent {
                user: "bob".into(),
                typing: true,
            },
        ),
    ];
    cases.extend(unknown_field_cases());
    cases
}

fn unknown_field_cases() -> Vec<Case> {
    // A publish whose payload and envelope carry fields from a newer schema.
    let publish = PublishRequest {
        room: "lobby".into(),
        payload: text("from the future"),
        idempotency_key: "k".into(),
    };
    let mut payload = publish.payload.as_ref().unwrap().encode_to_vec();
    raw_varint_field(&mut payload, 15, 1);
    let mut body = Vec::new();
    prost::encoding::string::encode(1, &publish.room, &mut body);
    raw_bytes_field(&mut body, 2, &payload);
    prost::encoding::string::encode(3, &publish.idempotency_key, &mut body);
    raw_bytes_field(&mut body, 1000, "extra".as_bytes());
    let mut frame = Vec::new();
    raw_varint_field(&mut frame, 1, 11);
    raw_bytes_field(&mut frame, 5, &body);
    raw_varint_field(&mut frame, 99, u64::MAX);
    let known = client(11, Command::Publish(publish));

    // A command this schema does not know: an unknown oneof case.
    let mut unknown_command = Vec::new();
    raw_varint_field(&mut unknown_command, 1, 12);
    raw_bytes_field(&mut unknown_command, 50, &[0x0a, 0x01, b'x']);
    let no_command = ClientFrame {
        id: 12,
        command: None,
    };

    // A push this schema does not know, e.g. from a newer server.
    let mut unknown_kind = Vec::new();
    raw_bytes_field(&mut unknown_kind, 100, &[0x08, 0x01]);
    let no_kind = ServerFrame { id: 0, kind: None };

    vec![
        with_unknown(
            "client_unknown_fields",
            "publish with unknown fields in the envelope, the command and the payload",
            MessageType::ClientFrame,
            &known,
            frame,
        ),
        with_unknown(
            "client_unknown_command",
            "a command (oneof case 50) this schema does not know",
            MessageType::ClientFrame,
            &no_command,
            unknown_command,
        ),
        with_unknown(
            "server_unknown_kind",
            "a push (oneof case 100) this schema does not know; clients ignore it",
            MessageType::ServerFrame,
            &no_kind,
            unknown_kind,
        ),
    ]
}

/// The manifest describing `cases`.
pub fn manifest(cases: &[Case]) -> VectorSet {
    VectorSet {
        vectors: cases
            .iter()
            .map(|c| Vector {
                name: c.name.into(),
                message_type: c.message_type.full_name().into(),
                description: c.description.into(),
                has_unknown_fields: c.canonical.is_some(),
            })
            .collect(),
    }
}

/// JSON as written to disk: two-space indentation and a final newline.
pub fn pretty(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    text
}

/// The files of `cases`, as (file name, contents) pairs, manifest first.
pub fn files(cases: &[Case]) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(MANIFEST.to_owned(), pretty(&manifest(cases)).into_bytes())];
    for c in cases {
        files.push((format!("{}.bin", c.name), c.binary.clone()));
        files.push((format!("{}.json", c.name), pretty(&c.json).into_bytes()));
        if let Some(canonical) = &c.canonical {
            files.push((format!("{}.canonical.bin", c.name), canonical.clone()));
        }
    }
    files
}

/// Writes every vector into `dir`, replacing what is there.
pub fn write(dir: &Path) -> Result<(), VectorError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    for (name, contents) in files(&all()) {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, VectorError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| fail(format!("{}: {e}", path.display())))
}

/// Reads the vectors in `dir` and checks every rule of `vectors.proto`
/// against the Rust types. Returns how many vectors were checked.
pub fn check(dir: &Path) -> Result<usize, VectorError> {
    let manifest: VectorSet = serde_json::from_slice(&read(dir, MANIFEST)?)
        .map_err(|e| fail(format!("{MANIFEST}: {e}")))?;
    if manifest.vectors.is_empty() {
        return Err(fail("the manifest lists no vectors"));
    }
    for vector in &manifest.vectors {
        let binary = read(dir, &format!("{}.bin", vector.name))?;
        let json: serde_json::Value =
            serde_json::from_slice(&read(dir, &format!("{}.json", vector.name))?)
                .map_err(|e| fail(format!("{}.json: {e}", vector.name)))?;
        let canonical = if vector.has_unknown_fields {
            read(dir, &format!("{}.canonical.bin", vector.name))?
        } else {
            binary.clone()
        };
        let message_type = MessageType::from_full_name(&vector.message_type).ok_or_else(|| {
            fail(format!(
                "{}: unknown type {}",
                vector.name, vector.message_type
            ))
        })?;
        let result = match message_type {
            MessageType::ClientFrame => check_one::<ClientFrame>(&binary, &canonical, &json),
            MessageType::ServerFrame => check_one::<ServerFrame>(&binary, &canonical, &json),
            MessageType::ChatMessage => check_one::<ChatMessage>(&binary, &canonical, &json),
            MessageType::TypingEvent => check_one::<TypingEvent>(&binary, &canonical, &json),
        };
        result.map_err(|e| fail(format!("vector {}: {e}", vector.name)))?;
    }
    Ok(manifest.vectors.len())
}

/// Rules 1 to 5 for one vector. prost drops unknown fields, so the re-encoded
/// message must equal the canonical bytes.
fn check_one<M>(binary: &[u8], canonical: &[u8], json: &serde_json::Value) -> Result<(), String>
where
    M: Message + Default + Serialize + DeserializeOwned + PartialEq + fmt::Debug,
{
    let decoded = M::decode(binary).map_err(|e| format!("rule 1, decode: {e}"))?;
    let printed = serde_json::to_value(&decoded).map_err(|e| format!("rule 2, print: {e}"))?;
    if &printed != json {
        return Err(format!("rule 2: JSON differs: got {printed}, want {json}"));
    }
    let parsed: M =
        serde_json::from_value(json.clone()).map_err(|e| format!("rule 3, parse: {e}"))?;
    if parsed != decoded {
        return Err(format!("rule 3: {parsed:?} != {decoded:?}"));
    }
    if decoded.encode_to_vec() != canonical {
        return Err("rule 4: re-encoding differs from the canonical bytes".into());
    }
    if parsed.encode_to_vec() != canonical {
        return Err("rule 5: encoding the parsed JSON differs from the canonical bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_types_resolve() {
        let cases = all();
        let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len());
        for c in &cases {
            assert_eq!(
                MessageType::from_full_name(c.message_type.full_name()),
                Some(c.message_type)
            );
        }
    }

    #[test]
    fn a_tampered_vector_is_caught() {
        let dir = std::env::temp_dir().join(format!("sb-vectors-{}", std::process::id()));
        write(&dir).unwrap();
        assert_eq!(check(&dir).unwrap(), all().len());
        let json = dir.join("client_publish_text.json");
        let text = std::fs::read_to_string(&json).unwrap();
        std::fs::write(&json, text.replace("order-42", "order-43")).unwrap();
        let err = check(&dir).unwrap_err().to_string();
        assert!(err.contains("client_publish_text"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
