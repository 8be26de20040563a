//! Readers for the inputs of a run: Central endpoint pages, LDIF exports and the action log.

pub mod dn;
