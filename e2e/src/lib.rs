//! The whole system under test, for end-to-end tests, the fault suite and benchmarks:
//! real binaries ([`process`]), all three wired together on unique queues ([`system`]),
//! private RabbitMQ nodes for tests that stop or restart a broker ([`broker`]), with
//! TLS ([`certs`]) or joined in a [`cluster`], archive replays ([`replay`]) and a
//! headless [`browser`].

pub mod broker;
pub mod browser;
pub mod certs;
pub mod cluster;
pub mod faults;
pub mod node_config;
pub mod process;
pub mod replay;
pub mod stream;
pub mod system;

pub use broker::{NodeRecord, PrivateBroker};
pub use browser::Browser;
pub use certs::TestPki;
pub use cluster::Cluster;
pub use node_config::{NodeOptions, TlsListener};
pub use process::{Service, Spec};
pub use system::{Options, Queues, System};
