//! lastseen finds Sophos Central endpoints whose computers are retired in Active Directory and
//! hands them to a SIEM as candidate-deletion events, with the evidence for each decision.
//!
//! The stages live one folder each: `central` and `ad` collect the inputs from Sophos Central
//! and Active Directory (and `central` also simulates the Central API), `inputs` reads Central
//! pages, LDIF exports and the action log into Arrow batches, `correlate` joins them with the
//! SQL in `queries/`, `output` turns the candidates into SIEM events, `bus` carries the same
//! stages over Kafka (`publish` and `correlate`), and `generate` builds synthetic estates for
//! tests and benches.

pub mod ad;
pub mod bus;
pub mod central;
pub mod config;
pub mod correlate;
pub mod demo;
pub mod generate;
pub mod inputs;
pub mod logging;
pub mod output;
pub mod run;
pub mod sql;
