//! hookctl: a webhook delivery engine and its operations console.

pub mod catalog;
pub mod config;
pub mod engine;
pub mod ids;
pub mod model;
pub mod netguard;
pub mod signing;
pub mod store;
pub mod api;
pub mod cli;
pub mod sink;
