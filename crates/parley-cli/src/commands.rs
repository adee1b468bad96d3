//! Subcommands of `parley`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use parley_domain::pb::ingest_service_client::IngestServiceClient;
use parley_domain::pb::{SubscribeResponse, UpdateKind, subscribe_request::Start};
use parley_domain::{convert, time};

use crate::out;
use crate::rpc::ServerArgs;

/// Parley: structured events from news about peace talks and ceasefires.
#[derive(Debug, Parser)]
#[command(name = "parley", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How to reach servers that require TLS or a token.
    #[command(flatten)]
    security: parley_runtime::client::ClientSecurityArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ingest, resolver and notify in one process over the embedded log (or --nats).
    Up(Box<crate::up::UpArgs>),
    /// Stored subscriptions: create, list, pause, resume, delete, dead letters, redrive.
    Subscriptions(crate::subscriptions::SubscriptionsArgs),
    /// Check the embedded log (or a JetStream stream), or salvage a damaged one.
    Log(crate::logcmd::LogArgs),
    /// Query known events: list, show one with its versions and sources, export as JSONL or CSV.
    Events(crate::events::EventsArgs),
    /// Extract events and entities from files offline and print them.
    Extract {
        /// Print JSON Lines (the evaluation format); the only format for now.
        #[arg(long, default_value_t = true)]
        jsonl: bool,
        /// Folder of extra knowledge-base TOML files.
        #[arg(long, env = "PARLEY_KB_DIR")]
        kb_dir: Option<PathBuf>,
        /// Text, HTML or RSS/Atom files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Submit files (or folders of files) to a running Parley and print their document ids.
    Ingest(crate::ingest::IngestArgs),
    /// Print events as JSON Lines as subscribers receive them (a filter, or a stored subscription).
    Subscribe(crate::subscribe::SubscribeArgs),
    /// Re-extract stored articles with the current extractor and append only what changed.
    Reprocess {
        /// Where `parley up` or the ingest service is.
        #[command(flatten)]
        server: ServerArgs,
        /// Only articles ingested at or after this RFC 3339 time (or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Report what would change without appending anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Look up and correct canonical entities (people, states, organisations).
    Entities {
        /// Where `parley up` or the resolver service is.
        #[command(flatten)]
        server: ServerArgs,
        #[command(subcommand)]
        action: EntityAction,
    },
}

#[derive(Debug, Subcommand)]
enum EntityAction {
    /// Fuzzy search over names and aliases.
    Search {
        /// Query text.
        query: String,
        /// Maximum results.
        #[arg(long, default_value_t = 10)]
        limit: u32,
    },
    /// Show one entity.
    Show {
        /// Entity id (e.g. per-rustem-umerov).
        entity_id: String,
    },
    /// Fold MERGED into INTO (recorded on the log; survives replay).
    Merge {
        /// Surviving entity.
        into: String,
        /// Entity folded in.
        merged: String,
    },
    /// Move ALIASES of ENTITY to a new entity named NEW_NAME.
    Split {
        /// Entity that was two.
        entity_id: String,
        /// Canonical name of the new entity.
        new_name: String,
        /// Aliases that move to the new entity.
        #[arg(required = true)]
        aliases: Vec<String>,
    },
    /// Add a spelling to an entity.
    Alias {
        /// The entity.
        entity_id: String,
        /// The spelling.
        alias: String,
    },
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        crate::rpc::set_security(self.security);
        match self.command {
            Command::Events(args) => crate::events::run(args).await,
            Command::Log(args) => crate::logcmd::run(args).await,
            Command::Up(args) => crate::up::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Subscriptions(args) => crate::subscriptions::run(args).await,
            Command::Extract {
                jsonl: _,
                kb_dir,
                files,
            } => extract(files, kb_dir),
            Command::Ingest(args) => crate::ingest::run(args).await,
            Command::Subscribe(args) => crate::subscribe::run(args).await,
            Command::Entities { server, action } => entities(&server.server, action).await,
            Command::Reprocess {
                server,
                since,
                dry_run,
            } => reprocess(&server.server, since.as_deref(), dry_run).await,
        }
    }
}

fn extract(files: Vec<PathBuf>, kb_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let kb = parley_kb::KnowledgeBase::load(kb_dir.as_deref())?;
    let (rows, errors) = crate::offline::extract_files(&files, &kb);
    let mut out = std::io::stdout().lock();
    for row in rows {
        use std::io::Write;
        writeln!(out, "{row}")?;
    }
    for error in &errors {
        eprintln!("parley extract: {error}");
    }
    Ok(if errors.is_empty() || errors.len() < files.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Parses an RFC 3339 time or a bare date (midnight UTC).
fn parse_time(text: &str, flag: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").with_context(|| {
        format!("{flag} {text:?}: expected an RFC 3339 time or a date (YYYY-MM-DD)")
    })?;
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

async fn reprocess(server: &str, since: Option<&str>, dry_run: bool) -> anyhow::Result<ExitCode> {
    let since = since.map(|s| parse_time(s, "--since")).transpose()?;
    let mut client = IngestServiceClient::new(crate::rpc::connect(server).await?);
    let response = client
        .reprocess(parley_domain::pb::ReprocessRequest {
            since: since.map(time::to_timestamp),
            dry_run,
        })
        .await
        .map_err(crate::rpc::status)?
        .into_inner();
    for id in &response.changed_document_ids {
        out!("{id}\t{}", if dry_run { "would change" } else { "changed" });
    }
    for error in &response.errors {
        eprintln!("parley reprocess: {}: {}", error.name, error.message);
    }
    eprintln!(
        "parley reprocess: {} examined, {} changed, {} unchanged, {} failed{}",
        response.examined,
        response.changed,
        response.unchanged,
        response.errors.len(),
        if dry_run {
            " (dry run: nothing appended)"
        } else {
            ""
        }
    );
    Ok(if response.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn parse_start(from: &str) -> anyhow::Result<Start> {
    if from.eq_ignore_ascii_case("new") {
        return Ok(Start::LiveOnly(true));
    }
    if let Ok(sequence) = from.parse::<u64>() {
        anyhow::ensure!(sequence >= 1, "--from: log sequences start at 1");
        return Ok(Start::FromSequence(sequence));
    }
    let time = DateTime::parse_from_rfc3339(from).with_context(|| {
        format!("--from {from:?}: expected a sequence number, an RFC 3339 time, or `new`")
    })?;
    Ok(Start::FromTime(time::to_timestamp(
        time.with_timezone(&Utc),
    )))
}

/// JSON line for one delivery: the sequence, key and kind, and the event in the evaluation format's vocabulary.
pub fn delivery_json(delivery: &SubscribeResponse) -> serde_json::Value {
    let event = delivery
        .event
        .as_ref()
        .and_then(convert::event_from_pb)
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .unwrap_or_default();
    let kind = UpdateKind::try_from(delivery.kind)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("UPDATE_KIND_")
        .to_ascii_lowercase();
    serde_json::json!({
        "sequence": delivery.sequence,
        "idempotency_key": delivery.idempotency_key,
        "kind": kind,
        "recorded_at": delivery.recorded_at.as_ref().and_then(time::from_timestamp),
        "event": event,
    })
}

fn entity_json(entity: &parley_domain::pb::Entity) -> serde_json::Value {
    let kind = parley_domain::pb::EntityKind::try_from(entity.kind)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("ENTITY_KIND_")
        .to_ascii_lowercase();
    serde_json::json!({
        "entity_id": entity.entity_id,
        "kind": kind,
        "name": entity.name,
        "code": entity.code,
        "aliases": entity.aliases,
    })
}

async fn entities(server: &str, action: EntityAction) -> anyhow::Result<ExitCode> {
    use parley_domain::pb::resolver_service_client::ResolverServiceClient;
    use parley_domain::pb::{
        AddAliasRequest, GetEntityRequest, MergeEntitiesRequest, SearchEntitiesRequest,
        SplitEntityRequest,
    };
    let mut client = ResolverServiceClient::new(crate::rpc::connect(server).await?);
    let status = crate::rpc::status;
    match action {
        EntityAction::Search { query, limit } => {
            let response = client
                .search_entities(SearchEntitiesRequest {
                    query,
                    kind: 0,
                    limit,
                })
                .await
                .map_err(status)?
                .into_inner();
            for result in response.results {
                let mut row = result.entity.as_ref().map(entity_json).unwrap_or_default();
                row["score"] = serde_json::json!(result.score);
                out!("{row}");
            }
        }
        EntityAction::Show { entity_id } => {
            let entity = client
                .get_entity(GetEntityRequest {
                    entity_id,
                    ..Default::default()
                })
                .await
                .map_err(status)?
                .into_inner()
                .entity
                .unwrap_or_default();
            out!("{}", entity_json(&entity));
        }
        EntityAction::Merge { into, merged } => {
            let entity = client
                .merge_entities(MergeEntitiesRequest {
                    into_entity_id: into,
                    merged_entity_id: merged,
                    reason: "parley entities merge".into(),
                })
                .await
                .map_err(status)?
                .into_inner()
                .entity
                .unwrap_or_default();
            out!("{}", entity_json(&entity));
        }
        EntityAction::Split {
            entity_id,
            new_name,
            aliases,
        } => {
            let response = client
                .split_entity(SplitEntityRequest {
                    entity_id,
                    new_name,
                    aliases,
                    reason: "parley entities split".into(),
                })
                .await
                .map_err(status)?
                .into_inner();
            for entity in response.original.iter().chain(response.created.iter()) {
                out!("{}", entity_json(entity));
            }
        }
        EntityAction::Alias { entity_id, alias } => {
            let entity = client
                .add_alias(AddAliasRequest { entity_id, alias })
                .await
                .map_err(status)?
                .into_inner()
                .entity
                .unwrap_or_default();
            out!("{}", entity_json(&entity));
        }
    }
    Ok(ExitCode::SUCCESS)
}
