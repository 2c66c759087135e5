//! The driver behind `cargo xtask demo <name>` and `e2e/tests/suite/patterns.rs`. For one
//! pattern it starts the example services and the real dispatcher binary with the
//! pattern's table from `examples/routes/`, all on the demo's own queues
//! (`<prefix>.<demo>.*`), drives one journey, prints it hop by hop with timings, and
//! deletes every queue and exchange it declared. A failed hop is an error that names it.

mod catalog;
pub mod chain;
pub mod fanout;
mod fleet;
pub mod journal;
mod order_api;
mod queues;
pub mod rpc;
pub mod saga;
pub mod stage;

pub use catalog::Demo;
pub use stage::{Names, Options, Plan};

/// Runs `demo`: `Ok` when its journey completed.
pub async fn run(demo: Demo, options: &Options) -> anyhow::Result<()> {
    match demo {
        Demo::Chain => chain::run(options).await.map(drop),
        Demo::Rpc => rpc::run(options).await.map(drop),
        Demo::Fanout => fanout::run(options).await.map(drop),
        Demo::Saga => saga::run(options).await.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// Every quoted `demo.…` name in a table.
    fn names_in_table(demo: Demo) -> BTreeSet<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../routes")
            .join(demo.routes());
        let text = std::fs::read_to_string(&path).unwrap();
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|s| s.starts_with("demo."))
            .map(str::to_owned)
            .collect()
    }

    fn plan(demo: Demo, names: &Names) -> Plan {
        match demo {
            Demo::Chain => chain::plan(names),
            Demo::Rpc => rpc::plan(names),
            Demo::Fanout => fanout::plan(names),
            Demo::Saga => saga::plan(names),
        }
    }

    #[test]
    fn every_name_in_a_demo_table_is_its_own_and_is_cleaned_up() {
        for demo in Demo::ALL {
            let names = Names::new("demo", demo);
            let plan = plan(demo, &names);
            let own = format!("demo.{}.", demo.name());
            for name in names_in_table(demo) {
                assert!(
                    name.starts_with(&own),
                    "{}: {name} is not the demo's own",
                    demo.routes()
                );
                let base = name.strip_suffix(".dead").unwrap_or(&name);
                assert!(
                    plan.queues.iter().any(|q| q == base) || plan.exchanges.contains(&name),
                    "{}: {name} is not deleted by the demo",
                    demo.routes()
                );
            }
            assert!(plan.queues.contains(&plan.source), "{demo:?}");
        }
    }

    #[test]
    fn names_parse_back_and_every_demo_is_listed() {
        for demo in Demo::ALL {
            assert_eq!(Demo::from_name(demo.name()), Some(demo));
        }
        assert_eq!(Demo::from_name("nope"), None);
        let listed: Vec<Demo> = Demo::listed().collect();
        assert_eq!(listed, [Demo::Chain, Demo::Rpc, Demo::Fanout, Demo::Saga]);
    }
}
