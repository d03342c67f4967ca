//! Hostile and broken input over real connections: every prefix of a valid
//! frame, a frame header announcing 2^62 bytes, a partial frame then a stall,
//! and a dead peer that stops answering pings.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use prost::Message as _;
use switchboard::proto::server_frame::Kind;
use switchboard::proto::{ClientFrame, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_prefix_of_a_valid_frame() {
    let server = TestServer::start_default().await;
    let mut c = server.login("prefixes").await;
    c.join("r").await;
    let frame = ClientFrame {
        id: 77,
        command: Some(publish_payload(
            "r",
            text_payload("a message long enough to have many prefixes"),
            "key-1",
        )),
    }
    .encode_to_vec();
    // Each prefix is one binary frame. Whatever it decodes to (an error, a
    // frame without a command, a shorter valid command), the server answers
    // at most once and keeps the connection.
    for len in 0..frame.len() {
        c.send_raw(Message::binary(frame[..len].to_vec())).await;
    }
    c.ping_ok().await;
    let mut errors = 0;
    while let Some(f) = c.rx.pending().front().cloned() {
        c.rx.pop_pending();
        if let Some(Kind::Error(e)) = &f.kind {
            assert!(
                [
                    ErrorCode::BadRequest,
                    ErrorCode::UnknownCommand,
                    ErrorCode::InvalidRoom
                ]
                .iter()
                .any(|code| *code as i32 == e.code),
                "{e:?}"
            );
            errors += 1;
        }
    }
    assert!(errors > 0);
    // The whole frame still works.
    c.send_raw(Message::binary(frame)).await;
    expect_kind!(c.rx.reply(77).await, Kind::Publish);
    server.shutdown().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A raw WebSocket client: handshake by hand, then arbitrary bytes.
async fn raw_socket(server: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Reads raw frames until a Close frame; returns its code.
async fn read_close_code(s: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            // Parse the frames read so far (server frames are unmasked).
            let mut at = 0;
            while buf.len() >= at + 2 {
                let opcode = buf[at] & 0x0f;
                let mut len = u64::from(buf[at + 1] & 0x7f);
                let mut header = 2;
                if len == 126 {
                    if buf.len() < at + 4 {
                        break;
                    }
                    len = u64::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
                    header = 4;
                } else if len == 127 {
                    if buf.len() < at + 10 {
                        break;
                    }
                    len = u64::from_be_bytes(buf[at + 2..at + 10].try_into().unwrap());
                    header = 10;
                }
                let end = at + header + len as usize;
                if buf.len() < end {
                    break;
                }
                if opcode == 0x8 {
                    return u16::from_be_bytes([buf[at + header], buf[at + header + 1]]);
                }
                at = end;
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection ended without a Close frame");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("no Close frame in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_announcing_2_pow_62_bytes_closes_1009_without_allocating() {
    let server = TestServer::start_default().await;
    let before = rss_kib();
    let mut s = raw_socket(&server).await;
    // FIN + binary, masked, 64-bit length 2^62, mask key, a few bytes.
    let mut frame = vec![0x82, 0xff];
    frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0u8; 64]);
    s.write_all(&frame).await.unwrap();
    assert_eq!(read_close_code(&mut s).await, 1009);
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 16 * 1024, "memory grew by {grown} KiB");
    // The server carries on.
    server.login("next").await.ping_ok().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_frame_then_a_stall_times_out_and_hurts_nobody() {
    let mut config = test_config();
    config.limits.idle_timeout = Duration::from_millis(800);
    config.limits.ping_interval = Duration::from_millis(200);
    let server = TestServer::start(config).await;
    let mut s = raw_socket(&server).await;
    // A masked binary frame announcing 100 bytes, with 10 of them sent.
    let mut frame = vec![0x82, 0x80 | 100, 9, 9, 9, 9];
    frame.extend_from_slice(&[0u8; 10]);
    s.write_all(&frame).await.unwrap();
    // Meanwhile others are served as usual.
    let mut other = server.login("other").await;
    other.join("r").await;
    other.publish("r", "still here").await;
    assert_eq!(read_close_code(&mut s).await, 4002);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_is_closed_and_its_presence_leaves() {
    let mut config = test_config();
    config.limits.idle_timeout = Duration::from_millis(800);
    config.limits.ping_interval = Duration::from_millis(200);
    let server = TestServer::start(config).await;
    let mut watcher = server.login("watcher").await;
    watcher.join_with_presence("room").await;
    let mut s = raw_socket(&server).await;
    // connect + join by hand (masked frames), then never read or answer pings.
    for (id, command) in [(1, connect_name("ghost")), (2, join("room"))] {
        let payload = ClientFrame {
            id,
            command: Some(command),
        }
        .encode_to_vec();
        let mut frame = vec![0x82, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(&payload); // mask of zeros: unchanged
        s.write_all(&frame).await.unwrap();
    }
    let joined = expect_kind!(watcher.next_push().await, Kind::MemberJoined);
    assert_eq!(joined.member.unwrap().user, "ghost");
    // Keep the TCP connection open but silent: the idle timeout ends it.
    let left = tokio::time::timeout(WAIT, watcher.next_push())
        .await
        .expect("no MemberLeft");
    let left = expect_kind!(left, Kind::MemberLeft);
    assert_eq!(left.member.unwrap().user, "ghost");
    let members = watcher.presence("room").await.members;
    assert!(members.iter().all(|m| m.user != "ghost"));
    drop(s);
    server.shutdown().await;
}
