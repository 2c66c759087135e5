//! Names, ports and defaults of docs/architecture.md, in one place so code and tests agree.

/// Broker URL used when `AMQP_URL` is not set.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The dispatcher's input queue: every service publishes its events here.
pub const QUEUE_DISPATCH: &str = "queue_dispatch";
/// The order service's input queue.
pub const QUEUE_ORDER: &str = "queue_order";
/// Where the dispatcher sends events that no route matched.
pub const QUEUE_UNROUTED: &str = "queue_unrouted";
/// Where the dispatcher sends events it could not read.
pub const QUEUE_DISPATCH_DEAD: &str = "queue_dispatch.dead";
/// Suffix of every dead-letter queue: `<queue>.dead`.
pub const DEAD_SUFFIX: &str = ".dead";

/// user-service HTTP listen address (`USER_SERVICE_ADDR`).
pub const USER_SERVICE_ADDR: &str = "127.0.0.1:8000";
/// order-service HTTP listen address (`ORDER_SERVICE_ADDR`).
pub const ORDER_SERVICE_ADDR: &str = "127.0.0.1:8001";
/// dispatcher admin HTTP listen address (`DISPATCHER_ADDR`).
pub const DISPATCHER_ADDR: &str = "127.0.0.1:8002";
/// user-service database (`USER_DB`).
pub const USER_DB: &str = "data/users.db";
/// order-service database (`ORDER_DB`).
pub const ORDER_DB: &str = "data/orders.db";
/// dispatcher routing table (`ROUTES_FILE`).
pub const ROUTES_FILE: &str = "routes.toml";

/// Event type emitted when a user is created.
pub const USER_CREATED: &str = "user_created";
/// Event type emitted when a user is changed.
pub const USER_UPDATED: &str = "user_updated";
/// Event type emitted when a user is deleted.
pub const USER_DELETED: &str = "user_deleted";
