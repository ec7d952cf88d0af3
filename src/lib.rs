//! hookctl: a webhook delivery engine and its operations console.

pub mod api;
pub mod audit;
#[cfg(feature = "bench")]
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod engine;
pub mod health;
pub mod ids;
pub mod incident;
pub mod ingest;
pub mod model;
pub mod netguard;
pub mod ops;
pub mod payload;
pub mod shapes;
pub mod signing;
pub mod sink;
pub mod store;
pub mod subscription;
pub mod template;
pub mod tui;
