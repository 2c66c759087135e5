//! A TCP proxy in front of the shared broker that a test can switch off (existing
//! connections are cut, new ones are closed at once) and on again: a broker outage
//! without touching the broker other tests use.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The `host:port` of the broker in `broker_url`, resolved.
pub async fn upstream(broker_url: &str) -> SocketAddr {
    let rest = broker_url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5672")
    };
    tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap()
}

/// The proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    /// `Some(token)` while on: cancelling the token cuts the connections of that period.
    state: Arc<Mutex<Option<CancellationToken>>>,
    stop: CancellationToken,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free localhost port, switched on or off.
    pub async fn start(upstream: SocketAddr, on: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(on.then(CancellationToken::new)));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, upstream, state.clone(), stop.clone()));
        Self { port, state, stop }
    }

    /// `broker_url` with its host and port replaced by the proxy's.
    pub fn amqp_url(&self, broker_url: &str) -> String {
        let (scheme, rest) = broker_url.split_once("://").unwrap();
        let (userinfo, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("{scheme}://{userinfo}{at}127.0.0.1:{}{path}", self.port)
    }

    /// Cuts every open connection and refuses new ones.
    pub fn switch_off(&self) {
        if let Some(token) = self.state.lock().unwrap().take() {
            token.cancel();
        }
    }

    /// Lets connections through again.
    pub fn switch_on(&self) {
        self.state
            .lock()
            .unwrap()
            .get_or_insert_with(CancellationToken::new);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.switch_off();
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: Arc<Mutex<Option<CancellationToken>>>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        let period = state.lock().unwrap().clone();
        // Off: dropping the socket closes it before the AMQP handshake.
        let Some(period) = period else { continue };
        tokio::spawn(pipe(client, upstream, period));
    }
}

async fn pipe(mut client: TcpStream, upstream: SocketAddr, period: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        () = period.cancelled() => {}
        _ = copy_bidirectional(&mut client, &mut server) => {}
    }
}
