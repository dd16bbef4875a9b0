//! The shared "everything once" check over a fake Mapillary's stats: each way a run can lose, duplicate
//! or leave behind an image makes it fail (so the end-to-end tests and benchmarks relying on it can).

use mtp_fakes::fake_mapillary::{
    EntityKind, EntityStats, MapillaryStats, PublishedImage, PublishedSequence, SequenceOrigin,
};

fn entity(kind: EntityKind, handle: &str) -> EntityStats {
    EntityStats {
        offset: 1000,
        bytes_received_total: 1000,
        bytes_resent: 0,
        handle: (kind != EntityKind::Incomplete).then(|| handle.to_string()),
        completions: u32::from(kind != EntityKind::Incomplete),
        refinishes: 0,
        bytes_after_complete: 0,
        kind,
        md5_hex: None,
        image: None,
    }
}

fn image(key: &str) -> PublishedImage {
    PublishedImage {
        id: format!("id-{key}"),
        entity_key: Some(key.to_string()),
        handle: Some(format!("h-{key}")),
        captured_at_ms: Some(0),
        lat: Some(0.0),
        lon: Some(0.0),
    }
}

fn sequence(key: &str, manifest: &str, images: &[&str]) -> PublishedSequence {
    PublishedSequence {
        key: key.to_string(),
        origin: SequenceOrigin::Upload,
        manifest_handle: Some(manifest.to_string()),
        cluster_id: Some("1".into()),
        images: images.iter().map(|k| image(k)).collect(),
    }
}

/// Two sequences (a, b | c), their manifests published once each.
fn good() -> MapillaryStats {
    let mut stats = MapillaryStats::default();
    for key in ["a", "b", "c"] {
        stats
            .entities
            .insert(key.into(), entity(EntityKind::Image, &format!("h-{key}")));
    }
    for m in ["m1", "m2"] {
        stats
            .entities
            .insert(format!("manifest-{m}"), entity(EntityKind::Manifest, m));
        stats.finish_upload_calls.insert(m.into(), 1);
    }
    stats.sequences = vec![
        sequence("S1", "m1", &["a", "b"]),
        sequence("S2", "m2", &["c"]),
    ];
    stats
}

fn fails(stats: &MapillaryStats, images: usize, sequences: usize, says: &str) {
    let err = stats
        .check_published_exactly_once(images, sequences)
        .expect_err("the check must fail");
    assert!(err.to_string().contains(says), "{err}");
}

#[test]
fn everything_once_passes() {
    good().check_published_exactly_once(3, 2).unwrap();
}

#[test]
fn an_image_twice_in_one_sequence_fails() {
    let mut stats = good();
    stats.sequences[0].images.push(image("a"));
    fails(&stats, 3, 2, "holds image a twice");
}

#[test]
fn an_image_in_two_sequences_fails() {
    let mut stats = good();
    stats.sequences[1].images.push(image("a"));
    fails(&stats, 3, 2, "is in sequences S1 and S2");
}

#[test]
fn a_manifest_published_twice_fails() {
    let mut stats = good();
    stats.finish_upload_calls.insert("m1".into(), 2);
    fails(&stats, 3, 2, "expected one finish_upload");
}

#[test]
fn a_missing_image_or_sequence_fails() {
    fails(&good(), 4, 2, "hold 3 images, expected 4");
    fails(
        &good(),
        3,
        3,
        "2 sequences published from uploads, expected 3",
    );
}

#[test]
fn an_orphaned_partial_entity_fails() {
    let mut stats = good();
    stats
        .entities
        .insert("d".into(), entity(EntityKind::Incomplete, ""));
    fails(&stats, 3, 2, "entity d left behind");
}

#[test]
fn an_image_in_no_sequence_fails() {
    let mut stats = good();
    stats
        .entities
        .insert("e".into(), entity(EntityKind::Image, "h-e"));
    fails(&stats, 3, 2, "image entity e is in no published sequence");
}

/// A manifest of an abandoned publish attempt (killed before `finish_upload`) is expected: every attempt
/// uploads its own manifest entity, as mapillary_tools does. Images are what must be published once.
#[test]
fn an_abandoned_manifest_of_an_earlier_attempt_passes() {
    let mut stats = good();
    stats
        .entities
        .insert("manifest-m3".into(), entity(EntityKind::Manifest, "m3"));
    stats.check_published_exactly_once(3, 2).unwrap();
}

#[test]
fn a_pending_publication_fails() {
    let mut stats = good();
    stats.pending_publications = 1;
    fails(&stats, 3, 2, "publications still pending");
}
