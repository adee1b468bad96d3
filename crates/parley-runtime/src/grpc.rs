//! A tonic server with `grpc.health.v1` and reflection, stopped by a token.
//!
//! Open server streams would block tonic's graceful shutdown forever, so
//! streaming handlers must end their streams when the same token fires, and
//! the drain is bounded by the shutdown grace period anyway.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::ShutdownSignal;
use crate::security::{SecurityError, ServerSecurity};

/// Why [`GrpcServer::serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The security settings refuse this listener (e.g. no auth on a public address).
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The listener's address could not be read.
    #[error("cannot read the listener address: {0}")]
    Io(#[from] std::io::Error),
    /// tonic failed to serve (TLS configuration, transport).
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Health reporting handle: flip services between SERVING and NOT_SERVING.
///
/// A service marked [failed](ServingState::fail) stays NOT_SERVING (and so
/// does the overall "" service) while the others keep serving: one process
/// running several services (`parley up`) reports the broken part honestly.
#[derive(Clone)]
pub struct ServingState {
    reporter: HealthReporter,
    names: Vec<&'static str>,
    failed: Arc<Mutex<Vec<&'static str>>>,
}

impl ServingState {
    /// Marks every service of this server (and the overall "" service) as
    /// serving or not; failed services stay NOT_SERVING.
    pub async fn set(&self, serving: bool) {
        let failed = self.failed.lock().expect("health lock poisoned").clone();
        let status = |serving: bool| {
            if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        self.reporter
            .set_service_status("", status(serving && failed.is_empty()))
            .await;
        for name in &self.names {
            let up = serving && !failed.contains(name);
            self.reporter.set_service_status(*name, status(up)).await;
        }
    }

    /// Marks one service (its gRPC name, e.g. `parley.v1.ResolverService`)
    /// as failed for good: NOT_SERVING, like the overall "" service; the
    /// other services keep their status.
    pub async fn fail(&self, name: &'static str) {
        self.failed.lock().expect("health lock poisoned").push(name);
        self.reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
        self.reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
    }
}

/// A gRPC server under construction: add services, then [`GrpcServer::serve`].
pub struct GrpcServer {
    routes: Routes,
    names: Vec<&'static str>,
    health: HealthReporter,
    failed: Arc<Mutex<Vec<&'static str>>>,
    security: ServerSecurity,
}

/// Which process serves each Parley API, for the message a caller gets when
/// it reaches a process that does not (`parley up` serves them all).
const HOMES: &[(&str, &str)] = &[
    (
        "parley.v1.IngestService",
        "the ingest service (parley-ingest, default 127.0.0.1:50051)",
    ),
    (
        "parley.v1.ResolverService",
        "the resolver service (parley-resolver, default 127.0.0.1:50052)",
    ),
    (
        "parley.v1.NotifyService",
        "the notify service (parley-notify, default 127.0.0.1:50053)",
    ),
    (
        "parley.v1.EventHistoryService",
        "the notify service (parley-notify, default 127.0.0.1:50053)",
    ),
];

/// The UNIMPLEMENTED message for a call to `path` on a server that serves
/// `served`: which API was asked for, what this process serves, and where
/// the API asked for is served.
pub fn not_served_message(path: &str, served: &[&str]) -> String {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    let here = if served.is_empty() {
        "nothing but health and reflection".to_owned()
    } else {
        served.join(", ")
    };
    if served.contains(&service) {
        return format!("{service} has no method {method:?}; this server serves {here}");
    }
    match HOMES.iter().find(|(name, _)| *name == service) {
        Some((_, home)) => format!(
            "{service} is not served here (this server serves {here}); call {home}, or `parley up`, which serves every API"
        ),
        None => format!("unknown service {service:?}: this server serves {here}"),
    }
}

impl Default for GrpcServer {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcServer {
    /// A server with health and reflection; every added service starts NOT_SERVING.
    pub fn new() -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        Self {
            routes: Routes::new(health_service),
            names: Vec::new(),
            health,
            failed: Arc::default(),
            security: ServerSecurity::default(),
        }
    }

    /// The finished routes: the added services, health, reflection that
    /// advertises only what this server serves, and a fallback that tells a
    /// caller of any other service where that service is served.
    fn into_routes(self) -> Routes {
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(parley_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health")
                .with_service_name("grpc.reflection.v1.ServerReflection")
                .with_service_name("grpc.reflection.v1alpha.ServerReflection");
            for name in &self.names {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        let v1 = reflection()
            .build_v1()
            .expect("the bundled descriptor sets are valid");
        let v1alpha = reflection()
            .build_v1alpha()
            .expect("the bundled descriptor sets are valid");
        let served = self.names.clone();
        let router = self
            .routes
            .add_service(v1)
            .add_service(v1alpha)
            .into_axum_router()
            .fallback(move |uri: http::Uri| {
                let message = not_served_message(uri.path(), &served);
                async move {
                    let (parts, ()) = tonic::Status::unimplemented(message)
                        .into_http::<()>()
                        .into_parts();
                    http::Response::from_parts(parts, tonic::body::Body::empty())
                }
            });
        Routes::from(router)
    }

    /// Adds a tonic service.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }

    /// Applies TLS, authentication and the request size limit. Without this
    /// call the server uses [`ServerSecurity::default`]: no auth, loopback only.
    pub fn with_security(mut self, security: ServerSecurity) -> Self {
        self.security = security;
        self
    }

    /// Handle to flip health status.
    pub fn serving_state(&self) -> ServingState {
        ServingState {
            reporter: self.health.clone(),
            names: self.names.clone(),
            failed: self.failed.clone(),
        }
    }

    /// Serves on an already bound listener until the shutdown token fires,
    /// then drains for at most the grace period.
    ///
    /// Refuses (before serving anything) a non-loopback listener when no
    /// authentication is configured, unless insecure listening was opted into.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: ShutdownSignal,
    ) -> Result<(), ServeError> {
        self.security.check_listen(listener.local_addr()?)?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = self.security.tls() {
            builder = builder.tls_config(tls.clone())?;
        }
        let state = self.serving_state();
        state.set(true).await;
        let token = shutdown.token.clone();
        let guard = self.security.layer();
        // Outermost, so that refused calls are counted and traced too.
        let server = builder
            .layer(crate::observe::ObserveLayer)
            .layer(guard)
            .add_routes(self.into_routes())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                token.cancelled().await;
                state.set(false).await;
            });
        tokio::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            _ = async {
                shutdown.token.cancelled().await;
                tokio::time::sleep(shutdown.grace).await;
            } => {
                tracing::warn!("gRPC drain exceeded the grace period; closing open streams");
                Ok(())
            }
        };
        Ok(result?)
    }
}

/// Binds a TCP listener, naming the address and flag on failure.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} (PARLEY_GRPC_ADDR): {e}"),
        )
    })
}

/// A stand-in server answering only `grpc.health.v1` with NOT_SERVING, for
/// the time a service waits for its dependencies: probes get a clear answer
/// on the service's own port instead of a refused connection.
pub struct NotServingYet {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl NotServingYet {
    /// Starts answering on a clone of `listener` (the real server takes the
    /// original over once [`NotServingYet::stop`] returns).
    pub async fn start(listener: &TcpListener) -> std::io::Result<Self> {
        let std_listener = {
            let fd = socket2::SockRef::from(listener);
            fd.try_clone()?
        };
        let std_listener: std::net::TcpListener = std_listener.into();
        std_listener.set_nonblocking(true)?;
        let clone = TcpListener::from_std(std_listener)?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(health_service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(clone), token.cancelled())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "NOT_SERVING stand-in server failed");
            }
        });
        Ok(Self { stop, task })
    }

    /// Stops answering (open connections are closed; clients reconnect to the real server).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}
