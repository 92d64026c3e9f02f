//! Error responses as RFC 9457 problem details (`application/problem+json`).
//!
//! Every error the server produces has a stable `type` URI so that clients and tests can
//! match on it instead of on prose. The URIs are identifiers; nothing is served there.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Prefix of every problem `type` URI.
pub const TYPE_BASE: &str = "https://durable-outbox.dev/problems/";

/// The kinds of problem the server reports, each with its status and stable slug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 401: no bearer token, or one that maps to no tenant.
    Unauthorized,
    /// 400: the `Idempotency-Key` header is absent.
    MissingKey,
    /// 400: the key is empty, too long, repeated or not visible ASCII.
    InvalidKey,
    /// 400: the body is not JSON.
    InvalidJson,
    /// 413: the body is over the configured limit.
    PayloadTooLarge,
    /// 409: a request with this key is still being processed.
    KeyInUse,
    /// 422: the key was first used with a different request.
    KeyMismatch,
    /// 400: a flags document that fails validation.
    InvalidFlags,
    /// 400: a chaos setting that fails validation.
    InvalidChaos,
    /// 503 or 500: injected by chaos before the effect.
    ChaosFailure,
    /// 503: injected by chaos after the effect was committed (the lost ack).
    ChaosLostAck,
    /// 503: the store failed; nothing was applied.
    StoreUnavailable,
    /// 400: a batch body of the wrong shape, empty, or naming a key twice.
    InvalidBatch,
    /// 413: a batch with more items than the limit.
    BatchTooLarge,
}

impl Kind {
    /// The slug after [`TYPE_BASE`].
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Unauthorized => "unauthorized",
            Kind::MissingKey => "missing-idempotency-key",
            Kind::InvalidKey => "invalid-idempotency-key",
            Kind::InvalidJson => "invalid-json",
            Kind::PayloadTooLarge => "payload-too-large",
            Kind::KeyInUse => "key-in-use",
            Kind::KeyMismatch => "key-mismatch",
            Kind::InvalidFlags => "invalid-flags",
            Kind::InvalidChaos => "invalid-chaos",
            Kind::ChaosFailure => "chaos-failure",
            Kind::ChaosLostAck => "chaos-lost-ack",
            Kind::StoreUnavailable => "store-unavailable",
            Kind::InvalidBatch => "invalid-batch",
            Kind::BatchTooLarge => "batch-too-large",
        }
    }

    fn default_status(self) -> StatusCode {
        match self {
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::MissingKey | Kind::InvalidKey | Kind::InvalidJson => StatusCode::BAD_REQUEST,
            Kind::InvalidFlags | Kind::InvalidChaos | Kind::InvalidBatch => StatusCode::BAD_REQUEST,
            Kind::PayloadTooLarge | Kind::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::KeyInUse => StatusCode::CONFLICT,
            Kind::KeyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::ChaosFailure | Kind::ChaosLostAck | Kind::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Unauthorized => "Missing or unknown bearer token",
            Kind::MissingKey => "Idempotency-Key header is required",
            Kind::InvalidKey => "Idempotency-Key header is malformed",
            Kind::InvalidJson => "Request body is not JSON",
            Kind::PayloadTooLarge => "Request body is too large",
            Kind::KeyInUse => "A request with this key is still in progress",
            Kind::KeyMismatch => "Idempotency-Key was used with a different request",
            Kind::InvalidFlags => "Invalid flags document",
            Kind::InvalidChaos => "Invalid chaos setting",
            Kind::ChaosFailure => "Injected failure",
            Kind::ChaosLostAck => "Injected lost acknowledgement",
            Kind::StoreUnavailable => "Store unavailable",
            Kind::InvalidBatch => "Invalid batch",
            Kind::BatchTooLarge => "Too many items in the batch",
        }
    }
}

/// A problem details response. Build with [`Problem::new`], refine, then return it.
#[derive(Debug, Clone)]
pub struct Problem {
    kind: Kind,
    status: StatusCode,
    detail: String,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl Problem {
    /// A problem of `kind` with its default status.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            status: kind.default_status(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// Overrides the status (chaos may answer 500 instead of 503).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a `Retry-After` header, in seconds.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The kind, for metrics and tests.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The full `type` URI.
    pub fn type_uri(&self) -> String {
        format!("{TYPE_BASE}{}", self.kind.slug())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Retry-After` seconds, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
    }

    /// The problem+json body, as bytes.
    pub fn body(&self) -> Vec<u8> {
        let body = Body {
            type_: self.type_uri(),
            title: self.kind.title(),
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        serde_json::to_vec(&body).expect("problem body serializes")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body()).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.kind == Kind::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}
