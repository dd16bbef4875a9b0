//! A file store taking `PUT /{folder}/{file}`: the service the template provider (`plugins/template`)
//! uploads to, so a provider made from the template has a fake to prove itself against.
//!
//! It stands for no real service: every behaviour here is an assumption of ours, the least a resumable
//! upload needs — store the body, answer `201 Created` — plus the faults a client must survive.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::Router;

use crate::fake_mapillary::server::{self, lock, Running};
use crate::FakeService;

/// Settings of the fake.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Port (0 = any).
    pub port: u16,
    /// The `.env` key its provider reads the base URL from (`TEMPLATE_URL`; a provider made with
    /// `mtp plugin new` has its own).
    pub url_key: String,
    /// Answer the first `n` requests 503 without storing them (assumption: a proxy in front of the
    /// store, to show a client's retries).
    pub unavailable_first: u32,
    /// Every request waits this long before it is answered (to cancel a client mid-way).
    pub latency: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            port: 0,
            url_key: "TEMPLATE_URL".into(),
            unavailable_first: 0,
            latency: Duration::ZERO,
        }
    }
}

/// What the fake saw.
#[derive(Debug, Clone, Default)]
pub struct FilesStats {
    /// Every stored `PUT`, per `folder/file`: its body size, in order (a re-upload shows as a second
    /// entry, where a map of the last size would hide it).
    pub stored: BTreeMap<String, Vec<usize>>,
    /// Requests answered 503.
    pub refused: u32,
    /// Requests per route (`"METHOD /route"`).
    pub requests: BTreeMap<String, u64>,
}

struct Shared {
    config: FilesConfig,
    stats: Mutex<FilesStats>,
}

/// A running fake file store. Dropping it stops the server.
pub struct FakeFiles {
    shared: Arc<Shared>,
    running: Running,
    base_url: String,
}

impl FakeFiles {
    /// Start on the current tokio runtime, on 127.0.0.1.
    pub async fn start(config: FilesConfig) -> io::Result<FakeFiles> {
        let listener = server::bind(config.port).await?;
        let shared = Arc::new(Shared {
            config,
            stats: Mutex::default(),
        });
        let router = Router::new()
            .route("/:folder/:file", put(store))
            .with_state(shared.clone());
        let running = Running::spawn(listener, router)?;
        let base_url = format!("http://{}", running.addr());
        Ok(FakeFiles {
            shared,
            running,
            base_url,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// What the fake has seen.
    pub fn stats(&self) -> FilesStats {
        lock(&self.shared.stats).clone()
    }

    /// Stop the server.
    pub fn shutdown(mut self) {
        self.running.stop();
    }
}

async fn store(
    State(shared): State<Arc<Shared>>,
    Path((folder, file)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let refuse = {
        let mut stats = lock(&shared.stats);
        *stats
            .requests
            .entry("PUT /:folder/:file".into())
            .or_default() += 1;
        let refuse = stats.refused < shared.config.unavailable_first;
        if refuse {
            stats.refused += 1;
        }
        refuse
    };
    tokio::time::sleep(shared.config.latency).await;
    if refuse {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    lock(&shared.stats)
        .stored
        .entry(format!("{folder}/{file}"))
        .or_default()
        .push(body.len());
    StatusCode::CREATED
}

impl FakeService for FakeFiles {
    fn env(&self) -> Vec<(String, String)> {
        vec![(self.shared.config.url_key.clone(), self.base_url())]
    }

    fn requests(&self) -> BTreeMap<String, u64> {
        self.stats().requests
    }

    fn uploads(&self) -> u64 {
        self.stats().requests.values().sum()
    }

    /// Files stored again after they were stored once.
    fn resent(&self) -> u64 {
        self.stats()
            .stored
            .values()
            .map(|sizes| sizes.len().saturating_sub(1) as u64)
            .sum()
    }
}
