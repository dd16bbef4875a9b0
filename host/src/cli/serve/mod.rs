//! `mtp serve`: the host as a long-running local server, for a desktop shell or a browser. One process
//! with the CLI's registry, state store and runner (through [`host_adapter`], the only module that touches
//! the rest of the host), a JSON API, a Server-Sent Events stream and a small web UI (`host/ui/`, embedded
//! at build time). It binds 127.0.0.1 only; see [`security`] for who may talk to it and docs/api.md for the
//! API.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use tokio::sync::watch;

use super::GlobalArgs;

mod events;
mod folders;
mod host_adapter;
mod login;
mod routes;
mod security;
mod thumbnails;
mod tiles;
mod uploads;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The port on 127.0.0.1 (default: a free one). Use a fixed one when an integration's redirect URI
    /// should land on this server (e.g. MAPILLARY_REDIRECT_URI=http://127.0.0.1:<port>/mapillary/callback).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Open the page in the default browser (the URL is printed anyway).
    #[arg(long)]
    open: bool,
    /// Seconds between re-checks of sequences waiting on a service (the original app: 5 minutes).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    recheck_secs: u64,
    /// The map tiles under a sequence's track: a `{z}/{x}/{y}` URL template (default: OpenStreetMap's
    /// standard tiles, with their attribution), or `none` for the track alone (offline).
    #[arg(long, env = "MTP_TILES", value_name = "URL|none", default_value = tiles::OSM_TILES)]
    tiles: String,
    /// The attribution to show with the tiles of your own `--tiles` URL.
    #[arg(long, value_name = "TEXT")]
    tiles_attribution: Option<String>,
}

pub(crate) fn serve(global: &GlobalArgs, args: &ServeArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(global, args))
}

async fn run(global: &GlobalArgs, args: &ServeArgs) -> Result<ExitCode> {
    let tiles = tiles::parse(&args.tiles, args.tiles_attribution.as_deref())
        .map_err(mtp_host::exit::UsageError)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let port = listener
        .local_addr()
        .context("cannot read the listening port")?
        .port();
    let guard = security::Guard {
        port,
        token: security::stored_token(&super::session::state_dir(global)?)?,
    };
    let hub = Arc::new(events::Hub::new());
    let current = uploads::Current::default();
    let logins = login::Logins::new(
        port,
        tokio::runtime::Handle::current(),
        global.auth_browser == mtp_host::authorize::AuthorizeMode::Fetch,
    );
    let host = host_adapter::Host::open(global, current.sink(hub.clone()), logins.authorizer())?;
    let (uploads, queue) = uploads::Uploads::new(host.clone(), hub.clone(), current);

    let url = format!("http://127.0.0.1:{port}/?token={}", guard.token);
    {
        let mut out = std::io::stdout().lock();
        if global.json {
            let line = serde_json::json!({"url": url, "token": guard.token, "port": port});
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{url}")?;
        }
        out.flush()?;
    }
    eprintln!("mtp serve: listening on 127.0.0.1:{port} (Ctrl-C stops it)");
    if args.open && webbrowser::open(&url).is_err() {
        eprintln!("mtp serve: could not open a browser; open the URL above");
    }

    let (shutdown_tx, shutdown) = watch::channel(false);
    let worker = tokio::spawn(uploads.clone().work(queue, shutdown.clone()));
    tokio::spawn(
        uploads
            .clone()
            .recheck_periodically(Duration::from_secs(args.recheck_secs), shutdown.clone()),
    );
    let app = Arc::new(routes::App {
        host,
        hub,
        uploads: uploads.clone(),
        logins,
        guard,
        shutdown,
        inspected: thumbnails::Inspected::default(),
        tiles,
    });
    let stopping = uploads.clone();
    axum::serve(listener, routes::router(app))
        .with_graceful_shutdown(async move {
            let signal = match stop_signal().await {
                Ok(signal) => signal,
                Err(err) => {
                    // Without signal handling the server runs until killed.
                    eprintln!("mtp serve: {err:#}");
                    std::future::pending::<&str>().await
                }
            };
            eprintln!("\nmtp serve: {signal}: stopping uploads at their next safe point...");
            stopping.stop();
            let _ = shutdown_tx.send(true);
            tokio::spawn(async {
                if stop_signal().await.is_ok() {
                    std::process::exit(130);
                }
            });
        })
        .await
        .context("the server stopped")?;
    worker.await.context("the upload worker stopped")?;
    eprintln!("mtp serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM, whichever comes first.
async fn stop_signal() -> Result<&'static str> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map(|()| "interrupted").context("cannot watch Ctrl-C"),
            _ = term.recv() => Ok("terminated"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map(|()| "interrupted")
            .context("cannot watch Ctrl-C")
    }
}
