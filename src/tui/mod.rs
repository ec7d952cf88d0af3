//! The console: a full-screen terminal UI over the store, with the engine embedded or
//! attached to another process's. Input → state → view: keys become actions on `App`, a
//! loader task turns store reads into snapshots, and a frame is drawn only when something
//! visible changed.

pub mod commands;
pub mod demo;
#[cfg(feature = "fixtures")]
pub mod fixture;
pub mod keys;
#[cfg(feature = "fixtures")]
pub mod render;
pub mod snapshot;
pub mod state;
#[cfg(feature = "fixtures")]
pub mod svg;
pub mod terminal;
pub mod theme;
pub mod view;

pub use run::{FULL_READ_PACE, Launch, run};
mod run;
