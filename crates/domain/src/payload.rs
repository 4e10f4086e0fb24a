//! What an event payload must be: JSON that every receiver's parser takes.
//!
//! `serde_json`'s own "ignore this value" path skims strings and numbers
//! without decoding them, so invalid UTF-8 inside a string, a lone
//! surrogate escape (`"\ud800"`) or a number no parser can hold
//! (`1e999999`) would pass it and reach subscribers (an envelope built
//! around such a payload is itself invalid JSON). [`check_json`] decodes
//! every string and number instead, without building a tree (strings are
//! borrowed, nothing is kept), and refuses nesting deeper than
//! [`MAX_DEPTH`].

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Arrays and objects nested deeper than this are refused: `serde_json`'s
/// own recursion limit (128 frames, the outermost value being one), which
/// also bounds the stack this check uses.
pub const MAX_DEPTH: usize = 127;

/// Why a payload was refused, in words a publisher can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("is required (UTF-8 JSON)")]
    Empty,
    #[error("is {size} bytes, over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("nests arrays or objects deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("is not valid JSON ({0})")]
    Invalid(String),
}

/// Checks that `bytes` is one JSON value, at most `max` bytes, with valid
/// UTF-8 strings (no lone surrogates), finite numbers and at most
/// [`MAX_DEPTH`] levels of nesting.
pub fn check_json(bytes: &[u8], max: usize) -> Result<(), PayloadError> {
    if bytes.is_empty() {
        return Err(PayloadError::Empty);
    }
    if bytes.len() > max {
        return Err(PayloadError::TooLarge { size: bytes.len(), max });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Checked::deserialize(&mut de).and_then(|_| de.end()).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            PayloadError::TooDeep
        } else {
            PayloadError::Invalid(e.to_string())
        }
    })
}

/// A JSON value that was fully decoded and then dropped.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Checked, E> {
        if v.is_finite() { Ok(Checked) } else { Err(E::custom("a number out of range")) }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_receivers_would_choke_on_is_refused() {
        let invalid: &[&[u8]] = &[
            b"{\"a\":\"\xff\xfe\"}", // invalid UTF-8 inside a string
            b"{\"\xc3\":1}",         // ... inside a key
            br#"{"a":"\ud800"}"#,    // lone leading surrogate
            br#"{"a":"\udc00x"}"#,   // lone trailing surrogate
            br#"{"a":1e999999}"#,    // no f64 holds it
            br#"[-1e400]"#,
            br#"{"a":1} trailing"#,
            br#"{"a":"#,
        ];
        for bytes in invalid {
            let err = check_json(bytes, 1024).expect_err(&String::from_utf8_lossy(bytes));
            assert!(matches!(err, PayloadError::Invalid(_)), "{err}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check_json(deep(100_000).as_bytes(), 1 << 20), Err(PayloadError::TooDeep));
        assert_eq!(check_json(deep(MAX_DEPTH + 1).as_bytes(), 1 << 20), Err(PayloadError::TooDeep));
        assert_eq!(check_json(deep(MAX_DEPTH).as_bytes(), 1 << 20), Ok(()));
    }

    #[test]
    fn ordinary_json_passes_and_size_comes_first() {
        let ok = br#"{"nested":{"a":[1,2.5,-3e10,{"b":null,"c":true}],"s":"caf\u00e9 \ud83d\ude00 \u00fc"}}"#;
        assert_eq!(check_json(ok, 1024), Ok(()));
        assert_eq!(check_json(b"\"just a string\"", 1024), Ok(()));
        assert_eq!(check_json(b"", 10), Err(PayloadError::Empty));
        assert_eq!(check_json(&[b' '; 11], 10), Err(PayloadError::TooLarge { size: 11, max: 10 }));
    }
}
