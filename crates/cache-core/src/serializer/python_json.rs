use std::io::{self, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::ser::Formatter;

use super::Serializer;
use crate::{Error, Json, Result};

/// JSON byte for byte as Python's `json.dumps` writes it with its defaults — what aiocache's
/// `JsonSerializer` stores: `", "` and `": "` separators and every non-ASCII character escaped
/// as `\uXXXX` (`ensure_ascii=True`). Use it with
/// [`AiocacheKeyBuilder`](crate::AiocacheKeyBuilder) when a Rust service and a Python aiocache
/// service share a server and their stored bytes must be identical. Decoding is plain JSON, so
/// it reads compact JSON too.
///
/// ```
/// use cache_core::{PythonJson, Serializer};
///
/// let bytes = PythonJson.encode(&serde_json::json!({"a": 1, "b": [1, 2], "é": "ü"})).unwrap();
/// assert_eq!(bytes, br#"{"a": 1, "b": [1, 2], "\u00e9": "\u00fc"}"#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PythonJson;

/// serde_json's compact formatter with Python's separators and ASCII-only output.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

impl Serializer for PythonJson {
    fn name(&self) -> &'static str {
        "python-json"
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
        value.serialize(&mut ser).map_err(|e| {
            Error::serialization("cannot encode value as JSON")
                .with_context("serializer", "python-json")
                .with_source(e)
        })?;
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        Json.decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_json_dumps() {
        // Outputs of Python 3.11 `json.dumps(value)` for the same values.
        let cases: [(serde_json::Value, &str); 6] = [
            (serde_json::json!({"a": 1}), r#"{"a": 1}"#),
            (
                serde_json::json!([1, "x", null, true, 1.5]),
                r#"[1, "x", null, true, 1.5]"#,
            ),
            (serde_json::json!({"n": {"m": []}}), r#"{"n": {"m": []}}"#),
            (serde_json::json!("caf\u{e9}"), r#""caf\u00e9""#),
            (serde_json::json!("\u{1F600}"), r#""\ud83d\ude00""#),
            (serde_json::json!("tab\t\"q\""), r#""tab\t\"q\"""#),
        ];
        for (value, python) in cases {
            let bytes = PythonJson.encode(&value).unwrap();
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), python);
            let back: serde_json::Value = PythonJson.decode(&bytes).unwrap();
            assert_eq!(back, value);
        }
    }
}
