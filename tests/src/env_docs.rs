//! `.env.example` and README's key table, generated from the manifests as `mtp integrations list --json`
//! shows them, so the documents cannot drift from what the providers declare
//! (`tests/tests/env_docs.rs` compares; `MTP_BLESS=1` rewrites them).

use serde_json::Value;

/// The first lines of `.env.example`, before the generated sections.
const EXAMPLE_PREAMBLE: &str = "\
# mtp reads this file as ./.env (or --env-file PATH); the process environment overrides it.
# An integration is enabled only when every key it requires is present and non-empty.
# Never commit real credentials: copy this file to .env and fill it in there.
# Every key is commented out, so a copy enables nothing: uncomment and fill in the keys of the
# integrations you use (the required ones say Required).
# Generated from the integrations' manifests (tests/tests/env_docs.rs checks it; MTP_BLESS=1 rewrites it).
";

/// The markers around the generated table in README.md.
pub const TABLE_START: &str =
    "<!-- env-table:start (generated from the manifests by tests/tests/env_docs.rs) -->";
/// See [`TABLE_START`].
pub const TABLE_END: &str = "<!-- env-table:end -->";

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

fn keys(integration: &Value) -> Vec<&Value> {
    integration["env"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The integrations of `list` (the JSON of `mtp integrations list`), loaded ones only, upstream first.
pub fn in_chain_order(list: &Value) -> Vec<&Value> {
    let mut loaded: Vec<&Value> = list
        .as_array()
        .map(|a| a.iter().filter(|i| i["loaded"] == true).collect())
        .unwrap_or_default();
    loaded.sort_by_key(|i| {
        (
            i["after"].as_array().map_or(0, Vec::len),
            text(i, "id").to_string(),
        )
    });
    loaded
}

/// `.env.example` for `list`.
pub fn env_example(list: &Value) -> String {
    let mut out = String::from(EXAMPLE_PREAMBLE);
    for integration in in_chain_order(list) {
        let after: Vec<&str> = integration["after"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let chained = if after.is_empty() {
            String::new()
        } else {
            format!(
                "; runs after {}, which must be enabled too",
                after.join(", ")
            )
        };
        out.push_str(&format!(
            "\n# --- {} ({}): {}{chained} ---\n",
            text(integration, "name"),
            text(integration, "id"),
            text(integration, "description"),
        ));
        for key in keys(integration) {
            let help = text(key, "help");
            let required = key["required"] == true;
            let mut comment = help.to_string();
            if required {
                comment.push_str(" Required.");
            }
            if let Some(default) = key["default"].as_str() {
                comment.push_str(&format!(" Default: {default}."));
            }
            for line in wrap(comment.trim(), 100) {
                out.push_str(&format!("# {line}\n"));
            }
            let example = key["example"]
                .as_str()
                .or(key["default"].as_str())
                .unwrap_or_default();
            let name = text(key, "key");
            // Commented out, required keys too: placeholders must never enable an integration (an
            // `ARCHIVE_DIR=/path/to/archive` copied unchanged would be created).
            out.push_str(&format!("# {name}={example}\n"));
        }
    }
    out
}

/// README's key table (between the markers) for `list`.
pub fn readme_table(list: &Value) -> String {
    let mut out = format!(
        "{TABLE_START}\n| key | integration | required | secret | default | meaning |\n| --- | --- | --- | --- | --- | --- |\n"
    );
    for integration in in_chain_order(list) {
        for key in keys(integration) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                text(key, "key"),
                text(integration, "id"),
                if key["required"] == true { "yes" } else { "no" },
                if key["secret"] == true { "yes" } else { "no" },
                key["default"]
                    .as_str()
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_default(),
                text(key, "help").replace('|', "\\|"),
            ));
        }
    }
    out.push_str(TABLE_END);
    out
}

/// `readme` with its generated table replaced by `table`; `None` without both markers.
pub fn with_table(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(TABLE_START)?;
    let end = readme[start..].find(TABLE_END)? + start + TABLE_END.len();
    Some(format!("{}{table}{}", &readme[..start], &readme[end..]))
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
