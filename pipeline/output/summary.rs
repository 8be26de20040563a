//! The short account a run prints on standard error: what it read, what it rejected, what it
//! left out and why, and its candidates by decision and reason.

use std::collections::BTreeMap;
use std::fmt;

use super::CandidateEvent;
use crate::inputs::Estate;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub central_files: usize,
    pub central_records: usize,
    pub ldif_files: usize,
    pub ldif_entries: usize,
    pub action_records: usize,
    pub rejects: usize,
    /// Retired matches held back: already deleted, under an open ticket, seen too recently.
    pub left_out_deleted: u64,
    pub left_out_ticket: u64,
    pub left_out_recent: u64,
    pub by_decision: BTreeMap<String, usize>,
    pub by_reason: BTreeMap<String, usize>,
}

impl Summary {
    pub fn new(estate: &Estate, events: &[CandidateEvent]) -> Summary {
        let mut summary = Summary {
            central_files: estate.central.files,
            central_records: estate.central.records,
            ldif_files: estate.directory.files,
            ldif_entries: estate.directory.entries,
            action_records: estate.actions.records,
            rejects: estate.rejects.len(),
            ..Summary::default()
        };
        for event in events {
            *summary
                .by_decision
                .entry(event.decision.clone())
                .or_default() += 1;
            for reason in &event.reasons {
                *summary.by_reason.entry(reason.clone()).or_default() += 1;
            }
        }
        summary
    }

    pub fn candidates(&self) -> usize {
        self.by_decision.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "read: {} endpoint records in {} page files, {} LDIF entries in {} files, {} actions",
            self.central_records,
            self.central_files,
            self.ldif_entries,
            self.ldif_files,
            self.action_records
        )?;
        if self.rejects > 0 {
            writeln!(
                f,
                "rejected: {} records (skipped; no `delete` where they could matter)",
                self.rejects
            )?;
        }
        writeln!(
            f,
            "left out: {} already deleted, {} under an open ticket, {} seen too recently",
            self.left_out_deleted, self.left_out_ticket, self.left_out_recent
        )?;

        let decisions: Vec<String> = self
            .by_decision
            .iter()
            .map(|(decision, n)| format!("{decision} {n}"))
            .collect();
        let decisions = if decisions.is_empty() {
            "none".into()
        } else {
            decisions.join(", ")
        };
        writeln!(f, "candidates: {} ({decisions})", self.candidates())?;

        for (reason, n) in &self.by_reason {
            writeln!(f, "  {reason:<24} {n}")?;
        }
        Ok(())
    }
}
