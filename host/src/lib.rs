//! The mtp host: finds integration plugins, loads them through the stable ABI, gates them by `.env`,
//! chains them, and runs sequences through them while persisting state.

pub mod authorize;
pub mod env;
pub mod loader;
pub mod registry;
pub mod runner;
pub mod services;
pub mod state;
pub mod table;
