//! The Lua scripts of the commands Redis has no single command for, and how they are sent.

use bytes::Bytes;
use fred::error::Error as FredError;
use fred::interfaces::ClientLike;
use fred::prelude::{Key, Value};
use fred::types::{ClusterHash, CustomCommand, FromValue};
use fred::util::redis_keyslot;

use crate::error::is_noscript;

/// A Lua script sent as `EVALSHA`, falling back to `EVAL` when the server does not know it
/// (after a restart or `SCRIPT FLUSH`). Sent as custom commands, which every fred client type
/// (options, pipelines) supports.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) lua: &'static str,
    /// SHA-1 of `lua` in hex, as `SCRIPT LOAD` answers it (checked by a unit test).
    pub(crate) sha1: &'static str,
}

/// `EVALSHA` / `EVAL`, routed on a cluster to the slot of the script's keys (fred hashes a
/// custom command by its first argument, here the script, unless given the slot).
pub(crate) fn script_command(by_hash: bool, keys: &[Key]) -> CustomCommand {
    let name = if by_hash { "EVALSHA" } else { "EVAL" };
    let hash = match keys.first() {
        Some(key) => ClusterHash::Custom(redis_keyslot(key.as_bytes())),
        None => ClusterHash::Random,
    };
    CustomCommand::new_static(name, hash, false)
}

/// The arguments of `EVAL`/`EVALSHA`: script, key count, keys, arguments.
pub(crate) fn script_args(script: Value, keys: Vec<Key>, args: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(2 + keys.len() + args.len());
    out.push(script);
    out.push(Value::Integer(keys.len() as i64));
    out.extend(keys.into_iter().map(|k| Value::Bytes(k.into_bytes())));
    out.extend(args);
    out
}

/// Runs `script` on `client` by hash, and by text if the server does not have it cached.
pub(crate) async fn run<R, C>(
    client: &C,
    script: &Script,
    keys: Vec<Key>,
    args: Vec<Value>,
) -> Result<R, FredError>
where
    R: FromValue,
    C: ClientLike,
{
    let (by_hash, by_text) = (script_command(true, &keys), script_command(false, &keys));
    let sha1 = Value::Bytes(Bytes::from_static(script.sha1.as_bytes()));
    let mut argv = script_args(sha1, keys, args);
    match client.custom::<R, Value>(by_hash, argv.clone()).await {
        Err(e) if is_noscript(&e) => {
            argv[0] = Value::Bytes(Bytes::from_static(script.lua.as_bytes()));
            client.custom::<R, Value>(by_text, argv).await
        }
        other => other,
    }
}

/// `get_with_ttl` of keys of one hash slot, as a [`Script`].
pub(crate) const ENTRIES: Script = Script {
    lua: ENTRIES_LUA,
    sha1: "34f8709029e26b853af563290bd67bf5ee75d416",
};

/// `compare_and_set` with an expected value, as a [`Script`].
pub(crate) const CAS: Script = Script {
    lua: CAS_LUA,
    sha1: "cd85d25289d4cecfb3703518ecd9cc28cc072c94",
};

/// `compare_and_delete`, as a [`Script`].
pub(crate) const CAD: Script = Script {
    lua: CAD_LUA,
    sha1: "b6a796aa8d73bb4ce6e26afe648196d086a8d1f1",
};

/// `expire(key, None)`, as a [`Script`].
pub(crate) const PERSIST: Script = Script {
    lua: PERSIST_LUA,
    sha1: "f0f51002038002ef83d61771704fe9b1c0ec5751",
};

/// `multi_set` with a TTL, as a [`Script`].
pub(crate) const SET_MANY_PX: Script = Script {
    lua: SET_MANY_PX_LUA,
    sha1: "f4820aa0625d3c22a2de11a2162222155ee2d9a3",
};

/// Every command of a cache with namespace generations, as a [`Script`].
pub(crate) const GENERATION: Script = Script {
    lua: GENERATION_LUA,
    sha1: "4192222820c2205de9b013459a602f5f5a901bb9",
};

/// Every command of a cache with namespace generations: reads the namespace's generation and
/// runs the command on the keys with the generation folded in, in one step, so a command
/// never meets a key of an older generation. KEYS[1] = the generation counter
/// (`{group}#g`); ARGV[1] = a random generation, for a counter that is missing (never made,
/// evicted, lost with a restart); ARGV[2] = the folded group (`{group}`); ARGV[3] = the
/// operation; ARGV[4..] = its arguments, keys as the text after their group. Keys are built
/// from the counter's value, so they are not in KEYS; they share the counter's hash tag,
/// hence its slot on a cluster. `clear` increments the counter and answers the new
/// generation. Integers cross Lua as doubles, exact only below 2^53: the generation and a
/// counter's new value are answered as the stored text, never as a Lua number.
const GENERATION_LUA: &str = r"local g = redis.call('GET', KEYS[1])
local op = ARGV[3]
if op == 'clear' then
  if not g then redis.call('SET', KEYS[1], ARGV[1]) end
  redis.call('INCR', KEYS[1])
  return redis.call('GET', KEYS[1])
end
if not g then
  g = ARGV[1]
  redis.call('SET', KEYS[1], g)
end
local p = ARGV[2] .. g .. '.'
if op == 'get' then
  return redis.call('GET', p .. ARGV[4])
elseif op == 'mget' then
  local out, ks = {}, {}
  for i = 4, #ARGV do
    ks[#ks + 1] = p .. ARGV[i]
    if #ks == 256 or i == #ARGV then
      local vs = redis.call('MGET', unpack(ks))
      for j = 1, #ks do out[#out + 1] = vs[j] end
      ks = {}
    end
  end
  return out
elseif op == 'entries' then
  local out = {}
  for i = 4, #ARGV do
    local k = p .. ARGV[i]
    out[2 * i - 7] = redis.call('GET', k)
    out[2 * i - 6] = redis.call('PTTL', k)
  end
  return out
elseif op == 'set' then
  local a = {p .. ARGV[4], ARGV[5]}
  if ARGV[6] ~= '' then a[3] = 'PX'; a[4] = ARGV[6] end
  if ARGV[7] ~= '' then a[#a + 1] = 'NX' end
  if redis.call('SET', unpack(a)) then return 1 end
  return 0
elseif op == 'mset' then
  for i = 5, #ARGV, 2 do
    if ARGV[4] == '' then
      redis.call('SET', p .. ARGV[i], ARGV[i + 1])
    else
      redis.call('SET', p .. ARGV[i], ARGV[i + 1], 'PX', ARGV[4])
    end
  end
  return 1
elseif op == 'del' then
  local n = 0
  for i = 4, #ARGV do n = n + redis.call('UNLINK', p .. ARGV[i]) end
  return n
elseif op == 'exists' then
  return redis.call('EXISTS', p .. ARGV[4])
elseif op == 'incrby' then
  local k = p .. ARGV[4]
  redis.call('INCRBY', k, ARGV[5])
  return redis.call('GET', k)
elseif op == 'expire' then
  local k = p .. ARGV[4]
  if ARGV[5] ~= '' then return redis.call('PEXPIRE', k, ARGV[5]) end
  if redis.call('EXISTS', k) == 0 then return 0 end
  redis.call('PERSIST', k)
  return 1
elseif op == 'pttl' then
  return redis.call('PTTL', p .. ARGV[4])
elseif op == 'cas' then
  local k = p .. ARGV[4]
  if redis.call('GET', k) ~= ARGV[5] then return 0 end
  if ARGV[7] == '' then
    redis.call('SET', k, ARGV[6])
  else
    redis.call('SET', k, ARGV[6], 'PX', ARGV[7])
  end
  return 1
elseif op == 'cad' then
  local k = p .. ARGV[4]
  if redis.call('GET', k) == ARGV[5] then return redis.call('DEL', k) end
  return 0
end
return redis.error_reply('ERR unknown generation operation ' .. op)";

/// `get_with_ttl` of every key of KEYS (one hash slot on a cluster; duplicates allowed): per
/// key its value (nil when missing) and its `PTTL`, flat — `{value1, pttl1, value2, pttl2,
/// …}` — read in one step, so a value and its lifetime belong together. `PTTL` crosses Lua
/// as a double, exact for any lifetime Redis can hold (below 2^53 ms).
const ENTRIES_LUA: &str = r"local out = {}
for i = 1, #KEYS do
  out[2 * i - 1] = redis.call('GET', KEYS[i])
  out[2 * i] = redis.call('PTTL', KEYS[i])
end
return out";

/// `compare_and_set` with an expected value. KEYS[1] = key; ARGV = expected, new value, TTL
/// in milliseconds or empty for none. Returns 1 when it wrote, 0 when the value differed or
/// the key was missing.
const CAS_LUA: &str = r"local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1";

/// `compare_and_delete`: KEYS[1] = key, ARGV[1] = expected value. Returns 1 when it
/// removed the key, 0 when the value differed or the key was missing.
const CAD_LUA: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// `expire(key, None)`: removes the expiry and answers whether the key exists (`PERSIST`
/// alone answers 0 both for a missing key and for a key without expiry).
const PERSIST_LUA: &str = r"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1";

/// `multi_set` with a TTL, atomically: ARGV[1] = TTL in milliseconds, ARGV[i + 1] = value of
/// KEYS[i]. Equivalent to `MSET` followed by `PEXPIRE` of every key, in one step.
pub(crate) const SET_MANY_PX_LUA: &str = r"local ttl = ARGV[1]
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ttl)
end
return #KEYS";

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-1 (FIPS 180-4), only to check the script hashes without a dependency.
    fn sha1_hex(data: &[u8]) -> String {
        let mut h: [u32; 5] = [
            0x6745_2301,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 80];
            for (i, word) in block.chunks(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b, mut c, mut d, mut e] = h;
            for (i, wi) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                    20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                    40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                    _ => (b ^ c ^ d, 0xCA62_C1D6),
                };
                let t = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k)
                    .wrapping_add(*wi);
                (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
                *x = x.wrapping_add(y);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }

    #[test]
    fn script_hashes_match_their_text() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        for script in [CAS, CAD, PERSIST, SET_MANY_PX, GENERATION, ENTRIES] {
            assert_eq!(
                script.sha1,
                sha1_hex(script.lua.as_bytes()),
                "{}",
                script.lua
            );
        }
    }
}
