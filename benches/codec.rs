//! Codec micro-benchmarks: what every command and every delivery costs to
//! decode and encode. Run with `cargo bench --bench codec`.

// criterion's macros generate the undocumented entry points.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message as _;
use switchboard::codec::{self, Encoding};
use switchboard::proto::{
    client_frame::Command, server_frame::Kind, ClientFrame, Payload, PublishRequest, RoomMessage,
    ServerFrame,
};
use tokio_tungstenite::tungstenite::Message;

fn room_message() -> ServerFrame {
    ServerFrame {
        id: 0,
        kind: Some(Kind::Message(RoomMessage {
            room: "lobby".to_owned(),
            offset: 123_456,
            id: 9_876_543_210,
            sender: "alice".to_owned(),
            timestamp_ms: 1_764_115_200_000,
            payload: Some(Payload {
                text: String::new(),
                data: Bytes::from(vec![b'x'; 100]),
                type_name: String::new(),
            }),
        })),
    }
}

fn publish_frame() -> Message {
    Message::binary(
        ClientFrame {
            id: 42,
            command: Some(Command::Publish(PublishRequest {
                room: "lobby".to_owned(),
                payload: Some(Payload {
                    text: String::new(),
                    data: Bytes::from(vec![b'x'; 100]),
                    type_name: String::new(),
                }),
                idempotency_key: String::new(),
            })),
        }
        .encode_to_vec(),
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let frame = room_message();
    group.bench_function("encode room message (100 B payload)", |b| {
        b.iter(|| codec::encode_server(std::hint::black_box(&frame)))
    });
    let publish = publish_frame();
    group.bench_function("decode publish command (100 B payload)", |b| {
        b.iter(|| codec::decode_client(Encoding::Proto, std::hint::black_box(&publish)))
    });
    let encoded = codec::encode_server(&frame);
    group.bench_function("frame for a binary client (shared Bytes)", |b| {
        b.iter(|| codec::to_message(Encoding::Proto, std::hint::black_box(encoded.clone())))
    });
    group.bench_function("frame for a JSON client (converted)", |b| {
        b.iter(|| codec::to_message(Encoding::Json, std::hint::black_box(encoded.clone())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
