//! `parley.v1.ResolverService` over gRPC.

use std::sync::Arc;

use chrono::NaiveDate;
use parley_domain::pb;
use parley_domain::pb::resolver_service_server::{ResolverService, ResolverServiceServer};
use parley_resolve::{Candidate, Entity, MentionKind, ResolveError, Resolver, check_mention};
use tonic::{Request, Response, Status};

use crate::decisions::kind_to_pb;
use crate::state::ResolverState;

/// Longest mention or query accepted.
const MAX_QUERY_CHARS: usize = 1_000;

/// The gRPC face of the resolver.
#[derive(Clone)]
pub struct ResolverGrpc {
    state: Arc<ResolverState>,
}

impl ResolverGrpc {
    /// Serves `state`.
    pub fn new(state: Arc<ResolverState>) -> Self {
        Self { state }
    }

    /// Wraps it in the tonic server type.
    pub fn into_server(self) -> ResolverServiceServer<Self> {
        ResolverServiceServer::new(self).max_decoding_message_size(256 * 1024)
    }

    fn entity(&self, id: &str) -> Result<pb::Entity, Status> {
        self.entity_on(id, None)
    }

    fn entity_on(&self, id: &str, day: Option<NaiveDate>) -> Result<pb::Entity, Status> {
        self.state
            .with(|r| r.get_entity(id).map(|e| entity_to_pb(r, e, day)))
            .ok_or_else(|| Status::not_found(format!("no entity {id:?}")))
    }
}

/// The protobuf entity: the resolver's view plus, for knowledge-base people,
/// their roles with validity dates (`current` on `day`, default today).
fn entity_to_pb(r: &Resolver, entity: &Entity, day: Option<NaiveDate>) -> pb::Entity {
    let day = day.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let kb_roles = r
        .kb()
        .person(&entity.entity_id)
        .map(|p| p.roles.as_slice())
        .unwrap_or_default();
    let date = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let roles = kb_roles
        .iter()
        .map(|role| {
            format!(
                "{} of {} {}..{}",
                role.title,
                role.of,
                date(role.from),
                date(role.to)
            )
        })
        .collect();
    let role_spans = kb_roles
        .iter()
        .map(|role| pb::RoleSpan {
            title: role.title.clone(),
            of: role.of.clone(),
            valid_from: date(role.from),
            valid_to: date(role.to),
            current: role.valid_on(day),
        })
        .collect();
    let merged_ids = r
        .folded_into(&entity.entity_id)
        .map(|e| e.entity_id.clone())
        .collect();
    pb::Entity {
        entity_id: entity.entity_id.clone(),
        kind: kind_to_pb(entity.kind) as i32,
        name: entity.name.clone(),
        aliases: entity.aliases.iter().cloned().collect(),
        code: entity.code.clone().unwrap_or_default(),
        roles,
        merged_ids,
        role_spans,
        country: entity.country.clone().unwrap_or_default(),
        origin: entity.origin.clone(),
    }
}

/// Parses an optional `YYYY-MM-DD` field.
fn parse_day(field: &str, text: &str) -> Result<Option<NaiveDate>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("{field} {text:?} is not YYYY-MM-DD: {e}")))
}

/// A human-readable reason for a candidate: the rule that proposed it.
fn explain(c: &Candidate) -> String {
    let why = match c.reason.as_str() {
        "exact" => "exact alias",
        "glued" => "alias after splitting a glued word",
        "surname" => "family name of one knowledge-base person only",
        "initial" => "initial and family name",
        "fuzzy" => "close spelling of given and family name",
        "role" => "holder of the role on the date",
        other => other,
    };
    format!("{} ({why}, score {:.2})", c.reason, c.score)
}

fn check_text(field: &str, text: &str) -> Result<(), Status> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(Status::invalid_argument(format!(
            "{field} is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(())
}

fn refused(error: ResolveError) -> Status {
    match error {
        ResolveError::UnknownEntity(_) => Status::not_found(error.to_string()),
        _ => Status::invalid_argument(error.to_string()),
    }
}

fn log_failed(error: crate::state::StateError) -> Status {
    Status::unavailable(format!("could not record the decision: {error}"))
}

#[tonic::async_trait]
impl ResolverService for ResolverGrpc {
    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let request = request.into_inner();
        let date = parse_day("date", &request.date)?;
        // A mention that cannot be a name is a clear "no match", not an error.
        if let Err(bad) = check_mention(&request.mention) {
            return Ok(Response::new(pb::ResolveResponse {
                candidates: Vec::new(),
                no_match_reason: bad.to_string(),
            }));
        }
        let limit = if request.limit == 0 {
            5
        } else {
            request.limit.min(50)
        } as usize;
        // The context may be a side's code ("UKR", for roles) or text.
        let context = request.context.trim();
        let side = (!context.is_empty() && context.len() <= 16).then_some(context);
        let wanted = pb::EntityKind::try_from(request.kind).unwrap_or_default();
        let candidates: Vec<pb::Candidate> = self.state.with(|r| {
            // A role ("the Defense Minister") goes to its holder on the date;
            // anything else, or a role nobody held, is read as a name.
            let mut found = Vec::new();
            if parley_kb::canonical_role(&request.mention).is_some() {
                found = r.resolve_mention(&request.mention, side, date, MentionKind::Role);
            }
            if found.is_empty() {
                found = r.resolve_mention(&request.mention, side, date, MentionKind::Person);
            }
            found
                .into_iter()
                .filter_map(|c| {
                    let e = r.get_entity(&c.entity_id)?;
                    let keep =
                        wanted == pb::EntityKind::Unspecified || kind_to_pb(e.kind) == wanted;
                    keep.then(|| pb::Candidate {
                        entity: Some(entity_to_pb(r, e, date)),
                        score: c.score,
                        reason: explain(&c),
                    })
                })
                .take(limit)
                .collect()
        });
        let no_match_reason = if candidates.is_empty() {
            "no entity close enough".to_owned()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ResolveResponse {
            candidates,
            no_match_reason,
        }))
    }

    async fn get_entity(
        &self,
        request: Request<pb::GetEntityRequest>,
    ) -> Result<Response<pb::GetEntityResponse>, Status> {
        let request = request.into_inner();
        let day = parse_day("date", &request.date)?;
        let entity = self.entity_on(&request.entity_id, day)?;
        Ok(Response::new(pb::GetEntityResponse {
            entity: Some(entity),
        }))
    }

    async fn search_entities(
        &self,
        request: Request<pb::SearchEntitiesRequest>,
    ) -> Result<Response<pb::SearchEntitiesResponse>, Status> {
        let request = request.into_inner();
        check_text("query", &request.query)?;
        let limit = if request.limit == 0 {
            10
        } else {
            request.limit.min(100)
        } as usize;
        let wanted = pb::EntityKind::try_from(request.kind).unwrap_or_default();
        let results = self.state.with(|r| {
            r.search(&request.query, limit * 4)
                .into_iter()
                .filter(|(e, _)| {
                    wanted == pb::EntityKind::Unspecified || kind_to_pb(e.kind) == wanted
                })
                .take(limit)
                .map(|(e, score)| pb::Candidate {
                    entity: Some(entity_to_pb(r, e, None)),
                    score,
                    reason: "fuzzy name match".into(),
                })
                .collect()
        });
        Ok(Response::new(pb::SearchEntitiesResponse { results }))
    }

    async fn merge_entities(
        &self,
        request: Request<pb::MergeEntitiesRequest>,
    ) -> Result<Response<pb::MergeEntitiesResponse>, Status> {
        let request = request.into_inner();
        let decisions = self
            .state
            .with(|r| r.decide_merge(&request.into_entity_id, &request.merged_entity_id, "human"))
            .map_err(refused)?;
        self.state
            .commit_human(decisions)
            .await
            .map_err(log_failed)?;
        Ok(Response::new(pb::MergeEntitiesResponse {
            entity: Some(self.entity(&request.into_entity_id)?),
        }))
    }

    async fn split_entity(
        &self,
        request: Request<pb::SplitEntityRequest>,
    ) -> Result<Response<pb::SplitEntityResponse>, Status> {
        let request = request.into_inner();
        let decisions = self
            .state
            .with(|r| {
                r.decide_split(
                    &request.entity_id,
                    &request.new_name,
                    &request.aliases,
                    "human",
                )
            })
            .map_err(refused)?;
        let new_id = decisions.iter().find_map(|d| match d {
            parley_resolve::Decision::SplitEntity { new_entity_id, .. } => {
                Some(new_entity_id.clone())
            }
            _ => None,
        });
        self.state
            .commit_human(decisions)
            .await
            .map_err(log_failed)?;
        Ok(Response::new(pb::SplitEntityResponse {
            original: Some(self.entity(&request.entity_id)?),
            created: new_id.map(|id| self.entity(&id)).transpose()?,
        }))
    }

    async fn add_alias(
        &self,
        request: Request<pb::AddAliasRequest>,
    ) -> Result<Response<pb::AddAliasResponse>, Status> {
        let request = request.into_inner();
        check_text("alias", &request.alias)?;
        let decisions = self
            .state
            .with(|r| r.decide_alias(&request.entity_id, &request.alias, "human"))
            .map_err(refused)?;
        self.state
            .commit_human(decisions)
            .await
            .map_err(log_failed)?;
        Ok(Response::new(pb::AddAliasResponse {
            entity: Some(self.entity(&request.entity_id)?),
        }))
    }

    async fn describe_state(
        &self,
        _request: Request<pb::DescribeStateRequest>,
    ) -> Result<Response<pb::DescribeStateResponse>, Status> {
        // Fold whatever the log holds now, so the answer is never older than the request.
        self.state
            .catch_up()
            .await
            .map_err(|e| Status::unavailable(format!("cannot read the log: {e}")))?;
        let summary = self
            .state
            .summary()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::DescribeStateResponse {
            applied_sequence: self.state.applied_sequence(),
            entity_count: summary.entities,
            event_count: summary.events,
            document_count: summary.documents,
            digest: summary.digest,
        }))
    }
}

#[cfg(test)]
mod tests {
    //! The service over a real socket (127.0.0.1, port chosen by the OS).

    use super::*;
    use parley_domain::pb::resolver_service_client::ResolverServiceClient;
    use tonic::transport::Channel;

    /// Starts the service on a fresh log; returns a client and the log's
    /// directory (removed by the caller).
    async fn serve() -> (ResolverServiceClient<Channel>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "parley-resolver-grpc-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let log = Arc::new(parley_log::sqlite::SqliteLog::open(&dir).unwrap());
        let kb = parley_kb::KnowledgeBase::bundled().unwrap();
        let state = Arc::new(ResolverState::new(log, &kb));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ResolverGrpc::new(state).into_server())
                .serve_with_incoming(incoming),
        );
        let client = ResolverServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        (client, dir)
    }

    fn resolve(mention: &str, context: &str, date: &str) -> pb::ResolveRequest {
        pb::ResolveRequest {
            mention: mention.into(),
            context: context.into(),
            date: date.into(),
            kind: 0,
            limit: 0,
        }
    }

    #[tokio::test]
    async fn resolve_ranks_candidates_with_scores_and_reasons() {
        let (mut client, dir) = serve().await;
        let exact = client
            .resolve(resolve("Zelenskyy", "", ""))
            .await
            .unwrap()
            .into_inner();
        let best = &exact.candidates[0];
        assert_eq!(best.entity.as_ref().unwrap().name, "Volodymyr Zelensky");
        assert_eq!(best.score, 1.0);
        assert!(best.reason.starts_with("exact"), "{}", best.reason);
        assert!(exact.no_match_reason.is_empty());

        let fuzzy = client
            .resolve(resolve("Keith Kellog", "", ""))
            .await
            .unwrap()
            .into_inner();
        let best = &fuzzy.candidates[0];
        assert_eq!(best.entity.as_ref().unwrap().name, "Keith Kellogg");
        assert!(best.score < 1.0 && best.score >= 0.88, "{}", best.score);
        assert!(best.reason.contains("fuzzy"), "{}", best.reason);
        // Ranked: scores never increase.
        assert!(
            fuzzy
                .candidates
                .windows(2)
                .all(|w| w[0].score >= w[1].score)
        );

        // A role goes to its holder on the date.
        let march = client
            .resolve(resolve("the Defense Minister", "UKR", "2025-03-15"))
            .await
            .unwrap()
            .into_inner();
        let august = client
            .resolve(resolve("the Defense Minister", "UKR", "2025-08-15"))
            .await
            .unwrap()
            .into_inner();
        let name = |r: &pb::ResolveResponse| r.candidates[0].entity.as_ref().unwrap().name.clone();
        assert_eq!(name(&march), "Rustem Umerov");
        assert_eq!(name(&august), "Denys Shmyhal");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn bad_mentions_are_a_clear_no_match() {
        let (mut client, dir) = serve().await;
        let long = "Zelensky ".repeat(5_000);
        for (mention, reason) in [
            ("", "empty"),
            ("   ", "empty"),
            ("!!! ... ???", "no letters"),
            ("\u{E000}\u{E001}", "no letters"),
            ("\u{1F600}\u{1F600}", ""),
            (long.as_str(), "too long"),
            ("Qwzx Vbnmkj", "no entity close enough"),
            ("習近平", ""),
        ] {
            let response = client
                .resolve(resolve(mention, "", ""))
                .await
                .unwrap_or_else(|e| panic!("{mention:.20?}: {e}"))
                .into_inner();
            assert!(response.candidates.is_empty(), "{mention:.20?}");
            assert!(!response.no_match_reason.is_empty(), "{mention:.20?}");
            assert!(
                response.no_match_reason.contains(reason),
                "{mention:.20?}: {}",
                response.no_match_reason
            );
        }
        // A malformed date is the caller's error, said as such.
        let err = client
            .resolve(resolve("Zelensky", "", "March 2025"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn get_entity_returns_roles_with_validity_dates() {
        let (mut client, dir) = serve().await;
        let get = |date: &str| pb::GetEntityRequest {
            entity_id: "per-rustem-umerov".into(),
            date: date.into(),
        };
        let entity = client
            .get_entity(get("2025-03-15"))
            .await
            .unwrap()
            .into_inner()
            .entity
            .unwrap();
        assert_eq!(entity.origin, "kb");
        assert_eq!(entity.country, "UKR");
        let defence = entity
            .role_spans
            .iter()
            .find(|r| r.title == "defence_minister")
            .expect("defence minister role");
        assert_eq!(defence.of, "UKR");
        assert_eq!(defence.valid_from, "2023-09-06");
        assert_eq!(defence.valid_to, "2025-07-17");
        assert!(defence.current);
        let nsdc = entity
            .role_spans
            .iter()
            .find(|r| r.title == "nsdc_secretary")
            .expect("NSDC role");
        assert!(!nsdc.current);
        assert!(nsdc.valid_to.is_empty());
        assert_eq!(entity.roles.len(), entity.role_spans.len());

        let later = client
            .get_entity(get("2025-08-15"))
            .await
            .unwrap()
            .into_inner()
            .entity
            .unwrap();
        let current: Vec<&str> = later
            .role_spans
            .iter()
            .filter(|r| r.current)
            .map(|r| r.title.as_str())
            .collect();
        assert!(current.contains(&"nsdc_secretary"), "{current:?}");
        assert!(!current.contains(&"defence_minister"), "{current:?}");

        let missing = client
            .get_entity(pb::GetEntityRequest {
                entity_id: "per-nobody".into(),
                date: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        std::fs::remove_dir_all(dir).ok();
    }
}
