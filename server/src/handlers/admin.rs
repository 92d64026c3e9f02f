//! `/admin/*`: chaos at runtime and an on-demand sweep. Any configured token may call
//! these (this is a demo and test server; chaos is process-wide, not per tenant).

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;
use crate::auth::Tenant;
use crate::chaos::ChaosSpec;
use crate::problem::{Kind, Problem};
use crate::reaper;

fn chaos_json(spec: &ChaosSpec) -> Value {
    let mut v = serde_json::to_value(spec).expect("spec serializes");
    v["spec"] = Value::String(spec.to_string());
    v
}

/// `GET /admin/chaos`: the current setting, as fields and as a spec string.
pub async fn get_chaos(State(st): State<AppState>, _: Tenant) -> Json<Value> {
    Json(chaos_json(&st.chaos.spec()))
}

/// `PUT /admin/chaos`: replaces the setting, from `{"fail":..,"status":..,"lostAck":..,
/// "latencyMs":..}` (missing fields default to off) or from `{"spec":"fail=0.3,..."}`.
pub async fn put_chaos(
    State(st): State<AppState>,
    _: Tenant,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let bad = |e: String| Problem::new(Kind::InvalidChaos, e);
    let value: Value = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    let spec = match value.get("spec") {
        Some(Value::String(s)) if value.as_object().is_some_and(|o| o.len() == 1) => {
            s.parse::<ChaosSpec>().map_err(bad)?
        }
        _ => serde_json::from_value::<ChaosSpec>(value).map_err(|e| bad(e.to_string()))?,
    };
    spec.validate().map_err(bad)?;
    st.chaos.set(spec.clone());
    Ok(Json(chaos_json(&spec)))
}

/// `POST /admin/sweep`: runs the reaper now; answers `{"deleted": n}`.
pub async fn sweep(State(st): State<AppState>, _: Tenant) -> Result<Json<Value>, Problem> {
    let n = reaper::sweep_expired(&st)
        .await
        .map_err(|e| Problem::new(Kind::StoreUnavailable, e.to_string()))?;
    Ok(Json(json!({ "deleted": n })))
}
