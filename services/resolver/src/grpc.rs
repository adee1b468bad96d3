//! `parley.v1.ResolverService` over gRPC.

use std::sync::Arc;

use chrono::NaiveDate;
use parley_domain::pb;
use parley_domain::pb::resolver_service_server::{ResolverService, ResolverServiceServer};
use parley_resolve::{Entity, MentionKind, ResolveError};
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
        self.state
            .with(|r| r.get_entity(id).map(entity_to_pb))
            .ok_or_else(|| Status::not_found(format!("no entity {id:?}")))
    }
}

fn entity_to_pb(entity: &Entity) -> pb::Entity {
    pb::Entity {
        entity_id: entity.entity_id.clone(),
        kind: kind_to_pb(entity.kind) as i32,
        name: entity.name.clone(),
        aliases: entity.aliases.iter().cloned().collect(),
        code: entity.code.clone().unwrap_or_default(),
        roles: Vec::new(),
        merged_ids: Vec::new(),
    }
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

fn log_failed(error: parley_log::LogError) -> Status {
    Status::unavailable(format!("could not record the decision: {error}"))
}

#[tonic::async_trait]
impl ResolverService for ResolverGrpc {
    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let request = request.into_inner();
        check_text("mention", &request.mention)?;
        let date = if request.date.is_empty() {
            None
        } else {
            Some(
                NaiveDate::parse_from_str(&request.date, "%Y-%m-%d").map_err(|e| {
                    Status::invalid_argument(format!(
                        "date {:?} is not YYYY-MM-DD: {e}",
                        request.date
                    ))
                })?,
            )
        };
        let limit = if request.limit == 0 {
            5
        } else {
            request.limit.min(50)
        } as usize;
        let context = (!request.context.is_empty()).then_some(request.context.as_str());
        let kind = if parley_kb::canonical_role(&request.mention).is_some() {
            MentionKind::Role
        } else {
            MentionKind::Person
        };
        let candidates = self.state.with(|r| {
            r.resolve_mention(&request.mention, context, date, kind)
                .into_iter()
                .take(limit)
                .filter_map(|c| {
                    r.get_entity(&c.entity_id).map(|e| pb::Candidate {
                        entity: Some(entity_to_pb(e)),
                        score: c.score,
                        reason: c.reason.clone(),
                    })
                })
                .collect()
        });
        Ok(Response::new(pb::ResolveResponse { candidates }))
    }

    async fn get_entity(
        &self,
        request: Request<pb::GetEntityRequest>,
    ) -> Result<Response<pb::GetEntityResponse>, Status> {
        let entity = self.entity(&request.into_inner().entity_id)?;
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
                    entity: Some(entity_to_pb(e)),
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
        let summary = self.state.summary();
        Ok(Response::new(pb::DescribeStateResponse {
            applied_sequence: 0,
            entity_count: summary.entities,
            event_count: summary.events,
            document_count: summary.documents,
            digest: summary.digest,
        }))
    }
}
