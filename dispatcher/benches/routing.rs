//! Routing cost (issue 7, item 2): match time per event for 1, 100 and 10,000 routes
//! with exact types, topic patterns and `where` filters, and the compile time of a
//! 10,000-route table. Issue 13: long types against patterns with several `#`, at the
//! type limit through the whole reader and, beyond it, on the trie alone (linear, not
//! quadratic, in the number of words). Issue 15: the `where` operators on a 100-route
//! table (`any` with 5 branches, `wildcard`, `cidr`, `matches`) against plain equality in
//! the same run, `wildcard` on a 10 kB pathological input against a substring search of
//! the same text, and an exchange target whose routing key is a template against the
//! same target with a plain key. Run with `cargo bench -p dispatcher --bench routing`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dispatcher::routes::condition::Wildcard;
use dispatcher::routes::event::Incoming;
use dispatcher::routes::pattern::{EventMatcher, parse};
use dispatcher::routes::trie::TopicTrie;
use dispatcher::routes::{EventDoc, RoutingTable, load};
use events::envelope::MAX_TYPE_BYTES;
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
    let incoming = Incoming::read(props, body).unwrap();
    let decision = table
        .route(&incoming.event_type, || incoming.doc.read())
        .unwrap();
    decision.targets.len()
}

/// Patterns with several `#`, the shape that made matching quadratic.
const HASHES: [&str; 4] = ["#.x.#", "#.a.#.b.#", "#.x.#.x.#.x.#", "*.#.y"];

fn hash_table() -> String {
    HASHES
        .iter()
        .enumerate()
        .map(|(i, p)| format!("[[route]]\nname = \"h{i}\"\nevent = \"{p}\"\nto = [\"q\"]\n"))
        .collect()
}

/// `words` words `x`, then `y`.
fn long_type(words: usize) -> String {
    let mut ty = vec!["x"; words - 1].join(".");
    ty.push_str(".y");
    ty
}

fn bench_long_types(c: &mut Criterion) {
    let props = properties();
    let table = load("bench.toml", &hash_table()).unwrap();
    // The longest type the reader accepts: 128 words in 255 bytes.
    let at_limit = long_type(MAX_TYPE_BYTES / 2 + 1);
    assert!(at_limit.len() <= MAX_TYPE_BYTES);
    let body = body(&at_limit);
    assert_eq!(route_one(&table, &props, &body), 1);
    c.bench_function("match/hashes/type_at_limit", |b| {
        b.iter(|| route_one(black_box(&table), &props, black_box(&body)));
    });
    // Beyond the limit the reader refuses the type before matching: the trie alone,
    // to show that its cost grows with the words, not their square.
    let mut trie = TopicTrie::default();
    for (i, p) in HASHES.iter().enumerate() {
        let Ok(EventMatcher::Pattern(words)) = parse(p) else {
            panic!("{p} is a pattern");
        };
        trie.insert(&words, i);
    }
    let mut group = c.benchmark_group("trie/hashes");
    group.sample_size(10);
    for words in [1_000, 10_000, 50_000] {
        let ty = long_type(words);
        group.bench_with_input(BenchmarkId::from_parameter(words), &ty, |b, ty| {
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                trie.collect(black_box(ty), &mut out);
                out.len()
            });
        });
    }
    group.finish();
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

/// What the forwarder does per message for an exchange target: read the type, route,
/// and, when its routing key is a template, render it from the same reading (issue 15).
fn shape_one(table: &RoutingTable, props: &BasicProperties, body: &[u8]) -> usize {
    let incoming = Incoming::read(props, body).unwrap();
    if !table.has_shaping() {
        let decision = table
            .route(&incoming.event_type, || incoming.doc.read())
            .unwrap();
        return table.target(decision.targets[0]).routing_key().len();
    }
    let event = incoming.doc.read().unwrap();
    let decision = table
        .route(&incoming.event_type, || {
            Ok::<_, events::EnvelopeError>(event.clone())
        })
        .unwrap();
    let shaped = table.shape(&decision, &event).unwrap();
    shaped[0].routing_key.as_ref().map_or(0, String::len)
}

fn bench_shaping(c: &mut Criterion) {
    let props = properties();
    let body = body("user_created");
    let mut group = c.benchmark_group("shape");
    for (name, key) in [
        ("static_key", "audit.FR.user_created"),
        ("templated_key", "audit.{data.country}.{type}"),
    ] {
        let text = format!(
            "[[route]]\nname = \"audit\"\nevent = \"user_created\"\nto = [{{ exchange = \"audit\", routing_key = \"{key}\" }}]\n"
        );
        let table = load("bench.toml", &text).unwrap();
        assert_eq!(
            shape_one(&table, &props, &body),
            "audit.FR.user_created".len()
        );
        group.bench_function(name, |b| {
            b.iter(|| shape_one(black_box(&table), &props, black_box(&body)));
        });
    }
    group.finish();
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

/// 100 routes of distinct types, each with the same `where`.
fn operator_table(filter: &str) -> String {
    (0..100)
        .map(|i| {
            format!(
                "[[route]]\nname = \"r{i}\"\nevent = \"type_{i}\"\nwhere = {filter}\nto = [\"q\"]\n"
            )
        })
        .collect()
}

/// Each `where` holds for [`body`]'s event, so every condition is evaluated.
const OPERATORS: [(&str, &str); 6] = [
    ("eq_peer", r#"{ "data.country" = "FR" }"#),
    (
        "any_5_branches",
        r#"{ any = [{ "data.country" = "DE" }, { "data.country" = "BE" }, { "data.version" = { gt = 10 } }, { subject = "7" }, { "data.country" = "FR" }] }"#,
    ),
    (
        "wildcard",
        r#"{ "data.email" = { wildcard = "*@example.*" } }"#,
    ),
    (
        "cidr",
        r#"{ "data.ip" = { cidr = ["10.0.0.0/8", "192.168.0.0/16"] } }"#,
    ),
    (
        "matches",
        r#"{ "data.email" = { matches = "^[a-z]+@example\\.com$" } }"#,
    ),
    (
        "eq_ignore_case",
        r#"{ "data.country" = { eq_ignore_case = "fr" } }"#,
    ),
];

fn bench_operators(c: &mut Criterion) {
    let props = properties();
    let body = String::from_utf8(body("type_99"))
        .unwrap()
        .replace(r#""version":3"#, r#""version":3,"ip":"192.168.1.20""#)
        .into_bytes();
    let mut group = c.benchmark_group("match/operators");
    for (name, filter) in OPERATORS {
        let table = load("bench.toml", &operator_table(filter)).unwrap();
        assert_eq!(route_one(&table, &props, &body), 1, "{name} must match");
        group.bench_function(name, |b| {
            b.iter(|| route_one(black_box(&table), &props, black_box(&body)));
        });
    }
    group.finish();
    // `*a*a*…*a*b*` against 10 kB of `a`: exponential for a backtracking matcher; here
    // the 50 `a` are found at once and one scan of the rest finds no `b`.
    let text = "a".repeat(10_000);
    let pattern = Wildcard::parse(&format!("{}*b*", "*a".repeat(50))).unwrap();
    assert!(!pattern.matches(&text));
    let mut group = c.benchmark_group("wildcard/10kB");
    group.bench_function("pathological", |b| {
        b.iter(|| pattern.matches(black_box(&text)));
    });
    group.bench_function("substring_search_peer", |b| {
        b.iter(|| black_box(&text).contains(black_box("b")));
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_matching,
    bench_operators,
    bench_long_types,
    bench_shaping,
    bench_compile
);
criterion_main!(benches);
