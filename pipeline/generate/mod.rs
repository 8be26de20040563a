//! Synthetic estates for tests and benchmarks.
