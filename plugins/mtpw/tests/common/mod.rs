//! What the MTPW provider's tests share: a host pointed at a fake MTPW and logged in, and a run request
//! as the host makes it after Mapillary (its sequence key and user token handed over).
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;

use mtp_fakes::fake_mtpw::{FakeMtpw, MtpwApi, MtpwConfig};
use mtp_fakes::FakeService;
use plugin_api::prelude::*;
use plugin_api::sdk::testing::TestHost;

/// The Mapillary token the fakes expect MTPW to be handed.
pub const MAPILLARY_TOKEN: &str = "mly-user-token";

/// A fake MTPW speaking the later API (create, then import) that expects [`MAPILLARY_TOKEN`].
pub async fn later_api_fake() -> FakeMtpw {
    FakeMtpw::start(MtpwConfig {
        api: MtpwApi::New,
        mapillary_token: Some(MAPILLARY_TOKEN.into()),
        ..MtpwConfig::default()
    })
    .await
    .expect("the fake starts")
}

/// How many creates `fake` received.
pub fn creates(fake: &FakeMtpw) -> u64 {
    fake.stats()
        .requests
        .get("POST /api/v1/sequence/create/")
        .copied()
        .unwrap_or(0)
}

/// A host whose `.env` points at `fake`, holding the fake's MTPW token, where the user has chosen to
/// create MTPW sequences on servers that have not yet shown they can import
/// (`MTP_WEB_CREATE_SEQUENCES=true`): the tests using it are about what happens once creating is allowed.
pub fn host(fake: &FakeMtpw) -> TestHost {
    host_without_choice(fake).with_env("MTP_WEB_CREATE_SEQUENCES", "true")
}

/// A host as installed: `.env` points at `fake` and the token is stored, no choice about creating made.
pub fn host_without_choice(fake: &FakeMtpw) -> TestHost {
    let mut host = TestHost::new();
    for (key, value) in fake.env() {
        host = host.with_env(&key, &value);
    }
    let host = host
        .with_env("MTP_WEB_APP_ID", "app")
        .with_env("MTP_WEB_APP_SECRET", "secret")
        .with_env("MTP_WEB_RETRY_BASE_MS", "5");
    host.context()
        .set_secret("token", &fake.token())
        .expect("the token is stored");
    host
}

/// "Canal walk" (`seq-1`, no images: MTPW reads none) with `transport` and `tags`.
pub fn canal_walk(transport: &str, tags: &[&str]) -> SequenceDescriptor {
    let mut sequence: SequenceDescriptor = serde_json::from_value(serde_json::json!({
        "schema": 1, "id": "seq-1", "root": "/x", "name": "Canal walk", "description": "Along the canal",
        "tags": tags, "source": "folder", "images": []
    }))
    .expect("a descriptor");
    sequence.transport = Some(TransportType::parse(transport).expect("a transport type"));
    sequence
}

/// An upload of `sequence` after Mapillary, which gave it `keys` (none: Mapillary has no key yet).
pub fn after_mapillary(sequence: SequenceDescriptor, keys: Option<&str>) -> RunRequest {
    let mut upstream = BTreeMap::new();
    if let Some(keys) = keys {
        upstream.insert(
            "mapillary".to_string(),
            BTreeMap::from([
                ("sequence_key".to_string(), keys.to_string()),
                ("user_token".to_string(), MAPILLARY_TOKEN.to_string()),
            ]),
        );
    }
    RunRequest {
        mode: RunMode::Upload,
        sequence,
        dry_run: false,
        upstream,
        previous: None,
        options: Default::default(),
    }
}
