//! Routing cost (issue 7, item 2): match time per event for 1, 100 and 10,000 routes
//! with exact types, topic patterns and `where` filters, and the compile time of a
//! 10,000-route table. Run with `cargo bench -p dispatcher --bench routing`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dispatcher::routes::{EventDoc, RoutingTable, load};
use events::envelope::event_type;
use lapin::BasicProperties;

const SIZES: [usize; 3] = [1, 100, 10_000];

fn exact_table(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[route]]\nname = \"r{i}\"\nevent = \"type_{i}\"\nto = [\"q{}\"]\n",
                i % 50
            )
        })
        .collect()
}

fn pattern_table(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[route]]\nname = \"r{i}\"\nevent = \"ns_{i}.*\"\nto = [\"q{}\"]\n",
                i % 50
            )
        })
        .collect()
}

fn where_table(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[[route]]\nname = \"r{i}\"\nevent = \"type_{i}\"\nwhere = {{ \"data.version\" = {{ gte = 1 }}, \"data.country\" = \"FR\" }}\nto = [\"q{}\"]\n",
                i % 50
            )
        })
        .collect()
}

/// A ~400-byte structured CloudEvent of type `ty`, as user-service publishes it.
fn body(ty: &str) -> Vec<u8> {
    format!(
        r#"{{"specversion":"1.0","id":"0193a3b4-7c2d-7e8f-9a0b-1c2d3e4f5a6b","source":"user-service","type":"{ty}","subject":"42","time":"2026-11-22T10:00:00.000000Z","datacontenttype":"application/json","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":{{"id":42,"name":"Alice Example","email":"alice@example.com","country":"FR","version":3,"updated_at":"2026-11-22T10:00:00Z"}}}}"#
    )
    .into_bytes()
}

fn properties() -> BasicProperties {
    BasicProperties::default().with_content_type("application/cloudevents+json".into())
}

/// What the forwarder does per message: read the type, route, read the body only
/// when a candidate route has a `where`.
fn route_one(table: &RoutingTable, props: &BasicProperties, body: &[u8]) -> usize {
    let ty = event_type(props, body).unwrap();
    let decision = table
        .route(&ty, || EventDoc::from_amqp(props, body))
        .unwrap();
    decision.targets.len()
}

/// Name, table builder, the event type of route 0 (`0` is replaced by the last index).
type Case = (&'static str, fn(usize) -> String, &'static str);

fn bench_matching(c: &mut Criterion) {
    let props = properties();
    let cases: [Case; 3] = [
        ("exact", exact_table, "type_0"),
        ("pattern", pattern_table, "ns_0.created"),
        ("where", where_table, "type_0"),
    ];
    for (kind, build, ty) in cases {
        let mut group = c.benchmark_group(format!("match/{kind}"));
        for n in SIZES {
            let table = load("bench.toml", &build(n)).unwrap();
            // The last route's type, so the lookup cannot stop early.
            let ty = ty.replace('0', &(n - 1).to_string());
            let body = body(&ty);
            assert_eq!(route_one(&table, &props, &body), 1, "{kind} {n} must match");
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| route_one(black_box(&table), &props, black_box(&body)));
            });
        }
        group.finish();
    }
    let table = load("bench.toml", &exact_table(10_000)).unwrap();
    c.bench_function("match/index_only/10000", |b| {
        b.iter(|| {
            table
                .route(black_box("type_9999"), || {
                    Err::<EventDoc<'_>, &str>("decided without reading the event")
                })
                .map(|d| d.targets.len())
        });
    });
}

fn bench_compile(c: &mut Criterion) {
    let text = exact_table(10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10000_routes", |b| {
        b.iter(|| load("bench.toml", black_box(&text)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench_matching, bench_compile);
criterion_main!(benches);
