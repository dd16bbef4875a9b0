//! Writes one image per corruption kind into a directory (for eyeballing `inspect`):
//! `cargo run -p mtp-sequence --example corruptions -- <dir>`.

use mtp_sequence::generate::{write_image, Corruption, ImageSpec};

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "corruptions".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let kinds = [
        ("ok", None),
        ("truncated_file", Some(Corruption::TruncatedFile)),
        ("truncated_header", Some(Corruption::TruncatedHeader)),
        ("garbage_exif", Some(Corruption::GarbageExif)),
        ("truncated_exif", Some(Corruption::TruncatedExif)),
        ("not_a_jpeg", Some(Corruption::NotAJpeg)),
    ];
    for (i, (name, corruption)) in kinds.into_iter().enumerate() {
        let spec = ImageSpec {
            captured_at_ms: Some(1_600_000_000_000 + i as i64 * 1000),
            corruption,
            ..ImageSpec::default()
        };
        write_image(&dir.join(format!("{i}_{name}.jpg")), &spec)?;
    }
    Ok(())
}
