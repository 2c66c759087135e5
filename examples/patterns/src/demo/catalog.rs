//! The patterns that run: their names, what each shows, and its routing table.

/// The patterns that run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    /// registration → payment → course → notification.
    Chain,
    /// Request/reply with `reply_to` and `correlation_id`.
    Rpc,
    /// One event to three consumers.
    Fanout,
    /// A choreography saga with compensation: order-service and a payment service.
    Saga,
}

impl Demo {
    /// Every demo, as `--list` names them.
    pub const ALL: [Self; 4] = [Self::Chain, Self::Rpc, Self::Fanout, Self::Saga];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Chain => "chain",
            Self::Rpc => "rpc",
            Self::Fanout => "fanout",
            Self::Saga => "saga",
        }
    }

    /// The demo named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// One line on what it shows.
    pub fn about(self) -> &'static str {
        match self {
            Self::Chain => {
                "registration → payment → course → notification, each step its own consumer; the last through a topic exchange"
            }
            Self::Rpc => {
                "request/reply behind the dispatcher: 1,000 calls with an exclusive callback queue, 1,000 with direct reply-to; p50 and p99"
            }
            Self::Fanout => {
                "one event to three consumers: two queues, and an exchange bound to a third"
            }
            Self::Saga => {
                "an order saga with compensation: order-service's orders confirmed or cancelled by a payment service behind a circuit breaker"
            }
        }
    }

    /// Its routing table, in `examples/routes/`.
    pub fn routes(self) -> &'static str {
        match self {
            Self::Chain => "registration-chain.toml",
            Self::Rpc => "request-reply.toml",
            Self::Fanout => "fanout.toml",
            Self::Saga => "saga.toml",
        }
    }

    /// The demos `--list` names: all of them.
    pub fn listed() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter()
    }
}
