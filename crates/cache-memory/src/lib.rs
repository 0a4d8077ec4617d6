#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod clock;
mod store;

pub use backend::{MAX_TTL, MemoryBackend};
pub use clock::{Clock, ManualClock, SystemClock};
