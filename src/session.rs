//! The dispatcher: one connection's protocol state and its command handlers.
//!
//! A `Session` turns each decoded `ClientFrame` into broker and presence calls
//! and queues exactly one reply (or error) for it. It does no socket I/O:
//! everything it sends goes through the connection's outbound queue, which
//! keeps replies ordered after the pushes they cause.

use std::collections::HashSet;
use std::sync::Arc;

use crate::auth::{AuthError, Identity, MAX_USER_LEN};
use crate::broker::{BrokerError, HistoryQuery, JoinNotice, Publication, UserControl};
use crate::codec::encode_server;
use crate::hub::Subscriber;
use crate::ids;
use crate::limits::{CommandLimiter, UserSlot};
use crate::metrics;
use crate::outbound::ConnHandle;
use crate::permissions::{self, Action};
use crate::proto::client_frame::Command;
use crate::proto::server_frame::Kind;
use crate::proto::{
    ClientFrame, CloseCode, ConnectReply, ConnectRequest, DirectMessage, DirectReply,
    DirectRequest, Error, ErrorCode, HistoryReply, HistoryRequest, JoinRequest, LeaveReply,
    LeaveRequest, Member, MemberJoined, MemberLeft, PingReply, PresenceReply, PresenceRequest,
    PublishReply, PublishRequest, RefreshReply, RefreshRequest, ServerFrame, StreamPosition,
    Unsubscribed,
};
use crate::server::Shared;

/// Longest room name, in bytes.
pub const MAX_ROOM_LEN: usize = 255;

/// Longest idempotency key, in bytes.
pub(crate) const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// What the connection should do after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// A close was queued; stop reading commands.
    Close,
}

/// One connection's protocol state.
pub(crate) struct Session {
    /// Server-wide state: config, broker, presence, hub, auth.
    shared: Arc<Shared>,
    /// This connection's outbound queue.
    conn: ConnHandle,
    /// Public id of this connection (`Member.client`).
    client: String,
    /// Set by a successful `connect`.
    identity: Option<Identity>,
    /// Rooms joined, to enforce the per-connection limit and to leave them
    /// all on disconnect.
    rooms: HashSet<Arc<str>>,
    /// The token from the upgrade's `Authorization: Bearer` header, used by
    /// a `connect` without a token of its own.
    bearer: Option<String>,
    /// Counts this connection against the per-user cap; holds the user id
    /// as a shared key (publish rate limit). Set by `connect`.
    user_slot: Option<UserSlot>,
    /// This connection's command rate limit, if commands are limited; boxed
    /// so that the connection task does not carry its size when they are not.
    commands: Option<Box<CommandLimiter>>,
    /// Rate-limited commands in a row.
    strikes: u32,
}

impl Session {
    /// A session for a freshly upgraded connection.
    pub(crate) fn new(shared: Arc<Shared>, conn: ConnHandle, bearer: Option<String>) -> Self {
        let commands = shared.limits.command_limiter().map(Box::new);
        Self {
            shared,
            conn,
            client: ids::random_hex(8),
            identity: None,
            rooms: HashSet::new(),
            bearer,
            user_slot: None,
            commands,
            strikes: 0,
        }
    }

    /// The authenticated identity, once connected.
    pub(crate) fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    /// Handles one command and queues its reply.
    pub(crate) async fn handle(&mut self, frame: ClientFrame) -> Flow {
        let id = frame.id;
        let Some(command) = frame.command else {
            // Answered even with id 0 (an empty frame, `{}`): a client that
            // sent something this server cannot act on hears about it.
            self.error(
                id,
                ErrorCode::UnknownCommand,
                "the frame carries no command this server knows",
            );
            return Flow::Continue;
        };
        if id == 0 {
            self.error(0, ErrorCode::BadRequest, "request id must be non-zero");
            return Flow::Continue;
        }
        if let Some(limiter) = &self.commands {
            if let Err(wait) = limiter.check() {
                self.strikes += 1;
                self.rate_limited(id, wait, "too many commands on this connection");
                if self.strikes >= self.shared.config.limits.rate_limit_strikes {
                    self.conn
                        .close_after_queued(CloseCode::RateLimited, "rate limit exceeded");
                    return Flow::Close;
                }
                return Flow::Continue;
            }
            self.strikes = 0;
        }
        metrics::command(command_name(&command));
        if self.identity.is_none() {
            return match command {
                Command::Connect(request) => self.connect(id, request).await,
                _ => {
                    self.error(id, ErrorCode::NotConnected, "send connect first");
                    Flow::Continue
                }
            };
        }
        match command {
            Command::Connect(_) => self.error(id, ErrorCode::AlreadyConnected, "already connected"),
            Command::Join(request) => self.join(id, request).await,
            Command::Leave(request) => self.leave(id, request).await,
            Command::Publish(request) => self.publish(id, request).await,
            Command::Direct(request) => self.direct(id, request).await,
            Command::History(request) => self.history(id, request).await,
            Command::Presence(request) => self.presence(id, request).await,
            Command::Refresh(request) => return self.refresh(id, request),
            Command::Ping(_) => self.reply(
                id,
                Kind::Ping(PingReply {
                    timestamp_ms: ids::now_ms(),
                }),
            ),
        }
        Flow::Continue
    }

    /// Answers a frame that could not be decoded at all.
    pub(crate) fn malformed(&self, detail: &str) {
        self.error(
            0,
            ErrorCode::BadRequest,
            &format!("could not decode frame: {detail}"),
        );
    }

    async fn connect(&mut self, id: u32, request: ConnectRequest) -> Flow {
        // A token in the command wins over one from the upgrade's header.
        let token = match (request.token.is_empty(), self.bearer.take()) {
            (true, Some(bearer)) => bearer,
            _ => request.token,
        };
        let identity = match self.shared.auth.authenticate(&token, &request.name) {
            Ok(identity) => identity,
            Err(e) => return self.refuse(id, &e),
        };
        let user_key: Arc<str> = Arc::from(identity.user.as_str());
        let Some(slot) = self.shared.limits.open_user(&user_key) else {
            self.error(
                id,
                ErrorCode::LimitExceeded,
                "this user has too many connections open",
            );
            self.conn.close_after_queued(
                CloseCode::TryAgainLater,
                "too many connections for this user",
            );
            return Flow::Close;
        };
        self.user_slot = Some(slot);
        let limits = &self.shared.config.limits;
        self.shared.hub.add_user(&identity.user, self.conn.clone());
        if let Err(error) = self.shared.broker.attach_user(&identity.user).await {
            // Direct messages from other nodes arrive once the broker is back.
            tracing::warn!(%error, "attaching the user to the broker failed");
        }
        self.reply(
            id,
            Kind::Connect(ConnectReply {
                client: self.client.clone(),
                user: identity.user.clone(),
                ping_interval_ms: limits.ping_interval.as_millis().min(u32::MAX as u128) as u32,
                max_message_size: limits.max_message_size as u32,
                expires_at_ms: identity
                    .expires_at
                    .map_or(0, |secs| (secs as i64).saturating_mul(1000)),
            }),
        );
        self.identity = Some(identity);
        Flow::Continue
    }

    /// Answers a refused `connect` or `refresh` and closes with 1008.
    fn refuse(&self, id: u32, error: &AuthError) -> Flow {
        // The message names the reason, never the token.
        tracing::debug!(error = %error, "token refused");
        self.error(id, error.code(), &error.to_string());
        self.conn
            .close_after_queued(CloseCode::PolicyViolation, "authentication failed");
        Flow::Close
    }

    /// Replaces the token: same user, new expiry and grants.
    fn refresh(&mut self, id: u32, request: RefreshRequest) -> Flow {
        let identity = match self.shared.auth.verify_token(&request.token) {
            Ok(identity) => identity,
            Err(e) => return self.refuse(id, &e),
        };
        if identity.user != self.user() {
            self.error(
                id,
                ErrorCode::Unauthorized,
                "the new token is for another user",
            );
            self.conn
                .close_after_queued(CloseCode::PolicyViolation, "token for another user");
            return Flow::Close;
        }
        let expires_at_ms = identity
            .expires_at
            .map_or(0, |secs| (secs as i64).saturating_mul(1000));
        self.identity = Some(identity);
        self.reply(id, Kind::Refresh(RefreshReply { expires_at_ms }));
        Flow::Continue
    }

    /// Whether this user may do `action` in `room`; answers the command with
    /// `ERROR_CODE_PERMISSION_DENIED` when not.
    fn permit(&self, id: u32, room: &str, action: Action) -> bool {
        let grants = self.identity.as_ref().map(|i| &i.grants);
        let member = self.rooms.contains(room);
        let allowed = grants.is_some_and(|g| {
            permissions::allowed(&self.shared.config.permissions, room, action, g, member)
        });
        if !allowed {
            self.error(id, ErrorCode::PermissionDenied, "not allowed in this room");
        }
        allowed
    }

    async fn join(&mut self, id: u32, request: JoinRequest) {
        if let Err(message) = validate_room(&request.room) {
            return self.error(id, ErrorCode::InvalidRoom, message);
        }
        if !self.permit(id, &request.room, Action::Join) {
            return;
        }
        if self.rooms.contains(request.room.as_str()) {
            return self.error(id, ErrorCode::AlreadyJoined, "already joined this room");
        }
        if self.rooms.len() >= self.shared.config.limits.max_rooms_per_connection {
            return self.error(
                id,
                ErrorCode::LimitExceeded,
                "too many rooms joined on this connection",
            );
        }
        let entered = self
            .enter(
                request.room,
                request.presence_events,
                request.since,
                JoinNotice::Reply(id),
            )
            .await;
        if let Err(e) = entered {
            self.broker_error(id, e);
        }
    }

    /// Joins a room (the checks are done): subscribes through the broker,
    /// which queues the `notice`, then marks this connection present and
    /// announces it.
    async fn enter(
        &mut self,
        room: String,
        presence_events: bool,
        since: Option<StreamPosition>,
        notice: JoinNotice,
    ) -> Result<(), BrokerError> {
        let subscriber = Subscriber {
            conn: self.conn.clone(),
            presence_events,
            after: 0,
        };
        let started = std::time::Instant::now();
        let joined = self
            .shared
            .broker
            .join(&room, subscriber, since, notice)
            .await;
        metrics::broker_call("join", started.elapsed());
        joined?;
        let room: Arc<str> = Arc::from(room);
        self.rooms.insert(room.clone());
        metrics::get().joined_rooms.increment(1.0);
        let member = self.member();
        if let Err(e) = self.shared.presence.add(&room, member.clone()).await {
            tracing::warn!(error = %e, "presence add failed");
        }
        let event = Kind::MemberJoined(MemberJoined {
            room: room.to_string(),
            member: Some(member),
        });
        self.announce(&room, event).await;
        Ok(())
    }

    /// Acts on a backend's request for this connection (HTTP API).
    pub(crate) async fn control(&mut self, control: UserControl) -> Flow {
        if self.identity.is_none() {
            return Flow::Continue;
        }
        match control {
            UserControl::Join {
                room,
                presence_events,
            } => {
                if self.rooms.contains(&*room) {
                    return Flow::Continue;
                }
                if self.rooms.len() >= self.shared.config.limits.max_rooms_per_connection {
                    tracing::debug!("server-side join refused: too many rooms on this connection");
                    return Flow::Continue;
                }
                let entered = self
                    .enter(
                        room.to_string(),
                        presence_events,
                        None,
                        JoinNotice::Subscribed { presence_events },
                    )
                    .await;
                if let Err(error) = entered {
                    tracing::warn!(%error, "server-side join failed");
                }
            }
            UserControl::Leave { room } => {
                if self.rooms.contains(&*room) {
                    self.leave_room(&room).await;
                    self.reply(
                        0,
                        Kind::Unsubscribed(Unsubscribed {
                            room: room.to_string(),
                        }),
                    );
                }
            }
            UserControl::Disconnect => {
                self.conn
                    .close_after_queued(CloseCode::Kicked, "disconnected by the server");
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    async fn leave(&mut self, id: u32, request: LeaveRequest) {
        if !self.rooms.contains(request.room.as_str()) {
            return self.error(id, ErrorCode::NotJoined, "not joined to this room");
        }
        self.leave_room(&request.room).await;
        self.reply(id, Kind::Leave(LeaveReply {}));
    }

    async fn publish(&mut self, id: u32, request: PublishRequest) {
        if let Err(message) = validate_room(&request.room) {
            return self.error(id, ErrorCode::InvalidRoom, message);
        }
        if !self.rooms.contains(request.room.as_str()) {
            return self.error(
                id,
                ErrorCode::NotJoined,
                "join the room before publishing to it",
            );
        }
        if !self.permit(id, &request.room, Action::Publish) {
            return;
        }
        let user = self.user_slot.as_ref().map(UserSlot::user);
        if let Some(Err(wait)) = user.map(|u| self.shared.limits.check_publish(u)) {
            return self.rate_limited(id, wait, "too many publishes by this user");
        }
        if request.idempotency_key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return self.error(
                id,
                ErrorCode::BadRequest,
                "idempotency_key is longer than 256 bytes",
            );
        }
        let publication = Publication {
            sender: self.user().to_owned(),
            payload: request.payload.unwrap_or_default(),
            idempotency_key: request.idempotency_key,
        };
        let started = std::time::Instant::now();
        let published = self.shared.broker.publish(&request.room, publication).await;
        metrics::broker_call("publish", started.elapsed());
        match published {
            Ok(result) => self.reply(
                id,
                Kind::Publish(PublishReply {
                    offset: result.offset,
                    epoch: result.epoch,
                    id: result.id,
                    timestamp_ms: result.timestamp_ms,
                    duplicate: result.duplicate,
                }),
            ),
            Err(e) => self.broker_error(id, e),
        }
    }

    async fn direct(&mut self, id: u32, request: DirectRequest) {
        if request.user.is_empty() || request.user.len() > MAX_USER_LEN {
            return self.error(id, ErrorCode::BadRequest, "user must be 1 to 255 bytes");
        }
        let grants = self.identity.as_ref().map(|i| &i.grants);
        if !grants.is_some_and(|g| permissions::direct_allowed(&self.shared.config.permissions, g))
        {
            return self.error(
                id,
                ErrorCode::PermissionDenied,
                "not allowed to send direct messages",
            );
        }
        let message_id = ids::message_id();
        let frame = encode_server(&ServerFrame {
            id: 0,
            kind: Some(Kind::DirectMessage(DirectMessage {
                id: message_id,
                sender: self.user().to_owned(),
                timestamp_ms: ids::now_ms(),
                payload: Some(request.payload.unwrap_or_default()),
            })),
        });
        match self.shared.broker.send_to_user(&request.user, frame).await {
            Ok(()) => self.reply(id, Kind::Direct(DirectReply { id: message_id })),
            Err(e) => self.broker_error(id, e),
        }
    }

    async fn history(&mut self, id: u32, request: HistoryRequest) {
        if let Err(message) = validate_room(&request.room) {
            return self.error(id, ErrorCode::InvalidRoom, message);
        }
        if !self.permit(id, &request.room, Action::History) {
            return;
        }
        let query = HistoryQuery::new(
            request.limit,
            request.before,
            request.after,
            &self.shared.config.history,
        );
        match self.shared.broker.history(&request.room, query).await {
            Ok(page) => self.reply(
                id,
                Kind::History(HistoryReply {
                    messages: page.messages,
                    position: Some(page.position),
                    has_more: page.has_more,
                }),
            ),
            Err(e) => self.broker_error(id, e),
        }
    }

    async fn presence(&mut self, id: u32, request: PresenceRequest) {
        if let Err(message) = validate_room(&request.room) {
            return self.error(id, ErrorCode::InvalidRoom, message);
        }
        if !self.permit(id, &request.room, Action::Presence) {
            return;
        }
        match self.shared.presence.list(&request.room).await {
            Ok(members) => self.reply(id, Kind::Presence(PresenceReply { members })),
            Err(e) => self.broker_error(id, e),
        }
    }

    /// Leaves every room and unregisters the user; called once when the
    /// connection ends, however it ends.
    pub(crate) async fn close(&mut self) {
        let rooms: Vec<Arc<str>> = self.rooms.iter().cloned().collect();
        for room in rooms {
            self.leave_room(&room).await;
        }
        if let Some(identity) = &self.identity {
            self.shared.hub.remove_user(&identity.user, self.conn.id());
            self.shared.broker.detach_user(&identity.user).await;
        }
    }

    async fn leave_room(&mut self, room: &str) {
        if self.rooms.remove(room) {
            metrics::get().joined_rooms.decrement(1.0);
        }
        if let Err(e) = self.shared.broker.leave(room, self.conn.id()).await {
            tracing::warn!(error = %e, "broker leave failed");
        }
        if let Err(e) = self.shared.presence.remove(room, &self.client).await {
            tracing::warn!(error = %e, "presence remove failed");
        }
        let event = Kind::MemberLeft(MemberLeft {
            room: room.to_owned(),
            member: Some(self.member()),
        });
        self.announce(room, event).await;
    }

    /// Sends a presence event about this connection to the room's other
    /// members that asked for presence events. Best effort: a failure is
    /// logged, not reported to the client.
    async fn announce(&self, room: &str, event: Kind) {
        let frame = encode_server(&ServerFrame {
            id: 0,
            kind: Some(event),
        });
        let sent = self
            .shared
            .broker
            .broadcast_presence(room, frame, self.conn.id())
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "presence event failed");
        }
    }

    fn user(&self) -> &str {
        self.identity.as_ref().map_or("", |i| i.user.as_str())
    }

    fn member(&self) -> Member {
        Member {
            user: self.user().to_owned(),
            client: self.client.clone(),
        }
    }

    fn reply(&self, id: u32, kind: Kind) {
        self.conn.push(encode_server(&ServerFrame {
            id,
            kind: Some(kind),
        }));
    }

    fn error(&self, id: u32, code: ErrorCode, message: &str) {
        metrics::error(code.as_str_name());
        self.reply(id, Kind::Error(Error::from_code(code, message)));
    }

    fn rate_limited(&self, id: u32, wait: std::time::Duration, message: &str) {
        metrics::error(ErrorCode::RateLimited.as_str_name());
        let mut error = Error::from_code(ErrorCode::RateLimited, message);
        error.retry_after_ms = wait.as_millis().clamp(1, u128::from(u32::MAX)) as u32;
        self.reply(id, Kind::Error(error));
    }

    fn broker_error(&self, id: u32, error: BrokerError) {
        tracing::warn!(error = %error, "broker call failed");
        self.error(id, error.code(), &error.to_string());
    }
}

/// A command's name, for metrics.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Connect(_) => "connect",
        Command::Join(_) => "join",
        Command::Leave(_) => "leave",
        Command::Publish(_) => "publish",
        Command::Direct(_) => "direct",
        Command::History(_) => "history",
        Command::Presence(_) => "presence",
        Command::Ping(_) => "ping",
        Command::Refresh(_) => "refresh",
    }
}

/// Checks a room name: 1 to 255 bytes, no control characters.
pub fn validate_room(room: &str) -> Result<(), &'static str> {
    if room.is_empty() {
        return Err("room name is empty");
    }
    if room.len() > MAX_ROOM_LEN {
        return Err("room name is longer than 255 bytes");
    }
    if room.chars().any(char::is_control) {
        return Err("room name contains control characters");
    }
    Ok(())
}
