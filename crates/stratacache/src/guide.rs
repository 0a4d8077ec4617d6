//!
//! Every Rust example in these pages is compiled and run by `cargo test --doc -p stratacache
//! --all-features`. On GitHub, start from `docs/guide/README.md`. The links between pages
//! point at the `.md` files and work on GitHub; in this rendering, use the modules below.

#[doc = include_str!("../../../docs/guide/README.md")]
pub mod index {}

#[doc = include_str!("../../../docs/guide/getting-started.md")]
pub mod getting_started {}

#[doc = include_str!("../../../docs/guide/backends.md")]
pub mod backends {}

#[doc = include_str!("../../../docs/guide/serializers.md")]
pub mod serializers {}

#[doc = include_str!("../../../docs/guide/plugins.md")]
pub mod plugins {}

#[doc = include_str!("../../../docs/guide/layers.md")]
pub mod layers {}

#[doc = include_str!("../../../docs/guide/configuration.md")]
pub mod configuration {}

#[doc = include_str!("../../../docs/guide/environments.md")]
pub mod environments {}

#[doc = include_str!("../../../docs/guide/migrating-from-aiocache.md")]
pub mod migrating_from_aiocache {}

#[cfg(feature = "macros")]
#[doc = include_str!("../../../docs/guide/decorators.md")]
pub mod decorators {}
