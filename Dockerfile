# One image, three binaries: dispatcher, user-service, order-service.
# Built by docker-compose.local.yml; `docker build -t event-driven-rs .` works too.

# ---- build stage: the Rust toolchain and the whole workspace ------------------------
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Manifests first, so dependency builds are cached while only sources change.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY events events
COPY dispatcher dispatcher
COPY user-service user-service
COPY order-service order-service
COPY xtask xtask
COPY e2e e2e
COPY bench bench
COPY examples examples
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dispatcher -p user-service -p order-service \
 && mkdir -p /out \
 && cp target/release/dispatcher target/release/user-service target/release/order-service /out/

# ---- runtime stage: a small Debian with the binaries, running as a non-root user ----
FROM debian:bookworm-slim AS runtime
# ca-certificates: the system's root certificates, which amqps:// URLs trust by default.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app /data \
 && chown app:app /app /data
COPY --from=build /out/ /usr/local/bin/
COPY --chown=app:app routes.toml /app/routes.toml
WORKDIR /app
USER app
ENV RUST_LOG=info \
    LOG_FORMAT=pretty \
    ROUTES_FILE=/app/routes.toml \
    USER_DB=/data/users.db \
    ORDER_DB=/data/orders.db
# The compose file picks the binary: command: ["dispatcher"], ["user-service"], ...
CMD ["dispatcher"]
