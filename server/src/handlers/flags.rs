//! `GET`/`PUT /v1/flags`: the tenant's retry flags (see [`crate::flags`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;

use crate::app::AppState;
use crate::auth::Tenant;
use crate::flags::Flags;
use crate::problem::{Kind, Problem};

/// `GET /v1/flags`: the tenant's flags, or the defaults if never set.
pub async fn get(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Flags>, Problem> {
    let flags = st
        .store
        .flags(&tenant)
        .await
        .map_err(|e| Problem::new(Kind::StoreUnavailable, e.to_string()))?;
    Ok(Json(flags.unwrap_or_default()))
}

/// `PUT /v1/flags`: replaces the tenant's flags with a complete, valid document.
pub async fn put(
    State(st): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
) -> Result<Json<Flags>, Problem> {
    let flags: Flags = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(Kind::InvalidFlags, e.to_string()))?;
    flags
        .validate()
        .map_err(|e| Problem::new(Kind::InvalidFlags, e))?;
    st.store
        .put_flags(&tenant, flags)
        .await
        .map_err(|e| Problem::new(Kind::StoreUnavailable, e.to_string()))?;
    Ok(Json(flags))
}
