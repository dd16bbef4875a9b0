//! The template against a fake endpoint, in-process (no library loading): upload, resume, refusal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::Router;
use mtp_template::Template;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;
use plugin_api::serde_json;

/// Every PUT that was stored, per `sequence/file`: its body size, in order (a re-upload shows as a
/// second entry, where a map of the last size would hide it).
type Store = Arc<Mutex<BTreeMap<String, Vec<usize>>>>;

/// A fake endpoint storing the size of every PUT; answers 503 to the first request to show retries.
async fn fake_endpoint() -> (String, Store) {
    let store: Store = Arc::default();
    let failed_once = Arc::new(Mutex::new(false));
    let app = Router::new()
        .route(
            "/:sequence/:file",
            put(
                |State((store, failed_once)): State<(Store, Arc<Mutex<bool>>)>,
                 Path((sequence, file)): Path<(String, String)>,
                 body: axum::body::Bytes| async move {
                    let mut failed = failed_once.lock().unwrap();
                    if !*failed {
                        *failed = true;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    store
                        .lock()
                        .unwrap()
                        .entry(format!("{sequence}/{file}"))
                        .or_default()
                        .push(body.len());
                    StatusCode::CREATED
                },
            ),
        )
        .with_state((store.clone(), failed_once));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, store)
}

fn sequence(dir: &std::path::Path, files: usize) -> SequenceDescriptor {
    let images: Vec<serde_json::Value> = (0..files)
        .map(|i| {
            let path = dir.join(format!("img{i}.jpg"));
            std::fs::write(&path, vec![i as u8; 1000 + i]).unwrap();
            serde_json::json!({
                "path": path, "file_name": format!("img{i}.jpg"), "size_bytes": 1000 + i,
                "latitude": 52.0, "longitude": 6.0, "captured_at_ms": 1_600_000_000_000i64 + i as i64 * 1000,
                "projection": "flat"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "schema": 1, "id": "seq-7", "root": dir, "name": "Walk", "description": "",
        "tags": [], "source": "folder", "images": images
    }))
    .unwrap()
}

fn request(sequence: SequenceDescriptor) -> RunRequest {
    RunRequest {
        mode: RunMode::Upload,
        sequence,
        dry_run: false,
        upstream: BTreeMap::new(),
        previous: None,
        options: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_every_image_once_and_resumes() {
    let (url, store) = fake_endpoint().await;
    let dir = std::env::temp_dir().join(format!("mtp-template-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let host = TestHost::new()
        .with_env("TEMPLATE_URL", &url)
        .with_env("TEMPLATE_RETRY_BASE_MS", "1");
    let ctx = host.context();
    let seq = sequence(&dir, 3);

    // An earlier run already delivered img0: it is not sent again.
    ctx.state().put("seq-7/done/img0.jpg", "1").unwrap();
    let outcome = Template.run(&ctx, request(seq.clone())).await.unwrap();
    assert_eq!(outcome.state, SequenceState::Published);
    let uploaded = store.lock().unwrap().clone();
    let once = BTreeMap::from([
        ("seq-7/img1.jpg".to_string(), vec![1001]),
        ("seq-7/img2.jpg".to_string(), vec![1002]),
    ]);
    assert_eq!(uploaded, once, "img0 not sent again, the others once each");
    assert_eq!(outcome.progress.unwrap().files_done, 3);
    // The 503 was retried and said so.
    assert!(host
        .progress_events()
        .iter()
        .any(|e| matches!(e, ProgressEvent::Note { message } if message.contains("HTTP 503"))));

    // Run again: nothing left to send.
    Template.run(&ctx, request(seq)).await.unwrap();
    assert_eq!(*store.lock().unwrap(), once, "nothing was sent again");
    std::fs::remove_dir_all(&dir).ok();
}
