//! The conformance cases: one function per rule of the behaviour contract.
//!
//! Each case panics (fails) when the backend breaks its rule.
//!
//! The cases are grouped by command, one file each; every case is re-exported here, so a case
//! is `cases::<name>` whatever its file.

use serde::{Deserialize, Serialize};

use crate::{ErrorKind, Result};

mod add_cas;
mod clear_namespace;
mod delete_exists;
mod expire_ttl;
mod get_or_set;
mod get_set;
mod increment;
mod keys;
mod locks;
mod multi;
mod pipeline;
mod raw_close;
mod read_through;
mod serializers;
mod tags;

pub use self::add_cas::*;
pub use self::clear_namespace::*;
pub use self::delete_exists::*;
pub use self::expire_ttl::*;
pub use self::get_or_set::*;
pub use self::get_set::*;
pub use self::increment::*;
pub use self::keys::*;
pub use self::locks::*;
pub use self::multi::*;
pub use self::pipeline::*;
pub use self::raw_close::*;
pub use self::read_through::*;
pub use self::serializers::*;
pub use self::tags::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    tags: Vec<String>,
}

fn user(id: u64) -> User {
    User {
        id,
        name: format!("user-{id}"),
        tags: vec!["a".into(), "b".into()],
    }
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

/// Whether `s` is decimal integer text as counters store it: `-?[0-9]+` without leading zeros
/// (except `0`) and without `-0`.
#[doc(hidden)]
pub fn is_canonical_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0"
}
