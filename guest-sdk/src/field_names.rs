//! The field names a `#[derive(Deserialize)]` struct accepts, read from serde itself, so an
//! initialiser need not list its parameter names a second time (a list that would drift).

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The names (with renames and aliases) `T` accepts, or `None` if `T` does not deserialize
/// as a plain struct (a map, or a struct with `#[serde(flatten)]`).
pub(crate) fn field_names<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut names = None;
    // Deserializing always fails: the recorder stops serde as soon as it has the names.
    let _ = T::deserialize(Recorder { names: &mut names });
    names
}

/// A deserializer that records the field list serde hands to `deserialize_struct`.
struct Recorder<'a> {
    names: &'a mut Option<&'static [&'static str]>,
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.names = Some(fields);
        Err(de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Plain {
        workspace: String,
        #[serde(rename = "flow-id")]
        flow_id: String,
        #[serde(default, alias = "over")]
        overwrite: bool,
    }

    #[test]
    fn struct_fields_come_with_renames_and_aliases() {
        let names = field_names::<Plain>().unwrap();
        for name in ["workspace", "flow-id", "overwrite", "over"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        assert!(!names.contains(&"flow_id"));
    }

    #[test]
    fn non_structs_have_no_field_names() {
        assert_eq!(field_names::<BTreeMap<String, String>>(), None);
        assert_eq!(field_names::<String>(), None);
    }
}
