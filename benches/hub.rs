//! Hub fan-out micro-benchmark: queueing one encoded frame for every local
//! subscriber of a room, the per-delivery work inside the server before any
//! socket write. Every iteration starts from idle connections (empty queues,
//! no buffer), as for a message into a quiet room. Run with
//! `cargo bench --bench hub`.

// criterion's macros generate the undocumented entry points.
#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use switchboard::hub::{Hub, Subscriber};
use switchboard::outbound::ConnHandle;

fn room_of(subscribers: usize) -> Hub {
    let hub = Hub::new();
    for _ in 0..subscribers {
        hub.subscribe(
            "room",
            Subscriber {
                conn: ConnHandle::new(1024),
                presence_events: false,
                after: 0,
            },
        );
    }
    hub
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("hub fan-out");
    let frame = Bytes::from(vec![b'x'; 120]);
    for subscribers in [10usize, 1_000] {
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, &n| {
                b.iter_batched(
                    || room_of(n),
                    |hub| hub.deliver("room", std::hint::black_box(&frame)),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
