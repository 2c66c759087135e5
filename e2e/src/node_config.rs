//! What a private node is configured with: its `rabbitmq.conf` (ports, and a TLS
//! listener when asked) and its enabled plugins.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::broker::NodeRecord;
use crate::certs::Identity;

/// How to start a private node.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Plugins to enable (e.g. `rabbitmq_shovel`).
    pub plugins: Vec<String>,
    /// A TLS listener beside the plaintext one.
    pub tls: Option<TlsListener>,
    /// Where the node's folder goes (default: the system's temporary folder).
    pub parent: Option<PathBuf>,
    /// Cores the node's VM may run on, as `taskset -c` takes them (e.g. `0`); default all.
    pub cpus: Option<String>,
    /// Extra Erlang VM flags (`RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS`), e.g. `+S 1:1` for
    /// one scheduler.
    pub erl_args: Option<String>,
}

/// A TLS listener: what it serves, and whether it asks clients for a certificate.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// The CA bundle the node trusts for client certificates.
    pub ca: PathBuf,
    /// The node's certificate and key.
    pub server: Identity,
    /// Ask for a client certificate (optional, but verified when given) and accept the
    /// `EXTERNAL` mechanism, which logs in as the certificate's common name.
    pub verify_peer: bool,
}

/// The node's `rabbitmq.conf` and `enabled_plugins` contents. TLS files are copied into
/// `<dir>/tls` (the node runs as `rabbitmq`, which may not read the originals).
pub(crate) fn node_files(
    options: &NodeOptions,
    record: &NodeRecord,
    management_port: u16,
) -> anyhow::Result<(String, String)> {
    // The machine's /etc/rabbitmq/rabbitmq.conf pins port 5672: this node gets its own.
    let mut conf = format!(
        "listeners.tcp.local = 127.0.0.1:{}\nmanagement.tcp.port = {management_port}\n",
        record.port
    );
    let mut plugins = options.plugins.clone();
    if let (Some(tls), Some(port)) = (&options.tls, record.tls_port) {
        conf.push_str(&tls_conf(tls, port, &record.dir.join("tls"))?);
        if tls.verify_peer {
            plugins.push("rabbitmq_auth_mechanism_ssl".to_owned());
        }
    }
    Ok((conf, format!("[{}].\n", plugins.join(","))))
}

/// The `rabbitmq.conf` lines of a TLS listener on `port`, with its files copied into `dir`.
fn tls_conf(tls: &TlsListener, port: u16, dir: &Path) -> anyhow::Result<String> {
    let copy = |from: &Path, name: &str| -> anyhow::Result<String> {
        let to = dir.join(name);
        std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
        Ok(to.display().to_string())
    };
    let (ca, cert, key) = (
        copy(&tls.ca, "ca.pem")?,
        copy(&tls.server.cert, "server.pem")?,
        copy(&tls.server.key, "server.key")?,
    );
    let mut conf = format!(
        "listeners.ssl.local = 127.0.0.1:{port}\n\
         ssl_options.cacertfile = {ca}\n\
         ssl_options.certfile = {cert}\n\
         ssl_options.keyfile = {key}\n\
         ssl_options.fail_if_no_peer_cert = false\n"
    );
    if tls.verify_peer {
        conf.push_str(
            "ssl_options.verify = verify_peer\n\
             ssl_cert_login_from = common_name\n\
             auth_mechanisms.1 = PLAIN\n\
             auth_mechanisms.2 = AMQPLAIN\n\
             auth_mechanisms.3 = EXTERNAL\n",
        );
    } else {
        conf.push_str("ssl_options.verify = verify_none\n");
    }
    Ok(conf)
}

/// The `rabbitmq-server` of the machine's installation.
pub(crate) fn which_server() -> Option<PathBuf> {
    [
        "/usr/sbin/rabbitmq-server",
        "/usr/local/sbin/rabbitmq-server",
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Gives `dir` and everything in it to `user`.
pub(crate) fn chown_tree(dir: &Path, user: &str) -> anyhow::Result<()> {
    let user = nix::unistd::User::from_name(user)?.with_context(|| {
        format!("no `{user}` user on this machine: is rabbitmq-server installed?")
    })?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::chown(&path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}
