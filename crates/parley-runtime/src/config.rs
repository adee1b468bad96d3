//! Parsing a service's configuration so that a bad value names its variable.
//!
//! Services are configured through environment variables in containers, but
//! clap's errors name the flag (`--grpc-addr <GRPC_ADDR>`), which an operator
//! who set `PARLEY_GRPC_ADDR` in a manifest has to translate. This adds the
//! variable's name to the error before exiting.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

/// Parses the process arguments and environment into `C`, or exits with
/// clap's message extended by the environment variable of the offending flag.
pub fn parse_config<C: CommandFactory + FromArgMatches>() -> C {
    let mut command = C::command();
    let result = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| C::from_arg_matches_mut(&mut matches));
    match result {
        Ok(config) => config,
        Err(error) => {
            let error = error.format(&mut command);
            // Only for a bad value, and only when it really came from the
            // environment (an unknown flag is not the variable's fault).
            if is_bad_value(error.kind())
                && let Some(variable) = offending_variable(&command, &error)
                && std::env::var_os(&variable).is_some()
            {
                let message = error.render().to_string();
                eprintln!(
                    "{}\n(set through the environment variable {variable})",
                    message.trim_end()
                );
                std::process::exit(2);
            }
            error.exit()
        }
    }
}

/// Whether clap refused a value (rather than a flag, a missing argument, ...).
fn is_bad_value(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8
    )
}

/// The environment variable of the argument a clap error is about, if it has one.
fn offending_variable(command: &clap::Command, error: &clap::Error) -> Option<String> {
    let ContextValue::String(invalid) = error.get(ContextKind::InvalidArg)? else {
        return None;
    };
    // `invalid` reads like "--grpc-addr <GRPC_ADDR>": match on the long flag.
    let long = invalid.split_whitespace().next()?.trim_start_matches("--");
    variable_of(command, long)
}

/// The environment variable of flag `--long` in `command` or, for tools like
/// `parley up`, in one of its subcommands.
fn variable_of(command: &clap::Command, long: &str) -> Option<String> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| variable_of(sub, long))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Example {
        #[arg(long, env = "PARLEY_TEST_ADDR")]
        addr: std::net::SocketAddr,
    }

    #[test]
    fn a_bad_value_is_traced_back_to_its_variable() {
        let mut command = Example::command();
        let error = command
            .try_get_matches_from_mut(["example", "--addr", "nonsense"])
            .and_then(|mut m| Example::from_arg_matches_mut(&mut m))
            .unwrap_err()
            .format(&mut command);
        assert_eq!(
            offending_variable(&command, &error).as_deref(),
            Some("PARLEY_TEST_ADDR")
        );
    }

    #[derive(Debug, clap::Parser)]
    enum Tool {
        /// A subcommand with its own settings, like `parley up`.
        Up {
            #[arg(long, env = "PARLEY_TEST_RATE")]
            rate: u32,
        },
    }

    #[test]
    fn a_bad_value_of_a_subcommand_is_traced_back_to_its_variable() {
        let mut command = Tool::command();
        let error = command
            .try_get_matches_from_mut(["tool", "up", "--rate", "fast"])
            .and_then(|mut m| Tool::from_arg_matches_mut(&mut m))
            .unwrap_err()
            .format(&mut command);
        assert_eq!(
            offending_variable(&command, &error).as_deref(),
            Some("PARLEY_TEST_RATE")
        );
    }
}
