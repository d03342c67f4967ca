//! The scenarios: what load to apply and what to measure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Counter, Endpoint, Received, Receiver, Ws};
use crate::payload::{self, Clock, Kind};
use crate::procfs;
use crate::wire::Target;

/// The rooms one publisher connection joins at most (servers cap rooms per
/// connection; Switchboard's default is 100).
const ROOMS_PER_PUBLISHER: u32 = 50;
/// Connections opened at once while ramping up.
const OPEN_CONCURRENCY: usize = 64;

/// A scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// N subscribers in one room, one publisher (full speed or `--rate`).
    Fanout,
    /// R rooms × K subscribers, publishes spread over the rooms.
    Rooms,
    /// N connections connected and joined, then idle: server RSS per connection.
    Idle,
    /// Publish, then wait for the own delivery, one at a time.
    Rtt,
    /// A connection storm: connects per second.
    Connect,
    /// Reconnect storms: `cycles` times, `subscribers` connections join
    /// `rooms` rooms, receive a message each and drop at once (no close
    /// handshake); then the server's memory once they are all gone.
    Churn,
}

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct Params {
    /// Subscribers (fanout, idle, connect: connections; rooms: per room).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: u32,
    /// Rooms (rooms and idle scenarios).
    #[arg(long, default_value_t = 100)]
    pub rooms: u32,
    /// Measured publishes at most.
    #[arg(long, default_value_t = 20_000)]
    pub publishes: u64,
    /// Publishes per second in total; 0 = as fast as the target keeps up.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Longest publishing phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Flow control: publishes a subscriber may lag behind at most.
    #[arg(long, default_value_t = 256)]
    pub window: u64,
    /// Connections opened at once (connect scenario).
    #[arg(long, default_value_t = 100)]
    pub concurrency: u32,
    /// Seconds to wait for stragglers, joins and handshakes.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Seconds to let an idle server settle before reading its memory.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Storms in the churn scenario.
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
}

/// What a run measured. Absent values were not measured by that scenario.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Target name.
    pub target: String,
    /// Scenario name.
    pub scenario: String,
    /// Parameters, as given.
    pub label: String,
    /// Connections the scenario held.
    pub connections: u64,
    /// Measured deliveries received.
    pub deliveries: u64,
    /// Measured deliveries expected.
    pub expected: u64,
    /// Measured phase, seconds.
    pub seconds: f64,
    /// Deliveries per second.
    pub deliveries_per_sec: Option<f64>,
    /// Server CPU time per delivery, microseconds.
    pub cpu_us_per_delivery: Option<f64>,
    /// Server CPU busy fraction over the measured phase (1.0 = one core).
    pub cpu_cores: Option<f64>,
    /// Latency percentiles, microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile.
    pub p99_us: Option<f64>,
    /// 99.9th percentile.
    pub p999_us: Option<f64>,
    /// Largest latency.
    pub max_us: Option<f64>,
    /// Server RSS per connection, bytes.
    pub rss_per_connection: Option<f64>,
    /// Connections (with the protocol handshake) per second.
    pub connects_per_sec: Option<f64>,
    /// Server RSS before the first storm (churn), bytes.
    pub rss_base_bytes: Option<u64>,
    /// Largest server RSS seen during the storms, bytes.
    pub rss_peak_bytes: Option<u64>,
    /// Server RSS once every connection was gone, bytes.
    pub rss_after_bytes: Option<u64>,
    /// Connections that failed or were closed by the server.
    pub errors: u64,
    /// First error, if any.
    pub first_error: Option<String>,
}

/// Runs `scenario` against a started target whose processes are `pids`
/// (their CPU and memory are added up).
pub async fn run(
    scenario: Scenario,
    endpoint: Endpoint,
    pids: &[u32],
    params: &Params,
) -> Result<Outcome> {
    let mut outcome = match scenario {
        Scenario::Fanout => fan(endpoint, pids, params, 1, params.subscribers).await?,
        Scenario::Rooms => fan(endpoint, pids, params, params.rooms, params.subscribers).await?,
        Scenario::Idle => idle(endpoint, pids, params).await?,
        Scenario::Rtt => rtt(endpoint, params).await?,
        Scenario::Connect => storm(endpoint, pids, params).await?,
        Scenario::Churn => churn(endpoint, pids, params).await?,
    };
    outcome.target = endpoint.target.name().to_owned();
    outcome.scenario = format!("{scenario:?}").to_lowercase();
    Ok(outcome)
}

fn room_name(i: u32) -> String {
    format!("bench-{i}")
}

/// A receiving connection's task and what it shares.
struct Member {
    room: u32,
    counter: Arc<Counter>,
    warm: Arc<Counter>,
    task: JoinHandle<Received>,
    /// Dropping it stops the task.
    stop: oneshot::Sender<()>,
}

/// A publishing connection: it joins its rooms (it is a member, as every
/// target requires or allows) and sends what the scenario hands it.
struct Publisher {
    tx: mpsc::Sender<Message>,
    task: JoinHandle<Received>,
    next_id: u32,
    /// Dropping it stops the task.
    stop: oneshot::Sender<()>,
}

struct Fleet {
    target: Target,
    members: Vec<Member>,
    publishers: Vec<Publisher>,
    clock: Clock,
    /// Seconds spent opening the members (with their joins).
    ramp: f64,
}

impl Fleet {
    /// Opens `per_room` members in each of `rooms` rooms, and the publishers.
    async fn open(
        endpoint: Endpoint,
        rooms: u32,
        per_room: u32,
        record_latency: bool,
        timeout: Duration,
    ) -> Result<Fleet> {
        let clock = Clock::new();
        let total = rooms * per_room;
        let started = Instant::now();
        let opened: Vec<Result<Member>> = futures_util::stream::iter(0..total)
            .map(|n| async move {
                let room = n % rooms;
                let mut ws = client::open(endpoint, n, timeout).await?;
                ws.send(endpoint.target.join(&room_name(room), 2)).await?;
                let counter = Arc::new(Counter::default());
                let warm = Arc::new(Counter::default());
                let receiver = Receiver {
                    target: endpoint.target,
                    clock,
                    counter: counter.clone(),
                    warm: warm.clone(),
                    expect: u64::MAX,
                    record_latency,
                };
                let (stop, stopped) = oneshot::channel();
                let task = tokio::spawn(client::run(ws, receiver, None, stopped));
                Ok(Member {
                    room,
                    counter,
                    warm,
                    task,
                    stop,
                })
            })
            .buffer_unordered(OPEN_CONCURRENCY)
            .collect()
            .await;
        let ramp = started.elapsed().as_secs_f64();
        let members = opened.into_iter().collect::<Result<Vec<_>>>()?;
        let mut publishers = Vec::new();
        for (i, first) in (0..rooms).step_by(ROOMS_PER_PUBLISHER as usize).enumerate() {
            let mut ws = client::open(endpoint, total + i as u32, timeout).await?;
            let my_rooms: Vec<u32> = (first..rooms.min(first + ROOMS_PER_PUBLISHER)).collect();
            let mut next_id = 2;
            for &room in &my_rooms {
                ws.send(endpoint.target.join(&room_name(room), next_id))
                    .await?;
                next_id += 1;
            }
            let (tx, rx) = mpsc::channel(1024);
            let receiver = Receiver {
                target: endpoint.target,
                clock,
                counter: Arc::new(Counter::default()),
                warm: Arc::new(Counter::default()),
                expect: u64::MAX,
                record_latency: false,
            };
            let (stop, stopped) = oneshot::channel();
            let task = tokio::spawn(client::run(ws, receiver, Some(rx), stopped));
            publishers.push(Publisher {
                tx,
                task,
                next_id,
                stop,
            });
        }
        Ok(Fleet {
            target: endpoint.target,
            members,
            publishers,
            clock,
            ramp,
        })
    }

    fn publisher_of(&mut self, room: u32) -> &mut Publisher {
        let index = (room / ROOMS_PER_PUBLISHER) as usize;
        &mut self.publishers[index]
    }

    async fn publish(
        &mut self,
        room: u32,
        kind: Kind,
        seq: u64,
        size: usize,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let sent = self.clock.now_ns();
        payload::encode(buf, kind, sent, seq, size);
        let target = self.target();
        let publisher = self.publisher_of(room);
        let id = publisher.next_id;
        publisher.next_id = publisher.next_id.wrapping_add(1).max(2);
        let frame = target.publish(&room_name(room), buf, id);
        publisher
            .tx
            .send(frame)
            .await
            .context("a publisher connection ended")
    }

    fn target(&self) -> Target {
        self.target
    }

    /// Sends warm-ups to every room until every member saw one.
    async fn warm_up(&mut self, rooms: u32, size: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut buf = Vec::new();
        loop {
            if self.members.iter().all(|m| m.warm.get() > 0) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let cold = self.members.iter().filter(|m| m.warm.get() == 0).count();
                bail!("{cold} connections never saw a warm-up message (joins failed?)");
            }
            self.check_alive()?;
            for room in 0..rooms {
                if self
                    .members
                    .iter()
                    .any(|m| m.room == room && m.warm.get() == 0)
                {
                    self.publish(room, Kind::Warmup, 0, size, &mut buf).await?;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn check_alive(&self) -> Result<()> {
        if self.publishers.iter().any(|p| p.task.is_finished()) {
            bail!("a publisher connection was closed");
        }
        Ok(())
    }

    async fn finish(self) -> (Vec<(u32, Received)>, Vec<String>) {
        let mut received = Vec::new();
        let mut errors = Vec::new();
        // Dropping the stop senders ends every task.
        let (stops, tasks): (Vec<_>, Vec<_>) = self
            .members
            .into_iter()
            .map(|m| (m.stop, (m.room, m.task)))
            .unzip();
        drop(stops);
        for (room, task) in tasks {
            match task.await {
                Ok(r) => {
                    if let Some(e) = &r.error {
                        errors.push(e.clone());
                    }
                    received.push((room, r));
                }
                Err(e) => errors.push(format!("task: {e}")),
            }
        }
        for p in self.publishers {
            drop(p.tx);
            drop(p.stop);
            if let Ok(r) = p.task.await {
                if let Some(e) = r.error {
                    errors.push(format!("publisher: {e}"));
                }
            }
        }
        (received, errors)
    }
}

/// Fan-out to `rooms` rooms of `per_room` members each.
async fn fan(
    endpoint: Endpoint,
    pids: &[u32],
    params: &Params,
    rooms: u32,
    per_room: u32,
) -> Result<Outcome> {
    let timeout = Duration::from_secs_f64(params.timeout);
    let mut fleet = Fleet::open(endpoint, rooms, per_room, true, timeout).await?;
    fleet.warm_up(rooms, params.payload, timeout).await?;

    let mut published = vec![0u64; rooms as usize];
    let mut buf = Vec::with_capacity(params.payload);
    let max_phase = Duration::from_secs_f64(params.duration);
    let mut ticker = (params.rate > 0.0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / params.rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let cpu0 = procfs::cpu_us_all(pids)?;
    let t0 = fleet.clock.now_ns();
    let started = Instant::now();
    let mut seq = 0u64;
    while seq < params.publishes && started.elapsed() < max_phase {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let room = (seq % u64::from(rooms)) as u32;
        // Flow control: nobody may fall more than `window` behind.
        if seq % 16 == 0 {
            let mut waited = Instant::now();
            while lag(&fleet, &published) > params.window {
                if waited.elapsed() > timeout {
                    bail!(
                        "subscribers stopped receiving (lag above {} for {timeout:?})",
                        params.window
                    );
                }
                fleet.check_alive()?;
                tokio::time::sleep(Duration::from_millis(1)).await;
                if lag(&fleet, &published) <= params.window {
                    waited = Instant::now();
                }
            }
        }
        fleet
            .publish(room, Kind::Measured, seq, params.payload, &mut buf)
            .await?;
        published[room as usize] += 1;
        seq += 1;
    }
    // Wait for the last deliveries (bounded).
    let deadline = Instant::now() + timeout;
    while lag(&fleet, &published) > 0 && Instant::now() < deadline {
        if fleet.members.iter().all(|m| m.task.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu1 = procfs::cpu_us_all(pids)?;
    let connections = fleet.members.len() as u64 + fleet.publishers.len() as u64;
    let (received, errors) = fleet.finish().await;

    let expected: u64 = received
        .iter()
        .map(|(room, _)| published[*room as usize])
        .sum();
    let deliveries: u64 = received.iter().map(|(_, r)| r.count).sum();
    let last = received.iter().map(|(_, r)| r.last_ns).max().unwrap_or(t0);
    let seconds = (last.saturating_sub(t0)) as f64 / 1e9;
    let mut latency = client::new_histogram();
    for (_, r) in &received {
        if let Some(h) = &r.latency {
            latency.add(h).context("merging histograms")?;
        }
    }
    let cpu = cpu1.saturating_sub(cpu0) as f64;
    let mut outcome = Outcome {
        label: if params.rate > 0.0 {
            format!(
                "{rooms} room(s) x {per_room}, {} publishes/s, {} B",
                params.rate, params.payload
            )
        } else {
            format!(
                "{rooms} room(s) x {per_room}, full speed, {} B",
                params.payload
            )
        },
        connections,
        deliveries,
        expected,
        seconds,
        deliveries_per_sec: (seconds > 0.0).then(|| deliveries as f64 / seconds),
        cpu_us_per_delivery: (deliveries > 0).then(|| cpu / deliveries as f64),
        cpu_cores: (seconds > 0.0).then(|| cpu / 1e6 / seconds),
        errors: errors.len() as u64,
        first_error: errors.into_iter().next(),
        ..Outcome::default()
    };
    set_latency(&mut outcome, &latency);
    Ok(outcome)
}

/// The largest number of publishes any member is behind by.
fn lag(fleet: &Fleet, published: &[u64]) -> u64 {
    fleet
        .members
        .iter()
        .map(|m| published[m.room as usize].saturating_sub(m.counter.get()))
        .max()
        .unwrap_or(0)
}

fn set_latency(outcome: &mut Outcome, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    outcome.p50_us = Some(us(h.value_at_quantile(0.50)));
    outcome.p99_us = Some(us(h.value_at_quantile(0.99)));
    outcome.p999_us = Some(us(h.value_at_quantile(0.999)));
    outcome.max_us = Some(us(h.max()));
}

/// Idle connections, each joined to one of `rooms` rooms: RSS per connection.
async fn idle(endpoint: Endpoint, pids: &[u32], params: &Params) -> Result<Outcome> {
    let timeout = Duration::from_secs_f64(params.timeout);
    let rooms = params.rooms.clamp(1, params.subscribers.max(1));
    let per_room = params.subscribers.div_ceil(rooms);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = procfs::rss_bytes_all(pids)?;
    let mut fleet = Fleet::open(endpoint, rooms, per_room, false, timeout).await?;
    let ramp = fleet.ramp;
    fleet.warm_up(rooms, params.payload, timeout).await?;
    tokio::time::sleep(Duration::from_secs_f64(params.settle)).await;
    let rss1 = procfs::rss_bytes_all(pids)?;
    let connections = fleet.members.len() as u64;
    let alive = fleet
        .members
        .iter()
        .filter(|m| !m.task.is_finished())
        .count() as u64;
    let (_, errors) = fleet.finish().await;
    Ok(Outcome {
        label: format!("{connections} connections in {rooms} rooms"),
        connections,
        seconds: ramp,
        rss_per_connection: Some(rss1.saturating_sub(rss0) as f64 / connections as f64),
        connects_per_sec: Some(connections as f64 / ramp),
        errors: (connections - alive).max(errors.len() as u64),
        first_error: errors.into_iter().next(),
        ..Outcome::default()
    })
}

/// Reconnect storms, then the memory the server keeps after them.
async fn churn(endpoint: Endpoint, pids: &[u32], params: &Params) -> Result<Outcome> {
    let timeout = Duration::from_secs_f64(params.timeout);
    let rooms = params.rooms.clamp(1, params.subscribers.max(1));
    let per_room = params.subscribers.div_ceil(rooms);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = procfs::rss_bytes_all(pids)?;
    let mut peak = base;
    let mut connections = 0;
    let started = Instant::now();
    for _ in 0..params.cycles.max(1) {
        let mut fleet = Fleet::open(endpoint, rooms, per_room, false, timeout).await?;
        fleet.warm_up(rooms, params.payload, timeout).await?;
        peak = peak.max(procfs::rss_bytes_all(pids)?);
        connections += fleet.members.len() as u64;
        // Every connection goes at once, as when a network or a client
        // fleet fails: the sockets close without a WebSocket close.
        for member in &fleet.members {
            member.task.abort();
        }
        for publisher in &fleet.publishers {
            publisher.task.abort();
        }
        drop(fleet);
        // The server cleans up while the next storm arrives.
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(procfs::rss_bytes_all(pids)?);
    }
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(params.settle)).await;
    let after = procfs::rss_bytes_all(pids)?;
    Ok(Outcome {
        label: format!(
            "{} storms of {} connections in {rooms} rooms",
            params.cycles.max(1),
            rooms * per_room
        ),
        connections,
        seconds,
        rss_base_bytes: Some(base),
        rss_peak_bytes: Some(peak),
        rss_after_bytes: Some(after),
        ..Outcome::default()
    })
}

/// Round trips: publish, wait for the own delivery, repeat.
async fn rtt(endpoint: Endpoint, params: &Params) -> Result<Outcome> {
    let timeout = Duration::from_secs_f64(params.timeout);
    let clock = Clock::new();
    let mut ws = client::open(endpoint, 0, timeout).await?;
    let target = endpoint.target;
    let room = room_name(0);
    ws.send(target.join(&room, 2)).await?;
    let mut buf = Vec::new();
    let mut id = 3u32;
    // Warm up: until the own warm-up comes back.
    let deadline = Instant::now() + timeout;
    loop {
        payload::encode(&mut buf, Kind::Warmup, clock.now_ns(), 0, params.payload);
        ws.send(target.publish(&room, &buf, id)).await?;
        id += 1;
        if wait_for(&mut ws, target, Kind::Warmup, 0, Duration::from_millis(500))
            .await?
            .is_some()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the own warm-up message never arrived");
        }
    }
    let mut latency = client::new_histogram();
    let started = Instant::now();
    let max_phase = Duration::from_secs_f64(params.duration);
    let mut seq = 0;
    while seq < params.publishes && started.elapsed() < max_phase {
        let sent = clock.now_ns();
        payload::encode(&mut buf, Kind::Measured, sent, seq, params.payload);
        ws.send(target.publish(&room, &buf, id)).await?;
        id = id.wrapping_add(1).max(2);
        if wait_for(&mut ws, target, Kind::Measured, seq, timeout)
            .await?
            .is_none()
        {
            bail!("publish {seq} never came back within {timeout:?}");
        }
        latency.saturating_record(clock.now_ns().saturating_sub(sent).max(1));
        seq += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = ws.close(None).await;
    let mut outcome = Outcome {
        label: format!("1 connection, {} B", params.payload),
        connections: 1,
        deliveries: seq,
        expected: seq,
        seconds,
        deliveries_per_sec: Some(seq as f64 / seconds),
        ..Outcome::default()
    };
    set_latency(&mut outcome, &latency);
    Ok(outcome)
}

/// Reads until the marker (`kind`, `seq`) arrives; None after `limit`.
async fn wait_for(
    ws: &mut Ws,
    target: Target,
    kind: Kind,
    seq: u64,
    limit: Duration,
) -> Result<Option<()>> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Ok(None),
            Ok(None) => bail!("closed by the server"),
            Ok(Some(frame)) => frame?,
        };
        if let Some(answer) = target.answer(&frame) {
            ws.send(answer).await?;
        }
        let data: &[u8] = match &frame {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_bytes(),
            Message::Close(c) => bail!("closed by the server: {c:?}"),
            _ => continue,
        };
        let mut found = false;
        payload::scan(data, |m| found |= m.kind == kind && m.seq == seq);
        if found {
            return Ok(Some(()));
        }
    }
}

/// A connection storm: `subscribers` connections, `concurrency` at a time,
/// each through the protocol's connect handshake.
async fn storm(endpoint: Endpoint, pids: &[u32], params: &Params) -> Result<Outcome> {
    let timeout = Duration::from_secs_f64(params.timeout);
    let total = params.subscribers;
    let cpu0 = procfs::cpu_us_all(pids)?;
    let started = Instant::now();
    let opened: Vec<Result<Ws>> = futures_util::stream::iter(0..total)
        .map(|n| client::open(endpoint, n, timeout))
        .buffer_unordered(params.concurrency.max(1) as usize)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = procfs::cpu_us_all(pids)?.saturating_sub(cpu0) as f64;
    let mut errors = Vec::new();
    let mut open = Vec::new();
    for r in opened {
        match r {
            Ok(ws) => open.push(ws),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let connected = open.len() as u64;
    for mut ws in open {
        let _ = ws.close(None).await;
    }
    Ok(Outcome {
        label: format!("{total} connections, {} at a time", params.concurrency),
        connections: connected,
        seconds,
        connects_per_sec: Some(connected as f64 / seconds),
        cpu_cores: Some(cpu / 1e6 / seconds),
        errors: errors.len() as u64,
        first_error: errors.into_iter().next(),
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    //! A short run of every scenario against an in-process Switchboard, so
    //! the tool keeps working; the numbers themselves mean nothing here.

    use super::*;
    use crate::wire::Target;
    use tokio_util::sync::CancellationToken;

    fn small() -> Params {
        Params {
            subscribers: 20,
            rooms: 4,
            publishes: 50,
            rate: 0.0,
            duration: 5.0,
            payload: 100,
            window: 16,
            concurrency: 8,
            timeout: 20.0,
            settle: 0.2,
            cycles: 2,
        }
    }

    async fn with_server<F, Fut>(f: F)
    where
        F: FnOnce(Endpoint, u32) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let done = stop.clone();
        let config = switchboard::config::Config::default();
        let server = tokio::spawn(switchboard::server::run(listener, config, async move {
            done.cancelled().await;
        }));
        let endpoint = Endpoint {
            target: Target::Switchboard,
            addr,
            alt: None,
        };
        f(endpoint, std::process::id()).await;
        stop.cancel();
        server.await.unwrap().unwrap();
    }

    fn assert_complete(o: &Outcome) {
        assert_eq!(o.errors, 0, "{:?}", o.first_error);
        assert!(o.expected > 0);
        assert_eq!(o.deliveries, o.expected);
        assert!(o.p99_us.is_some_and(|p| p > 0.0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fanout_full_speed_and_at_a_rate() {
        with_server(|endpoint, pid| async move {
            let o = run(Scenario::Fanout, endpoint, &[pid], &small())
                .await
                .unwrap();
            assert_complete(&o);
            assert_eq!(o.expected, 20 * 50);
            assert!(o.deliveries_per_sec.is_some_and(|d| d > 0.0));
            assert!(o.cpu_us_per_delivery.is_some());
            let rated = Params {
                rate: 50.0,
                duration: 1.0,
                ..small()
            };
            let o = run(Scenario::Fanout, endpoint, &[pid], &rated)
                .await
                .unwrap();
            assert_complete(&o);
            assert!(o.label.contains("50 publishes/s"));
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rooms_spread_publishes() {
        with_server(|endpoint, pid| async move {
            let params = Params {
                subscribers: 3,
                rooms: 60,
                publishes: 120,
                ..small()
            };
            let o = run(Scenario::Rooms, endpoint, &[pid], &params)
                .await
                .unwrap();
            assert_complete(&o);
            // Two publisher connections: 60 rooms exceed one's share.
            assert_eq!(o.connections, 60 * 3 + 2);
            assert_eq!(o.expected, 120 * 3);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn churn_reports_memory_before_during_and_after() {
        with_server(|endpoint, pid| async move {
            let o = run(Scenario::Churn, endpoint, &[pid], &small())
                .await
                .unwrap();
            assert_eq!((o.connections, o.errors), (2 * 20, 0));
            let (base, peak, after) = (
                o.rss_base_bytes.unwrap(),
                o.rss_peak_bytes.unwrap(),
                o.rss_after_bytes.unwrap(),
            );
            assert!(base > 0 && peak >= base && after > 0, "{o:?}");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_rtt_and_connect() {
        with_server(|endpoint, pid| async move {
            let o = run(Scenario::Idle, endpoint, &[pid], &small())
                .await
                .unwrap();
            assert_eq!((o.connections, o.errors), (20, 0));
            assert!(o.rss_per_connection.is_some());
            assert!(o.connects_per_sec.is_some_and(|c| c > 0.0));

            let o = run(Scenario::Rtt, endpoint, &[pid], &small())
                .await
                .unwrap();
            assert_complete(&o);
            assert_eq!(o.deliveries, 50);

            let o = run(Scenario::Connect, endpoint, &[pid], &small())
                .await
                .unwrap();
            assert_eq!((o.connections, o.errors), (20, 0));
        })
        .await;
    }
}
