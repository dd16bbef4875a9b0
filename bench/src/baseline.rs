//! The baseline of the throughput benchmarks: the plainest client that streams the same bytes to the
//! same upload service as `mtp upload` — one `POST {upload}/{key}` per file, `Offset: 0`, the body
//! streamed from disk in 1 MiB chunks, 4 files at a time. No hashing, no EXIF rewrite, no offset
//! query, no state, no retries. It runs in a process of its own (`mtp-bench baseline-client ...`), so
//! that its CPU time and memory are measured the same way as `mtp`'s.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

/// Chunk size of the streamed bodies (the same as mtp's).
const CHUNK: usize = 1024 * 1024;

/// What the baseline client uploads and where.
#[derive(Debug, Clone)]
pub struct BaselineJob {
    /// Upload service root (`{upload}/{key}`).
    pub upload_url: String,
    /// The user token (`Authorization: OAuth <token>`).
    pub token: String,
    /// Every `*.jpg` in this directory is uploaded.
    pub dir: PathBuf,
    /// Entity keys are `<prefix><index>.jpg`.
    pub key_prefix: String,
    /// Files in flight at once.
    pub jobs: usize,
}

/// What the baseline client sent.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct BaselineResult {
    /// Files uploaded (each acknowledged with a handle).
    pub files: u64,
    /// Body bytes sent.
    pub bytes: u64,
}

/// The `*.jpg` files of `dir`, by name.
pub fn jpegs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg"))
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Uploads every file of `job.dir`; blocking (runs its own tokio runtime).
pub fn run(job: &BaselineJob) -> Result<BaselineResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    runtime.block_on(upload_all(job))
}

async fn upload_all(job: &BaselineJob) -> Result<BaselineResult> {
    let files = jpegs_in(&job.dir)?;
    if files.is_empty() {
        bail!("no *.jpg files in {}", job.dir.display());
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building the HTTP client")?;
    let client = &client;
    let sizes: Vec<u64> = futures::stream::iter(files.into_iter().enumerate())
        .map(|(index, path)| async move {
            let key = format!("{}{index}.jpg", job.key_prefix);
            upload_one(client, job, &key, &path)
                .await
                .with_context(|| format!("uploading {} as {key}", path.display()))
        })
        .buffer_unordered(job.jobs.max(1))
        .try_collect()
        .await?;
    Ok(BaselineResult {
        files: sizes.len() as u64,
        bytes: sizes.iter().sum(),
    })
}

async fn upload_one(
    client: &reqwest::Client,
    job: &BaselineJob,
    key: &str,
    path: &Path,
) -> Result<u64> {
    let file = tokio::fs::File::open(path).await.context("opening")?;
    let length = file.metadata().await.context("reading its size")?.len();
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut reader = (&mut file).take(CHUNK as u64);
        reader.read_to_end(&mut chunk).await?;
        if chunk.is_empty() {
            Ok::<_, std::io::Error>(None)
        } else {
            Ok(Some((chunk, file)))
        }
    });
    let response = client
        .post(format!("{}/{key}", job.upload_url))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("OAuth {}", job.token),
        )
        .header("Offset", "0")
        .header("X-Entity-Name", key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .context("sending")?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        bail!("the server answered {status}: {text}");
    }
    let answer: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("the answer {text:?}"))?;
    if answer.get("h").and_then(|h| h.as_str()).is_none() {
        bail!("no handle in the answer {text}");
    }
    Ok(length)
}
