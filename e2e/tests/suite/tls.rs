//! TLS against a private RabbitMQ node with a TLS listener and certificates made at run
//! time: a trusted client connects, every refusal is one line that says what to do,
//! mutual TLS logs in by the certificate (`EXTERNAL`), and events flow over `amqps://`.

use std::time::Duration;

use e2e::certs::CLIENT_NAME;
use e2e::{NodeOptions, Options, PrivateBroker, System, TestPki, TlsListener};
use events::amqp::connect_once;
use events::testing::{eventually, unique};
use events::{AmqpSettings, Endpoints};

const ATTEMPT: Duration = Duration::from_secs(10);

async fn tls_node(pki: &TestPki) -> PrivateBroker {
    let tls = TlsListener {
        ca: pki.ca(),
        server: pki.server(),
        verify_peer: true,
    };
    let options = NodeOptions {
        tls: Some(tls),
        ..NodeOptions::default()
    };
    PrivateBroker::start_with("tls", options).await.unwrap()
}

/// The one-line error of connecting with `settings`, which must fail.
async fn refusal(settings: AmqpSettings) -> String {
    let endpoints = Endpoints::new(&settings).unwrap();
    let error = connect_once(&endpoints, "tls-refused", ATTEMPT)
        .await
        .expect_err("the connection must be refused")
        .to_string();
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(!error.contains(":guest@"), "password redacted: {error}");
    error
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_connects_and_each_refusal_says_what_to_do() {
    let pki = TestPki::generate().unwrap();
    let broker = tls_node(&pki).await;
    let tls_url = broker.tls_url().unwrap();
    let tls_port = broker.tls_port().unwrap();
    let trusting = AmqpSettings {
        ca_file: Some(pki.ca()),
        ..AmqpSettings::for_url(&tls_url)
    };

    let endpoints = Endpoints::new(&trusting).unwrap();
    let connection = connect_once(&endpoints, "tls-ok", ATTEMPT).await.unwrap();
    assert!(connection.status().connected());
    let expected = format!("amqps://guest:***@localhost:{tls_port}/%2f");
    assert_eq!(endpoints.node_of("tls-ok"), Some(expected));
    connection.close(200, "ok".into()).await.unwrap();

    let error = refusal(AmqpSettings::for_url(&tls_url)).await;
    assert!(error.contains("set AMQP_CA_FILE"), "{error}");
    let error = refusal(AmqpSettings {
        ca_file: Some(pki.other_ca()),
        ..AmqpSettings::for_url(&tls_url)
    })
    .await;
    assert!(error.contains("set AMQP_CA_FILE"), "{error}");

    let by_address = format!("amqps://guest:guest@127.0.0.1:{tls_port}/%2f");
    let error = refusal(AmqpSettings {
        url: by_address,
        ..trusting.clone()
    })
    .await;
    assert!(
        error.contains("the certificate names localhost, not host 127.0.0.1"),
        "{error}"
    );

    let tls_to_plain = format!("amqps://guest:guest@localhost:{}/%2f", broker.port());
    let error = refusal(AmqpSettings {
        url: tls_to_plain,
        ..trusting.clone()
    })
    .await;
    assert!(error.contains("plaintext AMQP port"), "{error}");

    let plain_to_tls = format!("amqp://guest:guest@localhost:{tls_port}/%2f");
    let error = refusal(AmqpSettings::for_url(plain_to_tls)).await;
    assert!(error.contains("use amqps://"), "{error}");
}

#[tokio::test]
async fn mutual_tls_logs_in_by_the_certificate_and_a_stranger_certificate_is_refused() {
    let pki = TestPki::generate().unwrap();
    let broker = tls_node(&pki).await;
    let password = unique("unused-password");
    broker
        .ctl_ok(&["add_user", CLIENT_NAME, &password])
        .unwrap();
    broker
        .ctl_ok(&["set_permissions", "-p", "/", CLIENT_NAME, ".*", ".*", ".*"])
        .unwrap();
    let port = broker.tls_port().unwrap();
    let external = format!("amqps://localhost:{port}/%2f?auth_mechanism=external");
    let client = pki.client();
    let mutual = AmqpSettings {
        ca_file: Some(pki.ca()),
        client_cert: Some(client.cert.clone()),
        client_key: Some(client.key.clone()),
        ..AmqpSettings::for_url(&external)
    };

    let endpoints = Endpoints::new(&mutual).unwrap();
    let connection = connect_once(&endpoints, "tls-mutual", ATTEMPT)
        .await
        .unwrap();
    let listed = broker
        .ctl_ok(&["list_connections", "user", "auth_mechanism"])
        .unwrap();
    assert!(
        listed.contains(&format!("{CLIENT_NAME}\tEXTERNAL")),
        "logged in as the certificate's name: {listed}"
    );
    connection.close(200, "ok".into()).await.unwrap();

    let stranger = pki.stranger();
    let error = refusal(AmqpSettings {
        client_cert: Some(stranger.cert),
        client_key: Some(stranger.key),
        ..mutual
    })
    .await;
    assert!(error.contains("refused the client certificate"), "{error}");
}

#[tokio::test]
async fn events_flow_end_to_end_over_amqps() {
    let pki = TestPki::generate().unwrap();
    let broker = tls_node(&pki).await;
    let options = Options {
        amqp_url: broker.tls_url().unwrap(),
        ca_file: Some(pki.ca()),
        rust_log: "info".to_owned(),
        ..Options::default()
    };
    let system = System::start(options).await.unwrap();
    let email = format!("{}@example.com", unique("tls"));
    let user = system.create_user("Tess", &email).await.unwrap();
    let id = user["id"].as_i64().unwrap();
    let snapshot = eventually(Duration::from_secs(30), "the snapshot over TLS", || async {
        system.snapshot(id).await.unwrap()
    })
    .await;
    assert_eq!(snapshot["email"], email);
    let ready: serde_json::Value = system
        .http
        .get(system.dispatcher.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes = ready["broker_nodes"].to_string();
    assert!(nodes.contains("amqps://guest:***@localhost"), "{ready}");
    let metrics = system
        .http
        .get(system.dispatcher.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = metrics
        .lines()
        .find(|line| line.starts_with("dispatcher_broker_node{"))
        .unwrap_or_default();
    assert!(
        gauge.contains("node=\"amqps://guest:***@localhost") && gauge.ends_with(" 1"),
        "{metrics}"
    );
    let connections = broker.ctl_ok(&["list_connections", "ssl"]).unwrap();
    let tls = connections.lines().filter(|l| l.trim() == "true").count();
    let plain = connections.lines().filter(|l| l.trim() == "false").count();
    assert!(
        tls >= 3 && plain == 0,
        "every connection of the system is TLS: {connections}"
    );
    system.shutdown().await.unwrap();
}
