//! Plain HTTP endpoints next to the WebSocket.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one HTTP/1.1 request and returns (status code, body).
async fn http_get(server: &TestServer, path: &str, extra_headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("response within the timeout")
        .expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let status_line = head.lines().next().expect("status line");
    let mut parts = status_line.split_whitespace();
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let code = parts
        .next()
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (code, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok() {
    let server = TestServer::start_default().await;
    let (code, body) = http_get(&server, "/healthz", "").await;
    assert_eq!(code, 200);
    assert_eq!(body.trim_end(), "ok");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_endpoint_without_upgrade_is_a_client_error_and_unknown_paths_404() {
    let server = TestServer::start_default().await;
    let (code, _) = http_get(&server, "/ws", "").await;
    assert!(
        (400..500).contains(&code),
        "GET /ws without upgrade: {code}"
    );
    let (code, _) = http_get(&server, "/definitely-not-here", "").await;
    assert_eq!(code, 404);
    // WebSocket upgrades are only served on /ws.
    let other = Client::try_connect(&format!("ws://{}/elsewhere", server.addr), None).await;
    assert!(other.is_err(), "upgrade accepted on a path other than /ws");
    server.shutdown().await;
}
