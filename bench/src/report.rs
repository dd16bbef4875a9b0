//! The benchmark's result rows and how they are printed: a markdown table, or JSON.

use serde::Serialize;

use super::machine::Machine;

/// Whether a row met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The target was met.
    Met,
    /// The target was missed.
    Missed,
    /// A measurement without a target.
    Info,
    /// Not measured (the reason is in the row).
    Skipped,
    /// The measurement failed (the error is in the row).
    Error,
}

impl Verdict {
    /// The table cell.
    pub fn cell(self) -> &'static str {
        match self {
            Verdict::Met => "yes",
            Verdict::Missed => "**no**",
            Verdict::Info => "—",
            Verdict::Skipped => "skipped",
            Verdict::Error => "**error**",
        }
    }

    /// `Met` when `ok`, else `Missed`.
    pub fn from_bool(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Short id (`1a`, `2`, ...).
    pub id: String,
    /// What is measured.
    pub measure: String,
    /// mtp's figure.
    pub mtp: String,
    /// The baseline's or the peer's figure (or empty).
    pub other: String,
    /// The ratio or count the target is about.
    pub result: String,
    /// The target.
    pub target: String,
    /// Met or not.
    pub verdict: Verdict,
    /// The raw numbers, for `--json`.
    pub data: serde_json::Value,
}

impl Row {
    /// A row that could not be measured because of `err`.
    pub fn error(id: &str, measure: &str, err: &anyhow::Error) -> Row {
        Row {
            id: id.to_string(),
            measure: measure.to_string(),
            mtp: String::new(),
            other: String::new(),
            result: format!("error: {}", one_line(&format!("{err:#}"))),
            target: String::new(),
            verdict: Verdict::Error,
            data: serde_json::json!({ "error": format!("{err:#}") }),
        }
    }

    /// A row that was not measured, and why.
    pub fn skipped(id: &str, measure: &str, why: &str, target: &str) -> Row {
        Row {
            id: id.to_string(),
            measure: measure.to_string(),
            mtp: String::new(),
            other: String::new(),
            result: format!("skipped: {}", one_line(why)),
            target: target.to_string(),
            verdict: Verdict::Skipped,
            data: serde_json::json!({ "skipped": why }),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The command that reproduces it.
    pub command: String,
    /// Quick (smoke) mode or the full sizes.
    pub mode: String,
    /// Wall time of the whole benchmark, seconds.
    pub total_secs: f64,
    /// Versions of the things compared.
    pub versions: serde_json::Value,
    /// The rows, in order.
    pub rows: Vec<Row>,
    /// Notes printed under the table.
    pub notes: Vec<String>,
}

fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '|' { ' ' } else { c })
        .collect();
    if flat.chars().count() > 300 {
        format!("{}…", flat.chars().take(300).collect::<String>())
    } else {
        flat
    }
}

impl Report {
    /// The markdown rendering: machine, command, table, notes.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("Machine: {}\n\n", self.machine.describe()));
        out.push_str(&format!("Command: `{}`\n\n", self.command));
        let versions = self
            .versions
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "Mode: {}; total bench time {:.0} s; {versions}\n\n",
            self.mode, self.total_secs
        ));
        out.push_str("| # | Measure | mtp | Baseline / peer | Result | Target | Met |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.id,
                one_line(&r.measure),
                one_line(&r.mtp),
                one_line(&r.other),
                one_line(&r.result),
                one_line(&r.target),
                r.verdict.cell()
            ));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out
    }
}
