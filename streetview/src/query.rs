//! The one URL encoder every URL of this crate goes through.
//!
//! RFC 3986 component encoding: the unreserved characters `A-Z a-z 0-9 - _ . ~` stay as they
//! are, every other byte of the UTF-8 text becomes `%XX` (upper-case hex). So `,` → `%2C`,
//! `|` → `%7C`, space → `%20`, `ü` → `%C3%BC`. Google's URL-signing guide asks for exactly this
//! (a signature covers the bytes that are sent, so the encoder must never change between building
//! and signing); Mapillary and Panoramax accept it too.

use std::fmt::Write as _;

/// Percent-encodes `text` as one URL component (see the module docs).
///
/// ```
/// assert_eq!(streetview::encode_component("Zürich, CH|x y"), "Z%C3%BCrich%2C%20CH%7Cx%20y");
/// assert_eq!(streetview::encode_component("a-b_c.d~e"), "a-b_c.d~e");
/// ```
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A query string built in a fixed order, every value through [`encode_component`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Query {
    text: String,
}

impl Query {
    /// An empty query.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends `name=value`; `name` is a fixed ASCII parameter name and is not encoded.
    pub(crate) fn push(&mut self, name: &str, value: &str) -> &mut Self {
        if !self.text.is_empty() {
            self.text.push('&');
        }
        self.text.push_str(name);
        self.text.push('=');
        self.text.push_str(&encode_component(value));
        self
    }

    /// Appends `name=value` when `value` is `Some`.
    pub(crate) fn push_opt(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.push(name, value);
        }
        self
    }

    /// The query, without a leading `?`.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_and_non_ascii() {
        assert_eq!(encode_component("48.1,2.2"), "48.1%2C2.2");
        assert_eq!(encode_component("a|b"), "a%7Cb");
        assert_eq!(encode_component("New York"), "New%20York");
        assert_eq!(encode_component("Z\u{fc}rich"), "Z%C3%BCrich");
        assert_eq!(encode_component("MLY|1/2+3=4&"), "MLY%7C1%2F2%2B3%3D4%26");
        assert_eq!(encode_component(""), "");
    }

    #[test]
    fn query_keeps_order() {
        let mut q = Query::new();
        q.push("b", "1")
            .push("a", "x y")
            .push_opt("c", None)
            .push_opt("d", Some(","));
        assert_eq!(q.as_str(), "b=1&a=x%20y&d=%2C");
    }
}
