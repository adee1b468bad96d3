//! NATS credentials from `LogArgs`, against a real nats-server that requires them.

use std::time::Duration;

use parley_runtime::LogArgs;
use parley_testkit::NatsServer;

const USER: &str = "parley";
const PASSWORD: &str = "correct-horse-battery";

fn args(url: String) -> LogArgs {
    LogArgs {
        nats_url: url,
        ..Default::default()
    }
}

async fn try_connect(args: &LogArgs) -> Result<async_nats::Client, String> {
    let options = args.connect_options().await.map_err(|e| e.to_string())?;
    let connect = options.connect(args.nats_url.as_str());
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

#[tokio::test]
async fn a_server_with_a_password_refuses_clients_without_it() {
    let server = NatsServer::start_with_args(&["--user", USER, "--pass", PASSWORD]).unwrap();

    let anonymous = try_connect(&args(server.url())).await;
    assert!(anonymous.is_err(), "connected without credentials");

    let wrong = LogArgs {
        nats_user: Some(USER.into()),
        nats_password: Some("wrong-password".into()),
        ..args(server.url())
    };
    assert!(
        try_connect(&wrong).await.is_err(),
        "connected with a wrong password"
    );

    let right = LogArgs {
        nats_user: Some(USER.into()),
        nats_password: Some(PASSWORD.into()),
        ..args(server.url())
    };
    let client = try_connect(&right)
        .await
        .expect("the right password connects");
    // Prove the session works, not just the handshake.
    client.flush().await.unwrap();
    assert_eq!(
        client.connection_state(),
        async_nats::connection::State::Connected
    );
}

#[tokio::test]
async fn the_jetstream_log_connects_with_a_password_and_only_with_it() {
    let server = NatsServer::start_with_args(&["--user", USER, "--pass", PASSWORD]).unwrap();
    let right = LogArgs {
        nats_user: Some(USER.into()),
        nats_password: Some(PASSWORD.into()),
        ..args(server.url())
    };
    let log = right
        .connect(Duration::from_secs(10))
        .await
        .expect("the log connects with the password");
    drop(log);
    let anonymous = args(server.url()).connect(Duration::from_secs(2)).await;
    assert!(anonymous.is_err(), "the log connected without credentials");
}

#[tokio::test]
async fn an_open_server_accepts_clients_without_credentials() {
    // The control for the test above: the refusal comes from the password.
    let server = NatsServer::start().unwrap();
    let client = try_connect(&args(server.url())).await.unwrap();
    client.flush().await.unwrap();
}

#[test]
fn missing_files_and_mixed_methods_are_refused_by_name() {
    let missing = LogArgs {
        nats_creds: Some("/nonexistent/parley.creds".into()),
        ..Default::default()
    };
    let err = missing.validate().unwrap_err().to_string();
    assert!(
        err.contains("PARLEY_NATS_CREDS") && err.contains("/nonexistent/parley.creds"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.nk");
    std::fs::write(
        &seed,
        "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4\n",
    )
    .unwrap();
    let mixed = LogArgs {
        nats_user: Some(USER.into()),
        nats_password: Some(PASSWORD.into()),
        nats_nkey_seed_file: Some(seed),
        ..Default::default()
    };
    let err = mixed.validate().unwrap_err().to_string();
    assert!(err.contains("one NATS authentication method"), "{err}");

    let half_tls = LogArgs {
        nats_tls_cert: Some(dir.path().join("c.pem")),
        ..Default::default()
    };
    assert!(
        half_tls
            .validate()
            .unwrap_err()
            .to_string()
            .contains("PARLEY_NATS_TLS_KEY")
    );
}

#[test]
fn flags_parse() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }
    let cli = Cli::try_parse_from([
        "x",
        "--nats-user",
        USER,
        "--nats-password",
        PASSWORD,
        "--nats-require-tls",
    ])
    .unwrap();
    assert_eq!(cli.log.nats_user.as_deref(), Some(USER));
    assert!(cli.log.nats_require_tls);
    assert_eq!(cli.log.auth_mode(), "user/password");
    // A user without a password is a usage error, not a silent anonymous login.
    assert!(Cli::try_parse_from(["x", "--nats-user", USER]).is_err());
}
