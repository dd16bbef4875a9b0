//! Creating an MTPW sequence is an explicit choice until the server has shown it can import: against the
//! public mtp-web code no import can succeed (`lib/mapillary.py` asks Mapillary's retired API v3), and a
//! created sequence that is never imported stays empty on MTPW for good.

use mtp_fakes::fake_mtpw::{MapillaryCheck, MtpwFaults};
use mtp_mtpw::Mtpw;
use plugin_api::prelude::*;

mod common;

use common::{creates, host, host_without_choice, later_api_fake};

fn sequence(id: &str, key: &str) -> RunRequest {
    let mut request = common::after_mapillary(common::canal_walk("Walk", &[]), Some(key));
    request.sequence.id = id.into();
    request
}

fn chosen(mut request: RunRequest) -> RunRequest {
    request.options.insert("create".into(), true.into());
    request
}

#[tokio::test]
async fn a_fresh_server_gets_no_create_by_default_and_the_record_says_why() {
    let fake = later_api_fake().await;
    let host = host_without_choice(&fake);
    let waiting = Mtpw::default()
        .run(&host.context(), sequence("seq-1", "K1"))
        .await
        .unwrap();
    assert_eq!(waiting.state, SequenceState::Waiting, "{waiting:?}");
    let message = waiting.message.clone().unwrap();
    assert!(
        message.contains("has not yet shown that it can import")
            && message.contains("lib/mapillary.py")
            && message.contains("would stay empty"),
        "{message}"
    );
    let next = waiting.next_action.clone().unwrap();
    assert!(
        next.contains("mtp upload /x --option mtpw.create=true")
            && next.contains("MTP_WEB_CREATE_SEQUENCES=true"),
        "{next}"
    );
    // Re-checks (mtp status) do not create either.
    let mut recheck = sequence("seq-1", "K1");
    recheck.mode = RunMode::Recheck;
    let again = Mtpw::default().run(&host.context(), recheck).await.unwrap();
    assert_eq!(again.state, SequenceState::Waiting);
    assert_eq!(creates(&fake), 0, "{:?}", fake.stats().requests);
    assert!(fake.stats().sequences.is_empty());
}

#[tokio::test]
async fn the_choice_creates_and_is_remembered_for_the_server() {
    let fake = later_api_fake().await;
    let host = host_without_choice(&fake);
    // Chosen on a run whose create gets no trustworthy answer: no import shows anything yet.
    fake.set_faults(MtpwFaults {
        seed: Some(1),
        error_5xx_ratio: 1.0,
        ..MtpwFaults::default()
    });
    let unknown = Mtpw::default()
        .run(&host.context(), chosen(sequence("seq-1", "K1")))
        .await
        .unwrap();
    assert_eq!(unknown.state, SequenceState::Unknown, "{unknown:?}");
    assert_eq!(creates(&fake), 1);
    // A later run, without the option, after a restart: the choice was made once, for the server.
    fake.set_faults(MtpwFaults::default());
    let later = host.restarted();
    let done = Mtpw::default()
        .run(&later.context(), sequence("seq-2", "K2"))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    assert_eq!(creates(&fake), 2);
}

#[tokio::test]
async fn a_refusal_after_the_choice_stops_further_creates() {
    let fake = later_api_fake().await;
    let host = host_without_choice(&fake);
    fake.set_mapillary_check(MapillaryCheck::V3Retired);
    let refused = Mtpw::default()
        .run(&host.context(), chosen(sequence("seq-1", "K1")))
        .await
        .unwrap();
    assert_eq!(refused.state, SequenceState::Waiting, "{refused:?}");
    assert_eq!(creates(&fake), 1);
    let held = Mtpw::default()
        .run(&host.context(), sequence("seq-2", "K2"))
        .await
        .unwrap();
    assert_eq!(held.state, SequenceState::Waiting, "{held:?}");
    let message = held.message.clone().unwrap();
    assert!(
        message.contains("refused the Mapillary token last time"),
        "{message}"
    );
    assert!(held
        .next_action
        .unwrap()
        .contains("--option mtpw.create=true"));
    assert_eq!(creates(&fake), 1, "no create after the refusal");
    // `MTP_WEB_CREATE_SEQUENCES=true` does not override a refusal either: only a new choice does.
    let with_env = host
        .restarted()
        .with_env("MTP_WEB_CREATE_SEQUENCES", "true");
    Mtpw::default()
        .run(&with_env.context(), sequence("seq-2", "K2"))
        .await
        .unwrap();
    assert_eq!(creates(&fake), 1);
    Mtpw::default()
        .run(&with_env.context(), chosen(sequence("seq-2", "K2")))
        .await
        .unwrap();
    assert_eq!(creates(&fake), 2);
}

#[tokio::test]
async fn a_server_that_imported_before_creates_without_being_asked() {
    let fake = later_api_fake().await;
    let host = host_without_choice(&fake);
    let first = Mtpw::default()
        .run(&host.context(), chosen(sequence("seq-1", "K1")))
        .await
        .unwrap();
    assert_eq!(first.state, SequenceState::Published, "{first:?}");
    let later = host.restarted();
    let second = Mtpw::default()
        .run(&later.context(), sequence("seq-2", "K2"))
        .await
        .unwrap();
    assert_eq!(second.state, SequenceState::Published, "{second:?}");
    assert_eq!(creates(&fake), 2);
}

#[tokio::test]
async fn the_env_choice_creates_on_a_fresh_server_and_a_bad_value_is_named() {
    let fake = later_api_fake().await;
    let done = Mtpw::default()
        .run(&host(&fake).context(), sequence("seq-1", "K1"))
        .await
        .unwrap();
    assert_eq!(done.state, SequenceState::Published, "{done:?}");
    assert_eq!(creates(&fake), 1);

    let second_server = later_api_fake().await;
    let bad = host_without_choice(&second_server).with_env("MTP_WEB_CREATE_SEQUENCES", "sometimes");
    let err = Mtpw::default()
        .run(&bad.context(), sequence("seq-1", "K1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert_eq!(
        err.message,
        "MTP_WEB_CREATE_SEQUENCES in .env must be true or false, not \"sometimes\""
    );
    assert_eq!(creates(&second_server), 0);
}
