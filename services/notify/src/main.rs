//! `parley-notify`: see the library for what it does.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: parley_notify::Config = parley_runtime::parse_config();
    parley_telemetry::init(&config.telemetry)?;
    let shutdown = parley_runtime::shutdown_on_signals(std::time::Duration::from_secs(
        config.shutdown_grace_secs,
    ));
    let app = match parley_notify::Application::build(&config, shutdown.clone()).await {
        Ok(app) => app,
        // SIGTERM while waiting for the log: a clean stop, not a failure.
        Err(_) if shutdown.token.is_cancelled() => return Ok(()),
        Err(e) => return Err(e),
    };
    app.run_until_stopped().await
}
