//! Candidate events for a SIEM, and the run summary.
