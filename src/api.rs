//! The HTTP server API for backends: `/api/v1/...`.
//!
//! Request and response bodies are messages from `proto/switchboard/v1/`
//! (`api.proto`, plus the reply messages shared with the WebSocket
//! protocol), in binary protobuf (`application/x-protobuf`) or canonical
//! proto3 JSON (`application/json`), chosen by `Content-Type` for the
//! request and by `Accept` (else the request's encoding) for the response.
//! Every failure is answered with the proto `Error` and an HTTP status that
//! fits its code.
//!
//! Keys come from `api.keys` and are compared in constant time. With no key
//! configured the API is open in development mode and off (403) otherwise.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::broker::{BrokerError, HistoryQuery, Publication, UserControl};
use crate::codec::encode_server;
use crate::ids;
use crate::proto::server_frame::Kind;
use crate::proto::{
    ApiAccepted, ApiNotifyReply, ApiNotifyRequest, ApiPublishRequest, ApiRoomList, ApiSendReply,
    ApiSendRequest, ApiSubscribeRequest, DirectMessage, Error, ErrorCode, HistoryReply,
    Notification, PresenceReply, PublishReply, RoomInfo, ServerFrame,
};
use crate::server::Shared;
use crate::session::{validate_room, MAX_IDEMPOTENCY_KEY_LEN};

/// Rooms `GET /api/v1/rooms` lists by default, and at most.
const DEFAULT_ROOM_LIST: usize = 100;
const MAX_ROOM_LIST: usize = 1000;

/// Longest user id, in bytes.
const MAX_USER_LEN: usize = 255;

/// The `/api/v1` routes.
pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    // The same bound as a client's frame: the API cannot publish what a
    // WebSocket client could not.
    let body_limit = shared.config.limits.max_message_size;
    Router::new()
        .route("/api/v1/rooms", get(list_rooms))
        .route("/api/v1/rooms/{room}", get(room_info))
        .route("/api/v1/rooms/{room}/messages", post(publish).get(history))
        .route("/api/v1/rooms/{room}/notifications", post(notify_room))
        .route("/api/v1/rooms/{room}/presence", get(presence))
        .route("/api/v1/users/{user}/messages", post(send_to_user))
        .route("/api/v1/users/{user}/notifications", post(notify_user))
        .route(
            "/api/v1/users/{user}/rooms/{room}",
            put(subscribe).delete(unsubscribe),
        )
        .route("/api/v1/users/{user}/disconnect", post(disconnect))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}

/// A message encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Proto,
    Json,
}

const PROTO_TYPES: [&str; 2] = ["application/x-protobuf", "application/protobuf"];

fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// The request body's encoding: from `Content-Type`; JSON when there is
/// none (an empty body).
fn request_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Encoding::Json);
    };
    let media = media_type(value.to_str().unwrap_or_default()).to_ascii_lowercase();
    if PROTO_TYPES.contains(&media.as_str()) {
        Ok(Encoding::Proto)
    } else if media == "application/json" {
        Ok(Encoding::Json)
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "Content-Type must be application/x-protobuf or application/json",
        ))
    }
}

/// The response's encoding: what `Accept` asks for, else `fallback`.
fn response_encoding(headers: &HeaderMap, fallback: Encoding) -> Encoding {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return fallback;
    };
    for part in accept.split(',') {
        let media = media_type(part).to_ascii_lowercase();
        if PROTO_TYPES.contains(&media.as_str()) {
            return Encoding::Proto;
        }
        if media == "application/json" {
            return Encoding::Json;
        }
    }
    fallback
}

/// A failure, answered with the proto `Error`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: Error,
    encoding: Encoding,
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            error: Error::from_code(code, message),
            encoding: Encoding::Json,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    fn in_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }
}

impl From<BrokerError> for ApiError {
    fn from(error: BrokerError) -> Self {
        tracing::warn!(%error, "broker call failed (HTTP API)");
        let code = error.code();
        let (status, message) = match error {
            BrokerError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, message),
            // The call reached the broker and was not confirmed in time.
            BrokerError::OutcomeUnknown(message) => (StatusCode::GATEWAY_TIMEOUT, message),
            BrokerError::Internal(message) => (StatusCode::INTERNAL_SERVER_ERROR, message),
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = encode(self.encoding, self.status, &self.error);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchboard\""),
            );
        }
        response
    }
}

/// Encodes a reply message.
fn encode<M>(encoding: Encoding, status: StatusCode, message: &M) -> Response
where
    M: prost::Message + serde::Serialize,
{
    let (body, content_type) = match encoding {
        Encoding::Proto => (message.encode_to_vec(), PROTO_TYPES[0]),
        Encoding::Json => match serde_json::to_vec(message) {
            Ok(body) => (body, "application/json"),
            Err(error) => {
                tracing::error!(%error, "encoding a JSON reply failed");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        },
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// One authenticated request: who made it and how to answer.
struct Call {
    /// The API key's name ("development" when the API is open).
    caller: String,
    /// The request body's encoding.
    input: Encoding,
    /// The response's encoding.
    output: Encoding,
}

impl Call {
    /// Authenticates the request and picks the encodings.
    fn start(shared: &Shared, headers: &HeaderMap) -> Result<Call, ApiError> {
        let input = request_encoding(headers)?;
        let output = response_encoding(headers, input);
        let caller = authenticate(shared, headers).map_err(|e| e.in_encoding(output))?;
        Ok(Call {
            caller,
            input,
            output,
        })
    }

    /// Decodes the body; an empty body is the message's defaults.
    fn decode<M>(&self, body: Result<Bytes, BytesRejection>) -> Result<M, ApiError>
    where
        M: prost::Message + Default + serde::de::DeserializeOwned,
    {
        let body = body.map_err(|rejection| {
            let status = rejection.status();
            let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    ErrorCode::LimitExceeded,
                    "the body is larger than limits.max_message_size",
                )
            } else {
                ApiError::new(status, ErrorCode::BadRequest, rejection.body_text())
            };
            self.fail(error)
        })?;
        if body.is_empty() {
            return Ok(M::default());
        }
        let decoded = match self.input {
            Encoding::Proto => {
                M::decode(body.as_ref()).map_err(|e| format!("undecodable protobuf body: {e}"))
            }
            Encoding::Json => {
                serde_json::from_slice(&body).map_err(|e| format!("undecodable JSON body: {e}"))
            }
        };
        decoded.map_err(|message| ApiError::bad_request(message).in_encoding(self.output))
    }

    fn reply<M>(&self, message: &M) -> Response
    where
        M: prost::Message + serde::Serialize,
    {
        encode(self.output, StatusCode::OK, message)
    }

    fn fail(&self, error: impl Into<ApiError>) -> ApiError {
        error.into().in_encoding(self.output)
    }

    fn room(&self, room: &str) -> Result<(), ApiError> {
        validate_room(room).map_err(|message| {
            self.fail(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRoom,
                message,
            ))
        })
    }

    fn user(&self, user: &str) -> Result<(), ApiError> {
        if user.is_empty() || user.len() > MAX_USER_LEN {
            return Err(self.fail(ApiError::bad_request("user must be 1 to 255 bytes")));
        }
        Ok(())
    }

    /// The sender to stamp: the request's, else the caller's name.
    fn sender(&self, requested: String) -> Result<String, ApiError> {
        if requested.len() > MAX_USER_LEN {
            return Err(self.fail(ApiError::bad_request("sender must be at most 255 bytes")));
        }
        Ok(if requested.is_empty() {
            self.caller.clone()
        } else {
            requested
        })
    }
}

/// The key's name, or why the request is refused.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<String, ApiError> {
    let keys = &shared.config.api.keys;
    if keys.is_empty() {
        if shared.config.development {
            return Ok("development".to_owned());
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::PermissionDenied,
            "the HTTP API is off: configure api.keys",
        ));
    }
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .or_else(|| {
            let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            let (scheme, key) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    let Some(presented) = presented.filter(|k| !k.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "an API key is required (Authorization: Bearer <key> or X-Api-Key)",
        ));
    };
    // Every key is compared, each in constant time, so timing tells neither
    // which key matched nor how much of one did.
    let mut found = None;
    for key in keys {
        if bool::from(key.key.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(key.name.clone());
        }
    }
    found.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "unknown API key",
        )
    })
}

async fn publish(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.room(&room)?;
    let request: ApiPublishRequest = call.decode(body)?;
    if request.idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(call.fail(ApiError::bad_request(
            "idempotency_key is longer than 256 bytes",
        )));
    }
    let publication = Publication {
        sender: call.sender(request.sender)?,
        payload: request.payload.unwrap_or_default(),
        idempotency_key: request.idempotency_key,
    };
    let result = shared
        .broker
        .publish(&room, publication)
        .await
        .map_err(|e| call.fail(e))?;
    Ok(call.reply(&PublishReply {
        offset: result.offset,
        epoch: result.epoch,
        id: result.id,
        timestamp_ms: result.timestamp_ms,
        duplicate: result.duplicate,
    }))
}

/// Query of `GET /api/v1/rooms/{room}/messages`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HistoryParams {
    limit: u32,
    before: u64,
    after: u64,
}

async fn history(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.room(&room)?;
    let Query(params) = params.map_err(|e| call.fail(ApiError::bad_request(e.body_text())))?;
    let query = HistoryQuery::new(
        params.limit,
        params.before,
        params.after,
        &shared.config.history,
    );
    let page = shared
        .broker
        .history(&room, query)
        .await
        .map_err(|e| call.fail(e))?;
    Ok(call.reply(&HistoryReply {
        messages: page.messages,
        position: Some(page.position),
        has_more: page.has_more,
    }))
}

async fn presence(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.room(&room)?;
    let members = shared
        .presence
        .list(&room)
        .await
        .map_err(|e| call.fail(e))?;
    Ok(call.reply(&PresenceReply { members }))
}

/// A room's position and member count.
async fn info_of(shared: &Shared, room: &str) -> Result<RoomInfo, BrokerError> {
    let query = HistoryQuery {
        limit: 1,
        before: 0,
        after: 0,
    };
    let page = shared.broker.history(room, query).await?;
    let members = shared.presence.list(room).await?.len();
    Ok(RoomInfo {
        room: room.to_owned(),
        position: Some(page.position),
        members: members.min(u32::MAX as usize) as u32,
    })
}

async fn room_info(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.room(&room)?;
    let info = info_of(&shared, &room).await.map_err(|e| call.fail(e))?;
    Ok(call.reply(&info))
}

/// Query of `GET /api/v1/rooms`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ListParams {
    limit: usize,
}

async fn list_rooms(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    let Query(params) = params.map_err(|e| call.fail(ApiError::bad_request(e.body_text())))?;
    let limit = match params.limit {
        0 => DEFAULT_ROOM_LIST,
        n => n.min(MAX_ROOM_LIST),
    };
    let (names, truncated) = shared.broker.rooms(limit).await.map_err(|e| call.fail(e))?;
    let mut rooms = Vec::with_capacity(names.len());
    for name in names {
        rooms.push(info_of(&shared, &name).await.map_err(|e| call.fail(e))?);
    }
    Ok(call.reply(&ApiRoomList { rooms, truncated }))
}

async fn notify_room(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.room(&room)?;
    let request: ApiNotifyRequest = call.decode(body)?;
    let (id, frame) = notification(room.clone(), request);
    shared
        .broker
        .notify_room(&room, frame)
        .await
        .map_err(|e| call.fail(e))?;
    Ok(call.reply(&ApiNotifyReply { id }))
}

async fn notify_user(
    State(shared): State<Arc<Shared>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.user(&user)?;
    let request: ApiNotifyRequest = call.decode(body)?;
    let (id, frame) = notification(String::new(), request);
    to_user(&shared, &call, &user, frame).await?;
    Ok(call.reply(&ApiNotifyReply { id }))
}

/// Hands an encoded push to every connection of `user`, on every node.
async fn to_user(
    shared: &Shared,
    call: &Call,
    user: &str,
    frame: bytes::Bytes,
) -> Result<(), ApiError> {
    shared
        .broker
        .send_to_user(user, frame)
        .await
        .map_err(|e| call.fail(e))
}

/// A notification push and its id.
fn notification(room: String, request: ApiNotifyRequest) -> (u64, bytes::Bytes) {
    let id = ids::message_id();
    let frame = encode_server(&ServerFrame {
        id: 0,
        kind: Some(Kind::Notification(Notification {
            id,
            room,
            timestamp_ms: ids::now_ms(),
            payload: Some(request.payload.unwrap_or_default()),
        })),
    });
    (id, frame)
}

async fn send_to_user(
    State(shared): State<Arc<Shared>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.user(&user)?;
    let request: ApiSendRequest = call.decode(body)?;
    let id = ids::message_id();
    let frame = encode_server(&ServerFrame {
        id: 0,
        kind: Some(Kind::DirectMessage(DirectMessage {
            id,
            sender: call.sender(request.sender)?,
            timestamp_ms: ids::now_ms(),
            payload: Some(request.payload.unwrap_or_default()),
        })),
    });
    to_user(&shared, &call, &user, frame).await?;
    Ok(call.reply(&ApiSendReply { id }))
}

async fn subscribe(
    State(shared): State<Arc<Shared>>,
    Path((user, room)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.user(&user)?;
    call.room(&room)?;
    let request: ApiSubscribeRequest = call.decode(body)?;
    let control = UserControl::Join {
        room: Arc::from(room),
        presence_events: request.presence_events,
    };
    control_user(&shared, &call, &user, control).await
}

async fn unsubscribe(
    State(shared): State<Arc<Shared>>,
    Path((user, room)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.user(&user)?;
    call.room(&room)?;
    let control = UserControl::Leave {
        room: Arc::from(room),
    };
    control_user(&shared, &call, &user, control).await
}

async fn disconnect(
    State(shared): State<Arc<Shared>>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call = Call::start(&shared, &headers)?;
    call.user(&user)?;
    control_user(&shared, &call, &user, UserControl::Disconnect).await
}

async fn control_user(
    shared: &Shared,
    call: &Call,
    user: &str,
    control: UserControl,
) -> Result<Response, ApiError> {
    tracing::info!(caller = %call.caller, user, ?control, "server-side control");
    shared
        .broker
        .control_user(user, control)
        .await
        .map_err(|e| call.fail(e))?;
    Ok(call.reply(&ApiAccepted {}))
}

async fn no_route(method: Method, headers: HeaderMap) -> ApiError {
    let encoding = response_encoding(&headers, Encoding::Json);
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::BadRequest,
        format!("no such route for {method} (see the HTTP API in proto/switchboard/v1/api.proto)"),
    )
    .in_encoding(encoding)
}

async fn wrong_method(method: Method, headers: HeaderMap) -> ApiError {
    let encoding = response_encoding(&headers, Encoding::Json);
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::BadRequest,
        format!("{method} is not allowed on this route"),
    )
    .in_encoding(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn encodings_follow_content_type_and_accept() {
        let proto = headers(&[("content-type", "application/x-protobuf")]);
        assert_eq!(request_encoding(&proto).unwrap(), Encoding::Proto);
        assert_eq!(response_encoding(&proto, Encoding::Proto), Encoding::Proto);
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(request_encoding(&json).unwrap(), Encoding::Json);
        assert_eq!(request_encoding(&HeaderMap::new()).unwrap(), Encoding::Json);
        let text = headers(&[("content-type", "text/plain")]);
        assert_eq!(
            request_encoding(&text).unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let accept = headers(&[("accept", "text/html, application/protobuf;q=0.9")]);
        assert_eq!(response_encoding(&accept, Encoding::Json), Encoding::Proto);
        let any = headers(&[("accept", "*/*")]);
        assert_eq!(response_encoding(&any, Encoding::Proto), Encoding::Proto);
    }
}
