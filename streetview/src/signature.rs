//! Google Maps Platform URL signing (HMAC-SHA1).
//!
//! The algorithm, from Google's "digital signature" guide and its Python client:
//!
//! 1. build the final, fully encoded request URL, `key=` included;
//! 2. take only its path and query: `/maps/api/streetview?…`;
//! 3. decode the secret as URL-safe base64 ([`SigningSecret`]);
//! 4. HMAC-SHA1 the UTF-8 bytes of step 2 with it;
//! 5. encode the 20-byte MAC as URL-safe base64 **with** `=` padding (28 characters);
//! 6. append `&signature=…` as the **last** parameter.
//!
//! Any byte that changes after signing (re-encoding `%2C` as `,`, reordering) invalidates the
//! signature, so [`sign_url`] works on the string exactly as it will be sent and never
//! re-encodes it.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::credentials::SigningSecret;
use crate::error::{Error, Result};

/// The signature of `path_and_query` (or of any message): URL-safe base64 of HMAC-SHA1, padded.
///
/// ```
/// use streetview::{sign, SigningSecret};
/// let secret = SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=")?;
/// assert_eq!(
///     sign("/maps/api/geocode/json?address=New+York&client=clientID", &secret),
///     "chaRF2hTJKOScPr-RQCEhZbSzIE="
/// );
/// # Ok::<(), streetview::Error>(())
/// ```
pub fn sign(path_and_query: &str, secret: &SigningSecret) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.bytes())
        .expect("HMAC takes keys of any length");
    mac.update(path_and_query.as_bytes());
    base64::engine::general_purpose::URL_SAFE.encode(mac.finalize().into_bytes())
}

/// Signs a complete URL as it will be sent and returns it with `&signature=…` appended.
///
/// The URL must be absolute (`https://host/path?query`), have a query, and not be signed yet.
///
/// ```
/// use streetview::{sign_url, SigningSecret};
/// let secret = SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=")?;
/// assert_eq!(
///     sign_url("https://maps.googleapis.com/maps/api/geocode/json?address=New+York&client=clientID", &secret)?,
///     "https://maps.googleapis.com/maps/api/geocode/json?address=New+York&client=clientID&signature=chaRF2hTJKOScPr-RQCEhZbSzIE="
/// );
/// # Ok::<(), streetview::Error>(())
/// ```
pub fn sign_url(url: &str, secret: &SigningSecret) -> Result<String> {
    let path_and_query = path_and_query(url)?;
    if !path_and_query.contains('?') {
        return Err(Error::invalid("url", "a signed URL needs a query string"));
    }
    if path_and_query
        .split(['?', '&'])
        .any(|pair| pair.starts_with("signature="))
    {
        return Err(Error::invalid("url", "the URL is already signed"));
    }
    if path_and_query.contains('#') {
        return Err(Error::invalid(
            "url",
            "a fragment would not be sent, so it cannot be signed",
        ));
    }
    Ok(format!("{url}&signature={}", sign(path_and_query, secret)))
}

/// The part of an absolute URL that Google signs: from the first `/` after the host.
fn path_and_query(url: &str) -> Result<&str> {
    let after_scheme = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| Error::invalid("url", "not an absolute URL (no scheme://)"))?;
    let start = after_scheme
        .find('/')
        .ok_or_else(|| Error::invalid("url", "the URL has no path"))?;
    Ok(&after_scheme[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_SECRET: &str = "vNIXE0xscrmjlyV-12Nj_BvUPaw=";

    fn secret(s: &str) -> SigningSecret {
        SigningSecret::from_base64(s).expect("test secrets are valid")
    }

    /// Every row of the signing table in reference/streetview.md §2, byte for byte.
    #[test]
    fn reference_vectors() {
        let rows = [
            (
                DOC_SECRET,
                "/maps/api/geocode/json?address=New+York&client=clientID",
                "chaRF2hTJKOScPr-RQCEhZbSzIE=",
            ),
            (
                DOC_SECRET,
                "/maps/api/geocode/json?address=New+York&sensor=false&client=clientID",
                "KrU1TzVQM7Ur0i8i7K3huiw3MsA=",
            ),
            (
                "a2V5",
                "The quick brown fox jumps over the lazy dog",
                "3nybhbi3iqa8ino29wqQcBydtNk=",
            ),
            (
                "a2V5",
                "/maps/api/geocode/json?address=Sesame+St.&client=foo",
                "fxbWUIcNPZSekVOhp2ul9LW5TpY=",
            ),
            (
                "a2V5",
                "/test?param=param&channel=MyChannel_1&client=foo",
                "OH18GuQto_mEpxj99UimKskvo4k=",
            ),
            (
                DOC_SECRET,
                "/maps/api/streetview?location=Z%C3%BCrich&size=400x400&key=YOUR_API_KEY",
                "Y-ENC0WxsMH7YEzj6p3ASCDpiz0=",
            ),
            (
                DOC_SECRET,
                "/maps/api/streetview?size=600x300&location=46.414382%2C10.013988&heading=151.78&pitch=-0.76&key=YOUR_API_KEY",
                "XscafPjtrcpyZKmclB7aiBr6QEo=",
            ),
            (
                DOC_SECRET,
                "/maps/api/streetview/metadata?location=46.414382,10.013988&key=YOUR_API_KEY",
                "M5y0k1fREamkIeyJltVgYZkYdx8=",
            ),
        ];
        for (key, message, expected) in rows {
            assert_eq!(sign(message, &secret(key)), expected, "{message}");
        }
    }

    #[test]
    fn re_encoding_changes_the_signature() {
        let s = secret(DOC_SECRET);
        let encoded = "/maps/api/streetview?size=600x300&location=46.414382%2C10.013988&heading=151.78&pitch=-0.76&key=YOUR_API_KEY";
        let raw = "/maps/api/streetview?size=600x300&location=46.414382,10.013988&heading=151.78&pitch=-0.76&key=YOUR_API_KEY";
        assert_eq!(sign(raw, &s), "vzotWexHz1Vew1ml-5Nj9QR7TmE=");
        assert_ne!(sign(raw, &s), sign(encoded, &s));
    }

    #[test]
    fn secret_without_padding_signs_the_same() {
        let message = "/maps/api/geocode/json?address=New+York&client=clientID";
        assert_eq!(
            sign(message, &secret("vNIXE0xscrmjlyV-12Nj_BvUPaw")),
            "chaRF2hTJKOScPr-RQCEhZbSzIE="
        );
    }

    #[test]
    fn sign_url_signs_path_and_query_only() {
        let s = secret(DOC_SECRET);
        let url = "https://maps.googleapis.com/maps/api/streetview?location=Z%C3%BCrich&size=400x400&key=YOUR_API_KEY";
        assert_eq!(
            sign_url(url, &s).unwrap(),
            format!("{url}&signature=Y-ENC0WxsMH7YEzj6p3ASCDpiz0=")
        );
        // The host does not matter, only what follows it.
        let local = "http://127.0.0.1:8080/maps/api/streetview?location=Z%C3%BCrich&size=400x400&key=YOUR_API_KEY";
        assert!(
            sign_url(local, &s)
                .unwrap()
                .ends_with("&signature=Y-ENC0WxsMH7YEzj6p3ASCDpiz0=")
        );
    }

    #[test]
    fn sign_url_refuses_what_it_cannot_sign() {
        let s = secret(DOC_SECRET);
        assert!(sign_url("/maps/api/streetview?size=1x1", &s).is_err());
        assert!(sign_url("https://maps.googleapis.com", &s).is_err());
        assert!(sign_url("https://maps.googleapis.com/maps/api/streetview", &s).is_err());
        assert!(sign_url("https://h/p?a=1&signature=x", &s).is_err());
        assert!(sign_url("https://h/p?a=1#frag", &s).is_err());
    }
}
