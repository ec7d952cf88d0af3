//! hookctl: a webhook delivery engine and its operations console.

pub mod catalog;
pub mod config;
pub mod ids;
pub mod model;
pub mod netguard;
pub mod signing;
pub mod store;
