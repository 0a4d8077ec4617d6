#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod local;
mod stats;
mod tiered;

pub use builder::{
    DEFAULT_LOCAL_TTL, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, MAX_LOCAL_TTL, TierBuilder,
    TierLayer, TierStatsHandle,
};
pub use cache_core::tier::{Invalidated, InvalidationSink, Invalidator, Locality};
pub use stats::TierStats;
