#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod builder;
mod clock;
mod config;
mod error;
mod generations;
mod local;
mod store;

pub use backend::{MAX_TTL, MemoryBackend};
pub use builder::MemoryBuilder;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{MEMORY_SCHEME, MemoryConfig, SCHEMES};
pub use local::{EntryTooLarge, LocalStore};
