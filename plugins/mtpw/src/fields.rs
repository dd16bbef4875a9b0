//! The sequence's fields as MTPW stores them, checked before any request against what the real server
//! would refuse (trek-view/mtp-web; docs/providers/mtpw.md has the rules and their sources).

use plugin_api::sequence::SequenceDescriptor;

/// `Sequence.name` is a `CharField(max_length=100)` (trek-view/mtp-web `sequence/models.py`): a longer
/// name makes the create fail with HTTP 500.
pub const MAX_NAME_CHARS: usize = 100;

/// `Tag.name` is a `CharField(max_length=50)` (trek-view/mtp-web `sys_setting/models.py`): a longer tag
/// makes the create fail with HTTP 500 *after* the sequence row was saved.
pub const MAX_TAG_CHARS: usize = 50;

/// `Tag.name`'s validator (`RegexValidator(r'^[0-9a-zA-Z-]*$')`, trek-view/mtp-web `sys_setting/models.py`).
pub fn tag_is_valid(tag: &str) -> bool {
    tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// What must be fixed before MTPW can take `sequence`, each naming the fix.
pub fn needs(sequence: &SequenceDescriptor) -> Vec<String> {
    let mut needs = Vec::new();
    if sequence.transport.is_none() {
        needs.push(
            "MTPW needs a transport type: pass --transport (e.g. --transport Earth/Walk) or set \
             `transport` in sequence.toml"
                .to_string(),
        );
    }
    let name = base_name(&sequence.name);
    if name.trim().is_empty() {
        needs.push("MTPW needs a sequence name: pass --name".to_string());
    } else if name.chars().count() > MAX_NAME_CHARS {
        needs.push(format!(
            "the name is {} characters long and MTPW stores at most {MAX_NAME_CHARS}: pass a shorter --name",
            name.chars().count()
        ));
    }
    for tag in &sequence.tags {
        if tag.chars().count() > MAX_TAG_CHARS {
            needs.push(format!(
                "tag {tag:?} is {} characters long and MTPW stores at most {MAX_TAG_CHARS}: pass --tag \
                 with shorter tags",
                tag.chars().count()
            ));
        } else if !tag_is_valid(tag) {
            needs.push(format!(
                "tag {tag:?} has characters MTPW does not allow in tags (only letters, digits and `-`): \
                 pass --tag with tags like {:?}",
                suggest_tag(tag)
            ));
        }
    }
    needs
}

fn suggest_tag(tag: &str) -> String {
    tag.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The `tag` form field, or `None` when there are no tags: an empty value would attach a tag named `""`
/// (the view splits the field on `,` without filtering). Lower-cased, because `Tag.save()` lower-cases
/// the name and the view then removes every tag not literally in the list it was sent.
pub fn tag_field(tags: &[String]) -> Option<String> {
    let tags: Vec<String> = tags
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    (!tags.is_empty()).then(|| tags.join(","))
}

/// MTPDU's own split parts are named `<name>_part_<n>`; it sent them to MTPW as `<name> Part <n>`
/// (trek-view/mtp-desktop-uploader `app/scripts/integrations/mtpw.ts` `postSequenceAPI`).
fn base_name(name: &str) -> String {
    name.replacen("_part_", " Part ", 1)
}

/// The MTPW name of part `index` (0-based) of `parts` Mapillary sequences: the name alone for one part,
/// else `<name> Part <n>` so that each part is told apart, shortened to fit MTPW's limit if need be.
pub fn part_name(name: &str, index: usize, parts: usize) -> String {
    let base = base_name(name);
    if parts <= 1 {
        return base;
    }
    let suffix = format!(" Part {}", index + 1);
    let room = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
    let mut shortened: String = base.chars().take(room).collect();
    shortened.truncate(shortened.trim_end().len());
    format!("{shortened}{suffix}")
}

/// The MTPW name of additional sequence `index` (0-based, in the order they were sent): images added to
/// the folder after it was published (`mtp upload --add-new-images`), told apart from the sequence itself.
/// A later one does not rename the earlier ones (the old API sends the name with every import).
pub fn added_name(name: &str, index: usize) -> String {
    let base = base_name(name);
    let suffix = if index == 0 {
        " (added images)".to_string()
    } else {
        format!(" (added images {})", index + 1)
    };
    let room = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
    let mut shortened: String = base.chars().take(room).collect();
    shortened.truncate(shortened.trim_end().len());
    format!("{shortened}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_like_mtpdu_did_and_distinct() {
        assert_eq!(part_name("Canal", 0, 1), "Canal");
        assert_eq!(part_name("Canal_part_2", 0, 1), "Canal Part 2");
        assert_eq!(part_name("Canal", 0, 3), "Canal Part 1");
        assert_eq!(part_name("Canal", 2, 3), "Canal Part 3");
        let long = "x".repeat(100);
        let named = part_name(&long, 11, 12);
        assert_eq!(named.chars().count(), 100);
        assert!(named.ends_with(" Part 12"));
    }

    #[test]
    fn added_images_are_named_apart_and_fit() {
        assert_eq!(added_name("Canal", 0), "Canal (added images)");
        assert_eq!(added_name("Canal", 1), "Canal (added images 2)");
        let named = added_name(&"x".repeat(100), 0);
        assert_eq!(named.chars().count(), 100);
        assert!(named.ends_with(" (added images)"));
    }

    #[test]
    fn tags_as_the_server_keeps_them() {
        assert_eq!(tag_field(&[]), None);
        assert_eq!(tag_field(&["".into()]), None);
        assert_eq!(
            tag_field(&["Canal".into(), "morning".into()]).as_deref(),
            Some("canal,morning")
        );
        assert!(tag_is_valid("river-2"));
        assert!(!tag_is_valid("río"));
        assert!(!tag_is_valid("two words"));
        assert_eq!(suggest_tag("two words"), "two-words");
    }
}
