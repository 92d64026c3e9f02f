//! Shared state and the router: which path goes to which handler, plus CORS and the
//! demo's static files.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;

use crate::chaos::Chaos;
use crate::config::Config;
use crate::handlers::{admin, batch, flags, messages, ops};
use crate::metrics::{Metrics, StoreOp};
use crate::store::Store;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// The store; any [`Store`] implementation.
    pub store: Arc<dyn Store>,
    /// Live fault injection setting.
    pub chaos: Arc<Chaos>,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State over `store`, with chaos set from the config.
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let chaos = Chaos::new(config.chaos.clone(), config.chaos_seed);
        AppState {
            config: Arc::new(config),
            store,
            chaos: Arc::new(chaos),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Awaits a store call, recording its latency under `op`.
    pub async fn timed<T>(&self, op: StoreOp, fut: impl Future<Output = T>) -> T {
        let start = Instant::now();
        let out = fut.await;
        self.metrics.store_latency(op, start.elapsed());
        out
    }
}

/// Response headers the browser may read cross-origin.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

fn cors(config: &Config) -> CorsLayer {
    let origin = if config.cors_origins.is_empty() {
        // Any origin is safe here: auth is an explicit bearer header, never a cookie.
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT])
        .allow_headers([
            HeaderName::from_static(crate::idempotency::HEADER),
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
        ])
        .expose_headers([
            HeaderName::from_static(IDEMPOTENT_REPLAYED),
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(600))
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let config = Arc::clone(&state.config);
    Router::new()
        .route("/v1/messages", post(messages::post).get(messages::list))
        .route("/v1/messages/batch", post(batch::post))
        .route("/v1/flags", get(flags::get).put(flags::put))
        .route("/admin/chaos", get(admin::get_chaos).put(admin::put_chaos))
        .route("/admin/sweep", post(admin::sweep))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .layer(DefaultBodyLimit::max(config.max_body))
        // Static files: a missing directory just answers 404.
        .nest_service("/pkg", ServeDir::new(&config.pkg))
        .fallback_service(ServeDir::new(&config.www))
        .layer(cors(&config))
        .with_state(state)
}
