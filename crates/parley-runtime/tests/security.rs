//! gRPC auth, TLS and size limits, over real sockets.
//!
//! Reflection stands in for "any Parley service": it sits behind the same
//! guard as every service a binary adds, while `grpc.health.v1` must stay open.

use std::net::SocketAddr;
use std::time::Duration;

use parley_runtime::client::{ClientSecurityArgs, connect};
use parley_runtime::{GrpcServer, ServeError, ServerSecurityArgs, ShutdownSignal};
use parley_testkit::TestPki;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

const TOKEN: &str = "0123456789abcdef-test-token";

/// A running server and the means to stop it.
struct Running {
    addr: SocketAddr,
    shutdown: ShutdownSignal,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://localhost:{}", self.addr.port())
    }

    async fn stop(self) {
        self.shutdown.token.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn start(args: &ServerSecurityArgs) -> Running {
    let security = args.load().expect("valid security settings");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = ShutdownSignal::new(Duration::from_secs(1));
    let server = GrpcServer::new().with_security(security);
    let task = tokio::spawn(server.serve(listener, shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

/// Calls the (protected) reflection service: list services.
async fn list_services(
    url: &str,
    client: &ClientSecurityArgs,
) -> Result<Vec<String>, tonic::Status> {
    let channel = connect(url, client)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    let response = responses.message().await?.expect("one response");
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn health(url: &str, client: &ClientSecurityArgs) -> Result<i32, tonic::Status> {
    let channel = connect(url, client)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status)
}

fn token_args() -> ServerSecurityArgs {
    ServerSecurityArgs {
        grpc_token: Some(TOKEN.into()),
        ..Default::default()
    }
}

fn client_with(token: Option<&str>) -> ClientSecurityArgs {
    ClientSecurityArgs {
        token: token.map(str::to_owned),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_request_without_the_token_is_unauthenticated() {
    let server = start(&token_args()).await;
    let status = list_services(&server.url("http"), &client_with(None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("PARLEY_GRPC_TOKEN"), "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_token_is_unauthenticated() {
    let server = start(&token_args()).await;
    for wrong in ["0123456789abcdef-test-tokeX", "short", ""] {
        let status = list_services(&server.url("http"), &client_with(Some(wrong)))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "token {wrong:?}: {status:?}"
        );
        assert!(
            status.message().contains("invalid bearer token"),
            "{status:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_right_token_is_served() {
    let server = start(&token_args()).await;
    let services = list_services(&server.url("http"), &client_with(Some(TOKEN)))
        .await
        .expect("authorized");
    assert!(
        services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{services:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn health_needs_no_token() {
    let server = start(&token_args()).await;
    let status = health(&server.url("http"), &client_with(None))
        .await
        .expect("health is open");
    assert_eq!(status, 1, "SERVING");
    server.stop().await;
}

#[tokio::test]
async fn a_request_over_the_size_limit_names_the_limit() {
    let args = ServerSecurityArgs {
        grpc_max_request_bytes: 4096,
        ..token_args()
    };
    let server = start(&args).await;
    let channel = connect(&server.url("http"), &client_with(None))
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    // Just under the limit passes the guard (the service is simply unknown).
    let small = client
        .check(HealthCheckRequest {
            service: "x".repeat(4000),
        })
        .await
        .unwrap_err();
    assert_eq!(small.code(), Code::NotFound, "{small:?}");
    let big = client
        .check(HealthCheckRequest {
            service: "x".repeat(5000),
        })
        .await
        .unwrap_err();
    assert_eq!(big.code(), Code::ResourceExhausted, "{big:?}");
    assert!(
        big.message().contains("4096 bytes")
            && big.message().contains("PARLEY_GRPC_MAX_REQUEST_BYTES"),
        "{big:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn no_auth_refuses_a_non_loopback_listener() {
    let security = ServerSecurityArgs::default().load().unwrap();
    let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let err = security.check_listen(addr).unwrap_err();
    assert!(err.to_string().contains("PARLEY_INSECURE_LISTEN"), "{err}");
    // Loopback is fine without auth, and so is a public address with a token
    // or after the explicit opt-in.
    security
        .check_listen("127.0.0.1:1".parse().unwrap())
        .unwrap();
    security.check_listen("[::1]:1".parse().unwrap()).unwrap();
    token_args().load().unwrap().check_listen(addr).unwrap();
    let opted_in = ServerSecurityArgs {
        insecure_listen: true,
        ..Default::default()
    };
    opted_in.load().unwrap().check_listen(addr).unwrap();

    // serve() itself refuses, before answering anything.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let result = GrpcServer::new()
        .serve(listener, ShutdownSignal::new(Duration::from_secs(1)))
        .await;
    assert!(matches!(result, Err(ServeError::Security(_))), "{result:?}");
}

#[test]
fn bad_settings_are_refused_with_the_flag_named() {
    let short = ServerSecurityArgs {
        grpc_token: Some("abc".into()),
        ..Default::default()
    };
    assert!(
        short
            .load()
            .unwrap_err()
            .to_string()
            .contains("at least 16")
    );
    let missing = ServerSecurityArgs {
        tls_cert: Some("/nonexistent/cert.pem".into()),
        tls_key: Some("/nonexistent/key.pem".into()),
        ..Default::default()
    };
    let err = missing.load().unwrap_err().to_string();
    assert!(
        err.contains("PARLEY_TLS_CERT") && err.contains("/nonexistent/cert.pem"),
        "{err}"
    );
    let ca_alone = ServerSecurityArgs {
        tls_client_ca: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    };
    assert!(
        ca_alone
            .load()
            .unwrap_err()
            .to_string()
            .contains("mutual TLS")
    );
}

#[test]
fn flags_parse_into_the_args() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        security: ServerSecurityArgs,
    }
    let cli = Cli::try_parse_from([
        "x",
        "--grpc-token",
        TOKEN,
        "--insecure-listen",
        "--grpc-max-request-bytes",
        "2048",
    ])
    .unwrap();
    assert_eq!(cli.security.grpc_token.as_deref(), Some(TOKEN));
    assert!(cli.security.insecure_listen);
    assert_eq!(cli.security.grpc_max_request_bytes, 2048);
}

/// A CA, a server certificate for `localhost`, and a client certificate, as PEM files.
fn pki() -> TestPki {
    TestPki::generate().expect("test certificates")
}

#[tokio::test]
async fn tls_with_a_token_serves_https_clients_that_trust_the_ca() {
    let pki = pki();
    let server = start(&ServerSecurityArgs {
        tls_cert: Some(pki.server_cert()),
        tls_key: Some(pki.server_key()),
        ..token_args()
    })
    .await;
    let client = ClientSecurityArgs {
        token: Some(TOKEN.into()),
        tls_ca: Some(pki.ca()),
        ..Default::default()
    };
    let services = list_services(&server.url("https"), &client).await.unwrap();
    assert!(services.iter().any(|s| s == "grpc.health.v1.Health"));
    // Still no entry without the token, even over TLS.
    let status = list_services(
        &server.url("https"),
        &ClientSecurityArgs {
            token: None,
            ..client.clone()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // A plaintext client cannot talk to a TLS server.
    assert!(
        health(&server.url("http"), &client_with(None))
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = pki();
    let server = start(&ServerSecurityArgs {
        tls_cert: Some(pki.server_cert()),
        tls_key: Some(pki.server_key()),
        tls_client_ca: Some(pki.ca()),
        ..Default::default()
    })
    .await;
    let anonymous = ClientSecurityArgs {
        tls_ca: Some(pki.ca()),
        ..Default::default()
    };
    let refused = health(&server.url("https"), &anonymous).await;
    assert!(
        refused.is_err(),
        "a client without a certificate got in: {refused:?}"
    );
    let with_cert = ClientSecurityArgs {
        client_cert: Some(pki.client_cert()),
        client_key: Some(pki.client_key()),
        ..anonymous
    };
    assert_eq!(health(&server.url("https"), &with_cert).await.unwrap(), 1);
    let services = list_services(&server.url("https"), &with_cert)
        .await
        .unwrap();
    assert!(!services.is_empty());
    server.stop().await;
}
