//! Driving the integration in-process against the fake Street View: a host whose authorisation prompt
//! acts as a browser on the fake's consent page, and sequences of small JPEGs written to a temporary
//! folder (360° ones carry a Photo Sphere XMP packet, flat ones none).

#![allow(dead_code)]

use std::time::Duration;

use mtp_fakes::fake_streetview::{FakeStreetView, StreetViewConfig};
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

/// 2020-05-10T06:45:03Z.
pub const T0: i64 = 1_589_093_103_000;

pub use provider_tests::host::BrowserHost;

/// The fake and a host whose `.env` points at it, with short waits.
pub struct Setup {
    pub fake: FakeStreetView,
    pub host: BrowserHost,
    pub dir: tempfile::TempDir,
}

pub fn host_for(fake: &FakeStreetView, extra: &[(&str, &str)]) -> BrowserHost {
    let config = fake.config();
    let mut host = TestHost::new()
        .with_env("GOOGLE_CLIENT_ID", &config.client_id)
        .with_env("GOOGLE_CLIENT_SECRET", &config.client_secret)
        .with_env("GOOGLE_STREETVIEW_API_URL", &fake.api_url())
        .with_env("GOOGLE_OAUTH_AUTH_URL", &fake.auth_url())
        .with_env("GOOGLE_OAUTH_TOKEN_URL", &fake.token_url())
        .with_env("GOOGLE_STREETVIEW_RETRY_BASE_MS", "5")
        .with_env("GOOGLE_STREETVIEW_POLL_SECS", "0");
    for (k, v) in extra {
        host = host.with_env(k, v);
    }
    BrowserHost { inner: host }
}

impl Setup {
    pub async fn start(config: StreetViewConfig, env: &[(&str, &str)]) -> Setup {
        let fake = FakeStreetView::start(config)
            .await
            .expect("the fake starts");
        let host = host_for(&fake, env);
        Setup {
            fake,
            host,
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// Logs in through the fake's consent page.
    pub async fn authorised(config: StreetViewConfig, env: &[(&str, &str)]) -> Setup {
        let setup = Setup::start(config, env).await;
        mtp_streetview::StreetView
            .authorize(&setup.host.context(), AuthRequest { token: None })
            .await
            .expect("logging in through the fake works");
        setup
    }

    pub async fn run(&self, sequence: &SequenceDescriptor) -> Result<RunOutcome, PluginError> {
        self.run_in(sequence, RunMode::Upload).await
    }

    pub async fn run_in(
        &self,
        sequence: &SequenceDescriptor,
        mode: RunMode,
    ) -> Result<RunOutcome, PluginError> {
        mtp_streetview::StreetView
            .run(&self.host.context(), request(sequence, mode, false))
            .await
    }

    /// A walk of `count` 360° photos (see [`walk`]).
    pub fn walk(&self, id: &str, count: usize) -> SequenceDescriptor {
        walk(self.dir.path(), id, count, true)
    }

    /// Creates so far.
    pub fn creates(&self) -> usize {
        self.fake.stats().count("POST /v1/photo")
    }
}

/// A fake that publishes at once and lists new photos at once.
pub fn quick() -> StreetViewConfig {
    StreetViewConfig {
        indexing: Duration::ZERO,
        review: Duration::ZERO,
        ..StreetViewConfig::default()
    }
}

pub fn request(sequence: &SequenceDescriptor, mode: RunMode, dry_run: bool) -> RunRequest {
    RunRequest {
        mode,
        sequence: sequence.clone(),
        dry_run,
        upstream: Default::default(),
        previous: None,
        options: Default::default(),
    }
}

/// A JPEG of `width`×`height` (headers only: the fake reads the XMP and the frame size), with a Photo
/// Sphere XMP packet when `sphere`.
pub fn jpeg(width: u16, height: u16, sphere: bool) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8];
    if sphere {
        let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF \
xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description \
xmlns:GPano=\"http://ns.google.com/photos/1.0/panorama/\" GPano:ProjectionType=\"equirectangular\" \
GPano:UsePanoramaViewer=\"True\"/></rdf:RDF></x:xmpmeta>";
        bytes.extend([0xFF, 0xE1]);
        bytes.extend(((xmp.len() + 2) as u16).to_be_bytes());
        bytes.extend_from_slice(xmp);
    }
    bytes.extend([0xFF, 0xC0, 0x00, 0x11, 0x08]);
    bytes.extend(height.to_be_bytes());
    bytes.extend(width.to_be_bytes());
    bytes.extend([0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01]);
    bytes.extend([0xFF, 0xD9]);
    bytes
}

/// A walk of `count` photos one every 2 s, about 3 m apart, written under `dir/id/`.
pub fn walk(dir: &std::path::Path, id: &str, count: usize, sphere: bool) -> SequenceDescriptor {
    let folder = dir.join(id);
    std::fs::create_dir_all(&folder).expect("a sequence folder");
    let images = (0..count)
        .map(|i| {
            let name = format!("{i:04}.jpg");
            let path = folder.join(&name);
            let bytes = jpeg(640, 320, sphere);
            std::fs::write(&path, &bytes).expect("a photo");
            ImageInfo {
                path: path.to_string_lossy().into_owned(),
                file_name: name,
                size_bytes: bytes.len() as u64,
                latitude: 52.25 + i as f64 * 0.00003,
                longitude: 6.78,
                altitude: Some(12.0),
                captured_at_ms: T0 + i as i64 * 2000,
                heading: Some(90.0),
                projection: if sphere {
                    Projection::Equirectangular
                } else {
                    Projection::Flat
                },
                width: Some(640),
                height: Some(320),
                photo_uuid: None,
                sources: None,
            }
        })
        .collect();
    SequenceDescriptor {
        schema: 1,
        id: id.into(),
        root: folder.to_string_lossy().into_owned(),
        name: "Canal walk 360".into(),
        description: "Uploaded by mtp".into(),
        transport: TransportType::parse("Walk").ok(),
        tags: vec![],
        source: Default::default(),
        images,
    }
}
