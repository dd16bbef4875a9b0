//! The mtp host: finds integration plugins, loads them through the stable ABI, gates them by `.env`,
//! chains them, and runs sequences through them while persisting state. It knows no provider: what it
//! needs of one (env keys, options, exports, secret exports) comes from the provider's manifest.
//!
//! Where things live (docs/architecture.md has the picture): [`loader`] loads libraries, [`registry`]
//! gates them by [`env`] and orders the chain, [`runner`] runs sequences (with [`services`] lent to each
//! call and [`options`] checked against manifests), [`state`] persists records and plugin state,
//! [`authorize`] gets the user through consent pages, [`upload`] is the upload use case that every face
//! calls; the CLI (`src/cli`, with `mtp serve` in it) only parses and renders.

pub mod allocator;
pub mod authorize;
pub mod chain_check;
pub mod checkpoint;
pub mod destinations;
pub mod drift;
pub mod env;
pub mod exclusive;
pub mod exit;
pub mod identity;
pub mod library_names;
pub mod loader;
pub mod lock;
pub mod logout;
pub mod options;
pub mod packed_images;
pub mod recheck;
pub mod registry;
pub mod runner;
pub mod sequence_content;
mod sequence_payload;
pub mod services;
pub mod signals;
pub mod state;
pub mod table;
pub mod upload;
pub mod write_failure;
