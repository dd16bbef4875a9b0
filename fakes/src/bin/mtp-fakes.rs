//! `mtp-fakes serve`: run the fake Mapillary, MTPW, Strava and Google Street View servers for manual runs, demos and
//! benchmarks. Prints one JSON line with the URLs on stdout, then serves until SIGINT/SIGTERM
//! (or stdin EOF with `--exit-on-stdin-eof`).

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use mtp_fakes::fake_mapillary::{
    ExtraSequence, FakeMapillary, FinishFault, Flapping, MapillaryConfig, MapillaryFaults,
    RateLimitShape, ResetFault,
};
use mtp_fakes::fake_mtpw::{FakeMtpw, MtpwApi, MtpwConfig, MtpwFaults};
use mtp_fakes::fake_panoramax::{FakePanoramax, PanoramaxConfig};
use mtp_fakes::fake_strava::{FakeStrava, StravaConfig};
use mtp_fakes::fake_streetview::{FakeStreetView, StreetViewConfig};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "mtp-fakes",
    version,
    about = "Local fakes of the Mapillary v4 and Map the Paths Web APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start both fakes and print their URLs as one JSON line.
    Serve(Box<ServeArgs>),
}

#[derive(Clone, Copy, ValueEnum)]
enum ApiArg {
    Old,
    New,
    Both,
}

/// Status of the rate-limit answers (both carry `RequestRateLimitedError` with `retriable: false`).
#[derive(Clone, Copy, ValueEnum)]
enum RateLimitArg {
    /// 429 with Retry-After.
    Status429,
    /// 400 with the body alone.
    Status400,
}

#[derive(Clone, Copy, ValueEnum)]
enum FinishFaultArg {
    None,
    Fail500,
    Fail500ButPublished,
    NeverPublish,
    DroppedButPublished,
}

#[derive(Args)]
struct ServeArgs {
    /// Port of the fake Mapillary (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Port of the fake MTPW (0 = any free port).
    #[arg(long, default_value_t = 0)]
    mtpw_port: u16,
    /// Also start the fake Panoramax (tokens `alice-token` and `bob-token`).
    #[arg(long)]
    panoramax: bool,
    /// Port of the fake Panoramax (0 = any free port).
    #[arg(long, default_value_t = 0)]
    panoramax_port: u16,
    /// Port of the fake Strava (0 = any free port).
    #[arg(long, default_value_t = 0)]
    strava_port: u16,
    /// Port of the fake Google Street View Publish API and its OAuth (0 = any free port).
    #[arg(long, default_value_t = 0)]
    streetview_port: u16,

    // ---- Mapillary account and app ----
    /// The Mapillary user token (valid from the start; what /token issues).
    #[arg(long)]
    user_token: Option<String>,
    /// Mapillary username.
    #[arg(long)]
    username: Option<String>,
    /// Mapillary user id.
    #[arg(long)]
    user_id: Option<String>,
    /// OAuth client id (MAPILLARY_APP_ID).
    #[arg(long)]
    client_id: Option<String>,
    /// OAuth client secret (MAPILLARY_SECRET).
    #[arg(long)]
    client_secret: Option<String>,
    /// Issue a new distinct token on every /token call.
    #[arg(long)]
    issue_fresh_tokens: bool,
    /// The consent page denies (error=user_denied).
    #[arg(long)]
    deny_consent: bool,
    /// Accept upload POSTs whose Offset is below the server's, skipping the overlap.
    #[arg(long)]
    accept_overlapping_offsets: bool,

    /// Lifetime of every token in seconds (answered as `expires_in`); tokens do not expire without it.
    #[arg(long)]
    token_ttl_secs: Option<u64>,
    /// Lifetime of upload handles in seconds; after it the entity is forgotten.
    #[arg(long)]
    handle_ttl_secs: Option<u64>,

    // ---- publication ----
    /// Seconds between finish_upload and the sequence appearing in /images.
    #[arg(long, default_value_t = 0.0)]
    publish_delay_secs: f64,
    /// /images lookups after finish_upload that don't see the sequence yet.
    #[arg(long, default_value_t = 0)]
    publish_after_lookups: u32,
    /// Decoy sequences published alongside each upload, overlapping it in time and space.
    #[arg(long, default_value_t = 0)]
    overlap_decoys: u32,
    /// Pre-seeded sequence: `start_ms,end_ms,minLon,minLat,maxLon,maxLat[,image_count]`. Repeatable.
    #[arg(long, value_parser = parse_extra_sequence)]
    extra_sequence: Vec<ExtraSequence>,

    // ---- Mapillary faults ----
    /// Seed for all random faults (deterministic runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Fraction of upload-service requests answered 500/503.
    #[arg(long, alias = "error-5xx-ratio", default_value_t = 0.0)]
    upload_5xx_ratio: f64,
    /// Fraction of graph reads (/me, /images, /image_ids) answered 500/503.
    #[arg(long, default_value_t = 0.0)]
    graph_5xx_ratio: f64,
    /// Fraction of upload-service requests answered RequestRateLimitedError.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_ratio: f64,
    /// Wait those answers ask for (Retry-After seconds; the body's `backoff` in ms says the same).
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Status of those answers.
    #[arg(long, value_enum, default_value = "status429")]
    rate_limit_shape: RateLimitArg,
    /// Drop the connection after this many bytes of an upload POST body (bytes kept).
    #[arg(long)]
    reset_after_bytes: Option<u64>,
    /// Apply the reset to every Kth POST (default 1 when --reset-after-bytes is given without --reset-ratio).
    #[arg(long)]
    reset_every_nth: Option<u32>,
    /// Apply the reset to this fraction of POSTs.
    #[arg(long, default_value_t = 0.0)]
    reset_ratio: f64,
    /// Fraction of upload POSTs answered 412 although the offset is right.
    #[arg(long, default_value_t = 0.0)]
    offset_mismatch_ratio: f64,
    /// Revoke the user token after this many successful authenticated requests.
    #[arg(long)]
    revoke_token_after: Option<u64>,
    /// How finish_upload misbehaves.
    #[arg(long, value_enum, default_value_t = FinishFaultArg::None)]
    finish_fault: FinishFaultArg,
    /// Apply --finish-fault only to the first N finish_upload calls.
    #[arg(long)]
    finish_fault_calls: Option<u32>,
    /// Flapping: length of healthy windows (ms); needs --flap-failing-ms.
    #[arg(long)]
    flap_healthy_ms: Option<u64>,
    /// Flapping: length of failing windows (ms); the first begins at the first request.
    #[arg(long)]
    flap_failing_ms: Option<u64>,
    /// Upload bandwidth shared by all connections (bytes/s).
    #[arg(long)]
    throttle_bytes_per_sec: Option<u64>,
    /// Latency added to every Mapillary request (ms).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Further latency before `finish_upload` is handled (ms), to kill a run while it publishes.
    #[arg(long, default_value_t = 0)]
    finish_latency_ms: u64,

    // ---- MTPW ----
    /// The MTPW user token.
    #[arg(long)]
    mtpw_token: Option<String>,
    /// MTPW OAuth client id (any if omitted).
    #[arg(long)]
    mtpw_client_id: Option<String>,
    /// MTPW API generation(s).
    #[arg(long, value_enum, default_value_t = ApiArg::Both)]
    mtpw_api: ApiArg,
    /// MTPW accepts only parent transport types.
    #[arg(long)]
    mtpw_parents_only: bool,
    /// MTPW consent page denies.
    #[arg(long)]
    mtpw_deny_consent: bool,
    /// Fraction of MTPW API calls answered 500/503.
    #[arg(long, default_value_t = 0.0)]
    mtpw_5xx_ratio: f64,
    /// Fraction of MTPW API calls whose connection is dropped.
    #[arg(long, default_value_t = 0.0)]
    mtpw_drop_ratio: f64,
    /// Answer the first N authenticated MTPW calls with HTTP 200 {"error","status":false}.
    #[arg(long, default_value_t = 0)]
    mtpw_error_as_200: u32,
    /// Revoke the MTPW token after N successful calls.
    #[arg(long)]
    mtpw_revoke_token_after: Option<u64>,
    /// Latency added to every MTPW request (ms).
    #[arg(long, default_value_t = 0)]
    mtpw_latency_ms: u64,

    // ---- process ----
    /// Exit when stdin reaches EOF (for parents that cannot send signals).
    #[arg(long)]
    exit_on_stdin_eof: bool,
    /// Print both fakes' stats as one JSON line on stderr when exiting.
    #[arg(long)]
    stats_on_exit: bool,
}

fn parse_extra_sequence(s: &str) -> Result<ExtraSequence, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 6 && parts.len() != 7 {
        return Err("expected start_ms,end_ms,minLon,minLat,maxLon,maxLat[,image_count]".into());
    }
    let int = |p: &str| p.parse::<i64>().map_err(|e| format!("{p}: {e}"));
    let float = |p: &str| p.parse::<f64>().map_err(|e| format!("{p}: {e}"));
    Ok(ExtraSequence {
        start_ms: int(parts[0])?,
        end_ms: int(parts[1])?,
        bbox: [
            float(parts[2])?,
            float(parts[3])?,
            float(parts[4])?,
            float(parts[5])?,
        ],
        image_count: match parts.get(6) {
            Some(n) => n.parse().map_err(|e| format!("{n}: {e}"))?,
            None => 10,
        },
    })
}

fn mapillary_config(a: &ServeArgs) -> anyhow::Result<MapillaryConfig> {
    let mut c = MapillaryConfig {
        port: a.port,
        ..MapillaryConfig::default()
    };
    if let Some(v) = &a.user_token {
        c.user_token = v.clone();
    }
    if let Some(v) = &a.username {
        c.username = v.clone();
    }
    if let Some(v) = &a.user_id {
        c.user_id = v.clone();
    }
    if let Some(v) = &a.client_id {
        c.client_id = v.clone();
    }
    if let Some(v) = &a.client_secret {
        c.client_secret = v.clone();
    }
    if !a.publish_delay_secs.is_finite() || a.publish_delay_secs < 0.0 {
        bail!("--publish-delay-secs must be a non-negative number");
    }
    c.issue_fresh_tokens = a.issue_fresh_tokens;
    c.deny_consent = a.deny_consent;
    c.accept_overlapping_offsets = a.accept_overlapping_offsets;
    c.publish_delay = Duration::from_secs_f64(a.publish_delay_secs);
    c.publish_after_lookups = a.publish_after_lookups;
    c.overlap_decoys = a.overlap_decoys;
    c.extra_sequences = a.extra_sequence.clone();
    c.aging.token_ttl = a.token_ttl_secs.map(Duration::from_secs);
    c.aging.handle_ttl = a.handle_ttl_secs.map(Duration::from_secs);
    let flapping = match (a.flap_healthy_ms, a.flap_failing_ms) {
        (Some(healthy_ms), Some(failing_ms)) => Some(Flapping {
            healthy_ms,
            failing_ms,
        }),
        (None, None) => None,
        _ => bail!("--flap-healthy-ms and --flap-failing-ms go together"),
    };
    let reset = a.reset_after_bytes.map(|after_bytes| ResetFault {
        after_bytes,
        every_nth_post: a
            .reset_every_nth
            .unwrap_or(if a.reset_ratio > 0.0 { 0 } else { 1 }),
        ratio: a.reset_ratio,
    });
    c.faults = MapillaryFaults {
        seed: a.seed,
        upload_5xx_ratio: a.upload_5xx_ratio,
        graph_5xx_ratio: a.graph_5xx_ratio,
        rate_limit_ratio: a.rate_limit_ratio,
        retry_after_secs: a.retry_after_secs,
        rate_limit_shape: match a.rate_limit_shape {
            RateLimitArg::Status429 => RateLimitShape::Status429,
            RateLimitArg::Status400 => RateLimitShape::Status400,
        },
        reset,
        offset_mismatch_ratio: a.offset_mismatch_ratio,
        revoke_token_after: a.revoke_token_after,
        finish: match a.finish_fault {
            FinishFaultArg::None => FinishFault::None,
            FinishFaultArg::Fail500 => FinishFault::Fail500,
            FinishFaultArg::Fail500ButPublished => FinishFault::Fail500ButPublished,
            FinishFaultArg::NeverPublish => FinishFault::AcceptedNeverPublished,
            FinishFaultArg::DroppedButPublished => FinishFault::DroppedAnswerButPublished,
        },
        finish_fault_calls: a.finish_fault_calls,
        flapping,
        throttle_bytes_per_sec: a.throttle_bytes_per_sec,
        latency_ms: a.latency_ms,
        finish_latency_ms: a.finish_latency_ms,
    };
    Ok(c)
}

fn mtpw_config(a: &ServeArgs, mapillary: &FakeMapillary) -> MtpwConfig {
    let mut c = MtpwConfig {
        port: a.mtpw_port,
        client_id: a.mtpw_client_id.clone(),
        deny_consent: a.mtpw_deny_consent,
        api: match a.mtpw_api {
            ApiArg::Old => MtpwApi::Old,
            ApiArg::New => MtpwApi::New,
            ApiArg::Both => MtpwApi::Both,
        },
        parents_only: a.mtpw_parents_only,
        mapillary: Some(mapillary.link()),
        faults: MtpwFaults {
            seed: a.seed,
            error_5xx_ratio: a.mtpw_5xx_ratio,
            drop_connection_ratio: a.mtpw_drop_ratio,
            error_as_200_next: a.mtpw_error_as_200,
            revoke_token_after: a.mtpw_revoke_token_after,
            latency_ms: a.mtpw_latency_ms,
            ..MtpwFaults::default()
        },
        ..MtpwConfig::default()
    };
    if let Some(t) = &a.mtpw_token {
        c.token = t.clone();
    }
    c
}

async fn wait_for_exit(exit_on_stdin_eof: bool) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    if exit_on_stdin_eof {
        // A plain thread: blocking stdin reads must not occupy a runtime worker.
        std::thread::spawn(move || {
            let mut sink = std::io::sink();
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut sink);
            let _ = eof_tx.send(());
        });
    }
    let stdin_eof = async move {
        if !exit_on_stdin_eof || eof_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
        _ = stdin_eof => {}
    }
    Ok(())
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mapillary = FakeMapillary::start(mapillary_config(&a)?)
        .await
        .context("starting the fake Mapillary")?;
    let mtpw = FakeMtpw::start(mtpw_config(&a, &mapillary))
        .await
        .context("starting the fake MTPW")?;
    let panoramax = if a.panoramax {
        let config = PanoramaxConfig {
            port: a.panoramax_port,
            ..PanoramaxConfig::default()
        };
        let tokens: Vec<String> = config.tokens.keys().cloned().collect();
        let fake = FakePanoramax::start(config)
            .await
            .context("starting the fake Panoramax")?;
        Some((fake, tokens))
    } else {
        None
    };
    let strava = FakeStrava::start(StravaConfig {
        port: a.strava_port,
        ..StravaConfig::default()
    })
    .await
    .context("starting the fake Strava")?;
    let strava_cfg = strava.config().clone();
    let streetview = FakeStreetView::start(StreetViewConfig {
        port: a.streetview_port,
        ..StreetViewConfig::default()
    })
    .await
    .context("starting the fake Google Street View")?;
    let streetview_cfg = streetview.config().clone();
    let cfg = mapillary.config();
    let mut line = json!({
        "mapillary": {
            "graph_url": mapillary.graph_url(),
            "upload_url": mapillary.upload_url(),
            "authorize_url": mapillary.authorize_url(),
            "user_token": cfg.user_token,
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
        },
        "mtpw": {
            "base_url": mtpw.base_url(),
            "auth_url": mtpw.auth_url(),
            "token": mtpw.token(),
        },
        // The `.env` that points the bundled providers at these fakes, which `mtp demo` writes out as
        // it is (so the host needs to know no provider's keys). The key names are the providers' own,
        // declared in their manifests; the redirect URIs are free loopback ports, never listened on:
        // the fakes' consent pages approve at once and mtp follows their redirects (`fetch` mode).
        "env": {
            "MAPILLARY_APP_ID": cfg.client_id,
            "MAPILLARY_SECRET": cfg.client_secret,
            "MAPILLARY_REDIRECT_URI":
                format!("http://127.0.0.1:{}/mapillary/callback", free_loopback_port()?),
            "MAPILLARY_GRAPH_URL": mapillary.graph_url(),
            "MAPILLARY_UPLOAD_URL": mapillary.upload_url(),
            "MAPILLARY_AUTHORIZE_URL": mapillary.authorize_url(),
            "MTP_WEB_URL": mtpw.base_url(),
            "MTP_WEB_AUTH_URL": mtpw.auth_url(),
            "MTP_WEB_APP_ID": "mtp-demo",
            "MTP_WEB_APP_SECRET": "mtp-demo-secret",
            // No MTP_WEB_REDIRECT_URI: like the real MTPW, the fake accepts only the app's registered
            // `app.mtp.desktop` redirect, so mtp sends none (docs/providers/mtpw.md).
            // A choice the user makes, not a fact of the fake: see "env_notes".
            "MTP_WEB_CREATE_SEQUENCES": "true",
            "STRAVA_CLIENT_ID": strava_cfg.client_id,
            "STRAVA_CLIENT_SECRET": strava_cfg.client_secret,
            "STRAVA_REDIRECT_URI":
                format!("http://127.0.0.1:{}/strava/callback", free_loopback_port()?),
            "STRAVA_API_URL": strava.api_url(),
            "STRAVA_OAUTH_URL": strava.oauth_url(),
            "GOOGLE_CLIENT_ID": streetview_cfg.client_id,
            "GOOGLE_CLIENT_SECRET": streetview_cfg.client_secret,
            "GOOGLE_STREETVIEW_API_URL": streetview.api_url(),
            "GOOGLE_OAUTH_AUTH_URL": streetview.auth_url(),
            "GOOGLE_OAUTH_TOKEN_URL": streetview.token_url(),
            // The fake reviews a photo in half a second: look at publication every second.
            "GOOGLE_STREETVIEW_POLL_SECS": "1",
        },
        // Why a key in "env" is a choice rather than an address, for `mtp demo` to say (it knows no
        // provider's keys).
        "env_notes": {
            "MTP_WEB_CREATE_SEQUENCES": "the demo chooses to create MTPW sequences before the server has \
                shown it can import (this fake's import works; the real mtp-web's cannot, so mtp waits for \
                that choice by default: docs/providers/mtpw.md)",
        },
        "strava": {"api_url": strava.api_url(), "oauth_url": strava.oauth_url()},
        "streetview": {"api_url": streetview.api_url(), "auth_url": streetview.auth_url(),
                       "token_url": streetview.token_url()},
    });
    if let Some((fake, tokens)) = &panoramax {
        line["panoramax"] = json!({"url": fake.base_url(), "tokens": tokens});
        // The Panoramax provider's one required key (its manifest), so the env block enables it too.
        line["env"]["PANORAMAX_URL"] = json!(fake.base_url());
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    wait_for_exit(a.exit_on_stdin_eof).await?;
    if a.stats_on_exit {
        let stats = json!({"mapillary": mapillary.stats(), "mtpw": mtpw.stats(),
                           "strava": strava.stats(), "streetview": streetview.stats()});
        eprintln!("{stats}");
    }
    if let Some((fake, _)) = panoramax {
        fake.shutdown();
    }
    streetview.shutdown();
    strava.shutdown();
    mtpw.shutdown();
    mapillary.shutdown();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
    }
}
