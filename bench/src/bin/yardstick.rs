//! The yardstick: the smallest useful WebSocket fan-out server on our stack
//! (tokio + tokio-tungstenite), as a ceiling to measure Switchboard against.
//!
//! Protocol (binary frames): `j<room>` joins a room; `p<room>\n<payload>`
//! sends `<payload>` to every member of the room, the sender included. The
//! payload is forwarded as a slice of the received `Bytes` (no copy), and each
//! connection's writer feeds everything queued before one flush, like
//! Switchboard's. No authentication, history, presence or acknowledgements.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Command line.
#[derive(Parser)]
#[command(about = "Minimal tokio-tungstenite fan-out forwarder (benchmark yardstick)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Frames each connection may have queued; more are dropped.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
    /// Frames written per flush at most.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

type Members = Vec<(u64, mpsc::Sender<Bytes>)>;

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<Bytes, Members>>,
    dropped: AtomicU64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    println!("yardstick listening on ws://{}", listener.local_addr()?);
    let rooms = Arc::new(Rooms::default());
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let rooms = rooms.clone();
                let (queue, batch) = (args.queue, args.batch);
                tokio::spawn(async move {
                    let _ = serve(stream, rooms, queue, batch).await;
                });
            }
            _ = &mut shutdown => break,
            _ = term.recv() => break,
        }
    }
    eprintln!(
        "yardstick: {} frames dropped on full queues",
        rooms.dropped.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn serve(
    stream: TcpStream,
    rooms: Arc<Rooms>,
    queue: usize,
    batch: usize,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut sink, mut source) = ws.split();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Bytes>(queue);
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(batch);
        while rx.recv_many(&mut buf, batch).await > 0 {
            for frame in buf.drain(..) {
                if sink.feed(Message::Binary(frame)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut joined = Vec::new();
    while let Some(message) = source.next().await {
        let data = match message? {
            Message::Binary(data) => data,
            Message::Close(_) => break,
            _ => continue,
        };
        match data.first() {
            Some(b'j') => {
                let room = data.slice(1..);
                rooms
                    .rooms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(room.clone())
                    .or_default()
                    .push((id, tx.clone()));
                joined.push(room);
            }
            Some(b'p') => {
                let Some(newline) = data.iter().position(|&b| b == b'\n') else {
                    continue;
                };
                let room = &data[1..newline];
                let payload = data.slice(newline + 1..);
                let map = rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(members) = map.get(room) {
                    for (_, member) in members {
                        if member.try_send(payload.clone()).is_err() {
                            rooms.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    {
        let mut map = rooms.rooms.lock().unwrap_or_else(|p| p.into_inner());
        for room in joined {
            if let Some(members) = map.get_mut(&room) {
                members.retain(|(member, _)| *member != id);
                if members.is_empty() {
                    map.remove(&room);
                }
            }
        }
    }
    drop(tx);
    writer.abort();
    Ok(())
}
