//! Streaming over the big array of a JSON document without holding the document.
//!
//! NVD's yearly feeds (and API answers, and the KEV catalog) are one JSON object whose
//! `vulnerabilities` member is an array of records, tens of megabytes uncompressed. Parsing the
//! whole object would hold every record at once. [`for_each_in_array`] instead drives
//! `serde_json`'s streaming deserializer with a [`DeserializeSeed`]: the top-level object is
//! visited key by key; the chosen array is visited element by element, each element
//! deserialised into `T` and handed to a callback, then dropped. Other top-level members are
//! kept when they are scalars (`timestamp`, `catalogVersion`, …) and skipped otherwise.
//! Memory is bounded by one element plus the callback's own buffer.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// Why streaming stopped.
#[derive(Debug)]
pub enum StreamError<E> {
    /// The JSON is malformed or an element does not fit `T` (with line and column).
    Json(serde_json::Error),
    /// The callback failed; streaming stopped at that element.
    Callback(E),
    /// The document has no member with the array's key.
    MissingKey,
}

/// Calls `on_item` for every element of the array at top-level member `key` of the JSON object
/// read from `reader`, and returns the object's other scalar members (as strings).
pub fn for_each_in_array<R, T, E>(
    reader: R,
    key: &str,
    on_item: &mut dyn FnMut(T) -> Result<(), E>,
) -> Result<BTreeMap<String, String>, StreamError<E>>
where
    R: Read,
    T: DeserializeOwned,
{
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut failure: Option<E> = None;
    let mut scalars = BTreeMap::new();
    let mut found = false;
    let seed = TopSeed {
        key,
        on_item,
        failure: &mut failure,
        scalars: &mut scalars,
        found: &mut found,
        _t: PhantomData,
    };
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    if let Some(e) = failure {
        return Err(StreamError::Callback(e));
    }
    result.map_err(StreamError::Json)?;
    if !found {
        return Err(StreamError::MissingKey);
    }
    Ok(scalars)
}

struct TopSeed<'a, T, E> {
    key: &'a str,
    on_item: &'a mut dyn FnMut(T) -> Result<(), E>,
    failure: &'a mut Option<E>,
    scalars: &'a mut BTreeMap<String, String>,
    found: &'a mut bool,
    _t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned, E> DeserializeSeed<'de> for TopSeed<'_, T, E> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned, E> Visitor<'de> for TopSeed<'_, T, E> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object with an array member {:?}", self.key)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            if k == self.key && !*self.found {
                *self.found = true;
                map.next_value_seed(ArraySeed::<T, E> {
                    on_item: &mut *self.on_item,
                    failure: &mut *self.failure,
                    _t: PhantomData,
                })?;
            } else {
                let v: Scalar = map.next_value()?;
                if let Some(s) = v.0 {
                    self.scalars.insert(k, s);
                }
            }
        }
        Ok(())
    }
}

struct ArraySeed<'a, T, E> {
    on_item: &'a mut dyn FnMut(T) -> Result<(), E>,
    failure: &'a mut Option<E>,
    _t: PhantomData<T>,
}

impl<'de, T: DeserializeOwned, E> DeserializeSeed<'de> for ArraySeed<'_, T, E> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned, E> Visitor<'de> for ArraySeed<'_, T, E> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<T>()? {
            if let Err(e) = (self.on_item)(item) {
                *self.failure = Some(e);
                return Err(de::Error::custom("stopped by the importer"));
            }
        }
        Ok(())
    }
}

/// A top-level member kept as a string when it is a scalar, skipped otherwise.
struct Scalar(Option<String>);

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.chars().take(200).collect())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        self.visit_str(&v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_the_array_and_keeps_scalars() {
        let doc =
            br#"{"format":"NVD_CVE","big":{"x":[1,2]},"vulnerabilities":[1,2,3],"totalResults":3}"#;
        let mut seen = Vec::new();
        let scalars = for_each_in_array::<_, u32, ()>(&doc[..], "vulnerabilities", &mut |v| {
            seen.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(scalars["format"], "NVD_CVE");
        assert_eq!(scalars["totalResults"], "3");
        assert!(!scalars.contains_key("big"));
    }

    #[test]
    fn errors_are_typed() {
        let r = for_each_in_array::<_, u32, ()>(&b"{\"a\":1}"[..], "v", &mut |_| Ok(()));
        assert!(matches!(r, Err(StreamError::MissingKey)));
        let r = for_each_in_array::<_, u32, ()>(&b"{\"v\":[1,"[..], "v", &mut |_| Ok(()));
        assert!(matches!(r, Err(StreamError::Json(_))));
        let r = for_each_in_array::<_, u32, &str>(&b"{\"v\":[1,2]}"[..], "v", &mut |_| Err("no"));
        assert!(matches!(r, Err(StreamError::Callback("no"))));
    }
}
