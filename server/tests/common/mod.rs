//! Shared test harness: an in-process server on 127.0.0.1:0 and a reqwest client.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use outbox_server::{Config, Server, Store};
use reqwest::header::HeaderValue;
use reqwest::{Client, Response};
use serde_json::Value;

pub const DEMO: &str = "demo-token";
pub const PROBLEM: &str = "https://durable-outbox.dev/problems/";

pub struct Harness {
    pub server: Server,
    pub client: Client,
    pub url: String,
}

/// Config from CLI-style flags, on an ephemeral port with a throwaway store and no static
/// directories unless the flags say otherwise.
pub fn config(args: &[&str]) -> Config {
    let mut all = vec![
        "outbox-server",
        "--listen",
        "127.0.0.1:0",
        "--db",
        ":memory:",
        "--www",
        "/nonexistent/www",
        "--pkg",
        "/nonexistent/pkg",
    ];
    all.extend_from_slice(args);
    Config::from_args(all).expect("test flags parse")
}

pub fn client() -> Client {
    Client::builder().no_proxy().build().unwrap()
}

pub async fn start(args: &[&str]) -> Harness {
    let server = Server::start(config(args)).await.expect("server starts");
    let url = server.url();
    Harness {
        server,
        client: client(),
        url,
    }
}

pub async fn start_with_store(args: &[&str], store: Arc<dyn Store>) -> Harness {
    let server = Server::start_with_store(config(args), store)
        .await
        .expect("server starts");
    let url = server.url();
    Harness {
        server,
        client: client(),
        url,
    }
}

impl Harness {
    /// POST /v1/messages with the demo token.
    pub async fn post(&self, key: &str, body: &str) -> Response {
        self.post_as(DEMO, Some(key.as_bytes()), body).await
    }

    /// POST /v1/messages with any token and raw key bytes (None = no header).
    pub async fn post_as(&self, token: &str, key: Option<&[u8]>, body: &str) -> Response {
        let mut req = self
            .client
            .post(format!("{}/v1/messages", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(k) = key {
            req = req.header("idempotency-key", HeaderValue::from_bytes(k).unwrap());
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request sent")
    }

    pub async fn put_json(&self, path: &str, token: &str, body: &str) -> Response {
        self.client
            .put(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_admin(&self, path: &str) -> Value {
        let res = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(DEMO)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// The demo tenant's GET /v1/messages document.
    pub async fn log(&self, token: &str) -> Value {
        let res = self.get("/v1/messages", Some(token)).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text().await.unwrap()
    }
}

pub fn header<'a>(res: &'a Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Asserts a problem+json answer with the given status and type slug; returns the body.
pub async fn assert_problem(res: Response, status: u16, slug: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status for {slug}");
    assert_eq!(
        header(&res, "content-type"),
        Some("application/problem+json")
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], format!("{PROBLEM}{slug}"));
    assert_eq!(body["status"], status);
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].is_string());
    body
}
