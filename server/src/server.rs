//! Binding, the reaper task and graceful shutdown, for `main` and for tests alike.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{router, AppState};
use crate::config::Config;
use crate::reaper;
use crate::store::{sqlite::SqliteStore, Store};

/// Any startup error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running server. Drop it or call [`Server::shutdown`] to stop.
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    serve: JoinHandle<io::Result<()>>,
    reaper: JoinHandle<()>,
}

impl Server {
    /// Opens the SQLite store named by `config.db` and starts serving.
    pub async fn start(config: Config) -> Result<Server, BoxError> {
        let store = SqliteStore::open(&config.db)?;
        Self::start_with_store(config, Arc::new(store)).await
    }

    /// Starts serving over any store (tests share one with the server).
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Server, BoxError> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let state = AppState::new(config, store);
        let app = router(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let serve = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let reaper = reaper::spawn(state.clone());
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            serve,
            reaper,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (store, chaos, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> io::Result<()> {
        signal.await;
        self.shutdown().await
    }

    /// Stops accepting, lets in-flight requests finish, and stops the reaper.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.reaper.abort();
        (&mut self.serve).await.map_err(io::Error::other)?
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.reaper.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
