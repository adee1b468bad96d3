//! Reaching a Parley server from the CLI: the `--server` flag, the
//! connection with this invocation's TLS and token settings, and a refused
//! call turned into a message a person can act on.

use parley_runtime::client::{AuthChannel, ClientSecurityArgs};

/// Where the server is: declared once, flattened into every subcommand that
/// calls one, and accepted after the subcommand's own subcommands too
/// (`parley entities search X --server URL`).
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// gRPC URL of `parley up` or of the service that serves this command
    /// (`http://` is assumed when the scheme is left out).
    #[arg(
        long,
        global = true,
        env = "PARLEY_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
}

/// Client security settings of this invocation, for every connection it opens.
static CLIENT_SECURITY: std::sync::OnceLock<ClientSecurityArgs> = std::sync::OnceLock::new();

/// Keeps this invocation's TLS and token flags for [`connect`].
pub fn set_security(security: ClientSecurityArgs) {
    let _ = CLIENT_SECURITY.set(security);
}

/// Connects to a Parley server with this invocation's TLS and token settings.
pub async fn connect(server: &str) -> anyhow::Result<AuthChannel> {
    let security = CLIENT_SECURITY.get_or_init(Default::default);
    // The runtime's error already names the URL and each cause once.
    Ok(parley_runtime::client::connect(server, security).await?)
}

/// A refused call as an error: the server's message, or what the status code
/// means when the server said nothing.
pub fn status(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", describe(&status))
}

/// The text of a refused call: the server's message, or the code and its
/// meaning when the message is empty (a server that is not Parley).
pub fn describe(status: &tonic::Status) -> String {
    if status.message().is_empty() {
        format!(
            "the server answered {:?} without a message ({})",
            status.code(),
            status.code().description()
        )
    } else {
        status.message().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_without_a_message_still_says_something() {
        assert_eq!(
            describe(&tonic::Status::unimplemented("")),
            "the server answered Unimplemented without a message (Operation is not implemented or not supported)"
        );
        assert_eq!(
            describe(&tonic::Status::invalid_argument("bad filter")),
            "bad filter"
        );
    }
}
