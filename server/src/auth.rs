//! Bearer token to tenant. Idempotency keys, messages and flags are all scoped by the
//! tenant, so one tenant can neither collide with nor replay another's keys.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use crate::app::AppState;
use crate::metrics::Outcome;
use crate::problem::{Kind, Problem};

/// The tenant of an authenticated request. As an extractor it answers 401 when the
/// `Authorization: Bearer <token>` header is missing or the token is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        match token.and_then(|t| state.config.tokens.get(t)) {
            Some(tenant) => Ok(Tenant(tenant.clone())),
            None => {
                state.metrics.outcome(None, Outcome::Unauthorized);
                Err(Problem::new(
                    Kind::Unauthorized,
                    "send Authorization: Bearer <token> with a configured token",
                ))
            }
        }
    }
}
