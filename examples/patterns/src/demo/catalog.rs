//! The patterns that run: their names, what each shows, its routing table, and what
//! an incomplete one still needs.

/// What the saga still needs before `cargo xtask demo --list` names it.
pub const SAGA_MISSING: &str = "order-service's side of the saga: `POST /orders` recording the \
    order as `pending` and emitting `order_placed`, applying `payment_succeeded` / \
    `payment_failed` from the order queue (`confirmed` / `cancelled`, idempotently and \
    version-aware), and `GET /orders/{id}` showing the status and its history. Until then \
    this demo plays order-service itself and runs the payment half only.";

/// The patterns that run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demo {
    /// registration → payment → course → notification.
    Chain,
    /// Request/reply with `reply_to` and `correlation_id`.
    Rpc,
    /// One event to three consumers.
    Fanout,
    /// A choreography saga with compensation (its payment half so far).
    Saga,
}

impl Demo {
    /// Every demo, listed or not.
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
                "an order saga with compensation: payment behind a circuit breaker (payment half only)"
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

    /// What the demo still needs before it is complete, if anything.
    pub fn missing(self) -> Option<&'static str> {
        match self {
            Self::Saga => Some(SAGA_MISSING),
            Self::Chain | Self::Rpc | Self::Fanout => None,
        }
    }

    /// The demos `--list` names: the complete ones.
    pub fn listed() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(|d| d.missing().is_none())
    }
}
