//! A real HTTP/1.1 client (hyper) for the HTTP API and the operational
//! endpoints, with replies decoded by their `Content-Type`.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderMap, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use switchboard::proto::{Error, ErrorCode};

use super::WAIT;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Decodes the body by its Content-Type.
    pub fn decode<M>(&self) -> M
    where
        M: prost::Message + Default + serde::de::DeserializeOwned,
    {
        let content_type = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type.starts_with("application/x-protobuf") {
            M::decode(self.body.as_ref()).expect("protobuf body")
        } else {
            assert!(
                content_type.starts_with("application/json"),
                "content type {content_type:?}, body {:?}",
                self.body
            );
            serde_json::from_slice(&self.body).expect("JSON body")
        }
    }

    /// Asserts a success and decodes it.
    pub fn ok<M>(&self) -> M
    where
        M: prost::Message + Default + serde::de::DeserializeOwned,
    {
        assert_eq!(self.status, StatusCode::OK, "body {:?}", self.body);
        self.decode()
    }

    /// Asserts an error reply with `status` and `code`.
    pub fn error(&self, status: StatusCode, code: ErrorCode) -> Error {
        assert_eq!(self.status, status, "body {:?}", self.body);
        let error: Error = self.decode();
        assert_eq!(error.code(), code, "{error:?}");
        error
    }
}

/// One request with a real HTTP/1.1 client.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("response in time")
        .expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}
