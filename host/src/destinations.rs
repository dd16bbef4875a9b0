//! Which integrations an upload sends a sequence to: the destinations the user chose (`mtp upload --to`,
//! the page's checkboxes) plus what they need, or by default every integration that is ready. One that
//! is not ready is left out with its reason, unless a chosen one needs it (MTPW needs Mapillary's key):
//! then the upload is refused until it is ready, as before destinations existed.

use std::collections::BTreeSet;

use crate::chain_check::{required_upstreams, PlanEntry};
use crate::registry::Registry;

/// The integrations a run takes, and the ones left out with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The integrations the run takes (including the not eligible and skipped ones, which the run then
    /// reports as such).
    pub run: BTreeSet<String>,
    /// Integrations left out of this run, in chain order, each with the reason.
    pub left_out: Vec<(String, String)>,
}

/// Why `--to` cannot be used as given: it names an integration that is not enabled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownDestination(String);

/// Checks `chosen` against the chain of `registry`: each must be an enabled integration.
pub fn check(registry: &Registry, chosen: &[String]) -> Result<(), UnknownDestination> {
    let enabled: Vec<&str> = registry.chain().map(|i| i.id()).collect();
    for id in chosen {
        if enabled.contains(&id.as_str()) {
            continue;
        }
        let why = match registry.info(id) {
            Some(info) => format!(
                "{id} is not enabled{}",
                info.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            None => format!("there is no integration {id}"),
        };
        return Err(UnknownDestination(format!(
            "destination {why} (enabled: {})",
            if enabled.is_empty() {
                "none".to_string()
            } else {
                enabled.join(", ")
            }
        )));
    }
    Ok(())
}

/// The selection for `plan` (every enabled integration, in chain order): `chosen` and what they need,
/// or (`None`) every ready one.
pub fn select(registry: &Registry, plan: &[PlanEntry], chosen: Option<&[String]>) -> Selection {
    let needs_of = |id: &str| {
        registry
            .get(id)
            .map(|p| required_upstreams(&p.manifest))
            .unwrap_or_default()
    };
    let in_plan = |id: &str| plan.iter().any(|e| e.integration == id);
    let mut run: BTreeSet<String> = BTreeSet::new();
    let mut left_out = Vec::new();
    match chosen {
        Some(chosen) => {
            // The chosen ones and, transitively, every integration they need.
            let mut todo: Vec<String> = chosen.to_vec();
            while let Some(id) = todo.pop() {
                if in_plan(&id) && run.insert(id.clone()) {
                    todo.extend(needs_of(&id));
                }
            }
            for entry in plan.iter().filter(|e| !run.contains(&e.integration)) {
                left_out.push((entry.integration.clone(), "not chosen".to_string()));
            }
        }
        None => {
            let ready = |e: &PlanEntry| !e.runs() || e.needs.is_empty();
            run = plan
                .iter()
                .filter(|e| ready(e))
                .map(|e| e.integration.clone())
                .collect();
            // A ready integration that needs one left out cannot run either: leave it out too.
            loop {
                let blocked = plan.iter().find(|e| {
                    e.runs()
                        && run.contains(&e.integration)
                        && needs_of(&e.integration)
                            .iter()
                            .any(|up| in_plan(up) && !run.contains(up))
                });
                let Some(entry) = blocked else { break };
                run.remove(&entry.integration);
            }
            for entry in plan.iter().filter(|e| !run.contains(&e.integration)) {
                let reason = if entry.needs.is_empty() {
                    let up = needs_of(&entry.integration)
                        .into_iter()
                        .find(|up| in_plan(up) && !run.contains(up))
                        .unwrap_or_default();
                    format!("needs {up}, which is not ready")
                } else {
                    entry.needs.join("; ")
                };
                left_out.push((entry.integration.clone(), reason));
            }
        }
    }
    Selection { run, left_out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, needs: &[&str], not_eligible: bool) -> PlanEntry {
        PlanEntry {
            integration: id.to_string(),
            not_eligible: not_eligible.then(|| "transport type Air".to_string()),
            skipped: None,
            needs: needs.iter().map(|n| n.to_string()).collect(),
            not_logged_in: false,
            notes: Vec::new(),
        }
    }

    #[test]
    fn by_default_the_ready_ones_run_and_the_others_are_left_out_with_their_reason() {
        let registry = Registry::from_files(&[], &crate::env::EnvValues::default());
        let plan = [
            entry("mapillary", &[], false),
            entry("panoramax", &[], true),
            entry(
                "mtpw",
                &["not logged in to MTPW: run `mtp auth mtpw`"],
                false,
            ),
        ];
        let selection = select(&registry, &plan, None);
        assert_eq!(
            selection.run,
            BTreeSet::from(["mapillary".to_string(), "panoramax".to_string()])
        );
        assert_eq!(
            selection.left_out,
            [(
                "mtpw".to_string(),
                "not logged in to MTPW: run `mtp auth mtpw`".to_string()
            )]
        );
        let chosen = ["panoramax".to_string()];
        let selection = select(&registry, &plan, Some(&chosen));
        assert_eq!(selection.run, BTreeSet::from(["panoramax".to_string()]));
        assert_eq!(selection.left_out.len(), 2);
        assert!(selection.left_out.iter().all(|(_, r)| r == "not chosen"));
    }
}
