//! The JSON subprotocol: text frames with the canonical proto3 JSON mapping.

#[macro_use]
mod common;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use switchboard::proto::ErrorCode;
use tokio_tungstenite::tungstenite::Message;

async fn send_json(c: &mut Client, value: Value) {
    c.send_raw(Message::text(value.to_string())).await;
}

/// The next text frame, parsed (pings skipped; anything else fails).
async fn next_json(c: &mut Client) -> Value {
    match c.next_raw().await {
        Message::Text(text) => serde_json::from_str(text.as_str())
            .unwrap_or_else(|e| panic!("server sent invalid JSON {text:?}: {e}")),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_round_trip_with_a_binary_peer() {
    let server = TestServer::start_default().await;
    let mut j = Client::connect(&server.ws_url(), Some(JSON)).await;
    assert_eq!(
        j.protocol.as_deref(),
        Some(JSON),
        "server selects the JSON subprotocol"
    );

    send_json(&mut j, json!({"id": 1, "connect": {"name": "jay"}})).await;
    let reply = next_json(&mut j).await;
    assert_eq!(reply["id"], json!(1));
    assert_eq!(reply["connect"]["user"], json!("jay"));
    assert!(reply["connect"]["client"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    // uint32 fields are JSON numbers.
    assert_eq!(reply["connect"]["maxMessageSize"], json!(65536));

    send_json(&mut j, json!({"id": 2, "join": {"room": "mixed"}})).await;
    let reply = next_json(&mut j).await;
    assert_eq!(reply["id"], json!(2));
    assert!(reply["join"].is_object(), "join reply: {reply}");
    let epoch = reply["join"]["position"]["epoch"]
        .as_str()
        .expect("epoch is a string")
        .to_owned();

    let mut b = server.login("bin").await;
    b.join("mixed").await;

    // JSON publish; bytes are base64 in JSON.
    send_json(
        &mut j,
        json!({"id": 3, "publish": {"room": "mixed", "payload": {"text": "hi", "data": "AAEC/w==", "typeName": "t.v1.T"}}}),
    )
    .await;
    let own = next_json(&mut j).await;
    assert!(
        own.get("id").is_none() || own["id"] == json!(0),
        "push has id 0: {own}"
    );
    let msg = &own["message"];
    assert_eq!(msg["room"], json!("mixed"));
    assert_eq!(msg["offset"], json!("1"), "uint64 is a JSON string");
    assert!(msg["id"].is_string(), "uint64 id is a JSON string: {msg}");
    assert!(
        msg["timestampMs"].is_string(),
        "int64 is a JSON string: {msg}"
    );
    assert_eq!(msg["sender"], json!("jay"));
    assert_eq!(msg["payload"]["text"], json!("hi"));
    assert_eq!(msg["payload"]["data"], json!("AAEC/w=="));
    assert_eq!(msg["payload"]["typeName"], json!("t.v1.T"));

    let ack = next_json(&mut j).await;
    assert_eq!(ack["id"], json!(3));
    assert_eq!(ack["publish"]["offset"], json!("1"));
    assert_eq!(ack["publish"]["epoch"], json!(epoch));
    assert_eq!(ack["publish"]["id"], msg["id"]);

    // The binary peer gets the same message as protobuf.
    let m = b.next_message().await;
    assert_eq!((m.offset, m.sender.as_str()), (1, "jay"));
    let payload = m.payload.expect("payload");
    assert_eq!(payload.data, Bytes::from_static(&[0, 1, 2, 255]));
    assert_eq!(payload.type_name, "t.v1.T");

    // And the JSON client receives the binary peer's message as JSON.
    b.publish("mixed", "hello json").await;
    let push = next_json(&mut j).await;
    assert_eq!(push["message"]["offset"], json!("2"));
    assert_eq!(push["message"]["sender"], json!("bin"));
    assert_eq!(push["message"]["payload"]["text"], json!("hello json"));

    // 64-bit values are accepted as strings in requests too.
    send_json(
        &mut j,
        json!({"id": 4, "history": {"room": "mixed", "limit": 10, "after": "1"}}),
    )
    .await;
    let hist = next_json(&mut j).await;
    assert_eq!(hist["id"], json!(4));
    let messages = hist["history"]["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["offset"], json!("2"));

    // Errors use the enum names.
    send_json(&mut j, json!({"id": 5, "join": {"room": "mixed"}})).await;
    let err = next_json(&mut j).await;
    assert_eq!(err["id"], json!(5));
    assert_eq!(err["error"]["code"], json!("ERROR_CODE_ALREADY_JOINED"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_typed_client_and_unknown_fields() {
    let server = TestServer::start_default().await;
    // The typed harness speaks JSON through pbjson's serde impls.
    let mut j = Client::connect(&server.ws_url(), Some(JSON)).await;
    assert_eq!(j.encoding(), Encoding::Json);
    j.login("jay").await;
    j.join("r").await;
    assert_eq!(j.publish("r", "typed").await.offset, 1);
    assert_eq!(j.next_message().await.offset, 1);

    // Unknown fields are ignored, at the top level and inside a command.
    send_json(
        &mut j,
        json!({"id": 50, "ping": {"future": true}, "futureField": 1}),
    )
    .await;
    let reply = next_json(&mut j).await;
    assert_eq!(reply["id"], json!(50));
    assert!(reply["ping"].is_object(), "{reply}");

    // Invalid JSON: BAD_REQUEST with id 0, the connection stays open.
    j.send_raw(Message::text("{not json")).await;
    let err = j.next_frame().await;
    assert_error(&err, 0, ErrorCode::BadRequest);
    j.ping_ok().await;

    // No command: UNKNOWN_COMMAND with the id.
    send_json(&mut j, json!({"id": 51})).await;
    let err = j.reply(51).await;
    assert_error(&err, 51, ErrorCode::UnknownCommand);

    // A command name this server does not know is an unknown command too.
    send_json(&mut j, json!({"id": 52, "teleport": {"to": "mars"}})).await;
    let reply = j.reply(52).await;
    assert_error(&reply, 52, ErrorCode::UnknownCommand);
    j.ping_ok().await;

    // Without an id, both are answered under id 0.
    send_json(&mut j, json!({})).await;
    let err = j.next_frame().await;
    assert_error(&err, 0, ErrorCode::UnknownCommand);
    send_json(&mut j, json!({"teleport": {"to": "mars"}})).await;
    let err = j.next_frame().await;
    assert_error(&err, 0, ErrorCode::UnknownCommand);
    j.ping_ok().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_on_json_subprotocol_closes_1003() {
    let server = TestServer::start_default().await;
    let mut j = Client::connect(&server.ws_url(), Some(JSON)).await;
    j.login("jay").await;
    j.send_raw(Message::Binary(Bytes::from_static(&[
        0x08, 0x01, 0x4a, 0x00,
    ])))
    .await;
    let (frames, code) = j.expect_close_with_frames().await;
    assert_eq!(code, 1003);
    let d = last_disconnect(&frames);
    assert_eq!(d.code, 1003);
    assert!(!d.reconnect);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_negotiation() {
    let server = TestServer::start_default().await;
    // No subprotocol: binary protobuf, nothing echoed.
    let mut c = Client::connect(&server.ws_url(), None).await;
    assert_eq!(c.protocol, None);
    c.login("plain").await;

    // The first supported offer wins.
    let c = Client::connect(&server.ws_url(), Some("chat, switchboard.v1.json")).await;
    assert_eq!(c.protocol.as_deref(), Some(JSON));
    let c = Client::connect(
        &server.ws_url(),
        Some("switchboard.v1.proto, switchboard.v1.json"),
    )
    .await;
    assert_eq!(c.protocol.as_deref(), Some(PROTO));

    // Only unsupported offers: the upgrade is refused (or completed without a
    // subprotocol, which tungstenite rejects as a protocol error).
    let refused = Client::try_connect(&server.ws_url(), Some("chat")).await;
    assert!(
        refused.is_err(),
        "an unsupported subprotocol must not be accepted"
    );
    server.shutdown().await;
}
