//! Operator tooling apart from the product: generated data and the benchmarks.

pub mod bench_load;
pub mod bench_reports;
pub mod seed;
