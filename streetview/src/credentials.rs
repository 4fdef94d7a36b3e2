//! API keys, signing secrets and access tokens, kept out of logs.
//!
//! Each is a newtype whose `Debug` prints `***`, so a credential inside a config or client struct
//! never reaches a log line through `{:?}` or `#[instrument]`. This crate never reads them from
//! the environment: the binary does, and hands them over.

use std::fmt;

use base64::Engine as _;

use crate::error::{Error, Result};

/// A Google Maps Platform API key (`key=`).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; an empty or blank key is refused.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if key.trim().is_empty() {
            return Err(Error::invalid("key", "the API key is empty"));
        }
        Ok(Self(key))
    }

    /// The key itself, for building a request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// A Google URL-signing secret, decoded.
///
/// Google hands it out as 28 characters of URL-safe base64 (`-` and `_`, `=` padding) that
/// decode to 20 bytes. Accepted here with or without padding, and in the standard alphabet
/// (`+`, `/`) too, as Google's own Python client does.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Decodes a secret as Google prints it.
    ///
    /// ```
    /// use streetview::SigningSecret;
    /// assert!(SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=").is_ok());
    /// assert!(SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw").is_ok());
    /// assert!(SigningSecret::from_base64("not base64!").is_err());
    /// ```
    pub fn from_base64(secret: &str) -> Result<Self> {
        let normalised: String = secret
            .trim()
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                other => other,
            })
            .collect();
        let bytes = base64::engine::general_purpose::URL_SAFE_PAD_INDIFFERENT
            .decode(normalised.as_bytes())
            .map_err(|e| {
                Error::invalid(
                    "signing secret",
                    format!("not URL-safe base64 ({e}); copy it from the Google Cloud console"),
                )
            })?;
        if bytes.is_empty() {
            return Err(Error::invalid("signing secret", "the secret is empty"));
        }
        Ok(Self(bytes))
    }

    /// The decoded key bytes for the HMAC.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

/// A Mapillary access token (`MLY|…`), a client token or a user token.
///
/// Sent in the `Authorization: OAuth <token>` header for Graph API calls, never in their URL.
/// Vector-tile URLs are the exception Mapillary documents: tiles take it as `access_token=`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token; an empty or blank token is refused.
    pub fn new(token: impl Into<String>) -> Result<Self> {
        let token = token.into();
        if token.trim().is_empty() {
            return Err(Error::invalid("access token", "the token is empty"));
        }
        Ok(Self(token))
    }

    /// The token itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Authorization` header value: `OAuth <token>` (Mapillary's scheme, not `Bearer`).
    ///
    /// ```
    /// let token = streetview::AccessToken::new("MLY|x")?;
    /// assert_eq!(token.authorization(), "OAuth MLY|x");
    /// # Ok::<(), streetview::Error>(())
    /// ```
    pub fn authorization(&self) -> String {
        format!("OAuth {}", self.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_credential() {
        let key = ApiKey::new("AIzaSECRET").unwrap();
        let secret = SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=").unwrap();
        let token = AccessToken::new("MLY|123|abc").unwrap();
        let all = format!("{key:?} {secret:?} {token:?}");
        assert_eq!(all, "ApiKey(***) SigningSecret(***) AccessToken(***)");
    }

    #[test]
    fn secret_decodes_to_twenty_bytes_in_every_spelling() {
        let padded = SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw=").unwrap();
        assert_eq!(padded.bytes().len(), 20);
        let bare = SigningSecret::from_base64("vNIXE0xscrmjlyV-12Nj_BvUPaw").unwrap();
        let standard = SigningSecret::from_base64("vNIXE0xscrmjlyV+12Nj/BvUPaw=").unwrap();
        assert_eq!(padded, bare);
        assert_eq!(padded, standard);
    }

    #[test]
    fn empty_credentials_are_refused() {
        assert!(ApiKey::new(" ").is_err());
        assert!(AccessToken::new("").is_err());
        assert!(SigningSecret::from_base64("").is_err());
        assert!(SigningSecret::from_base64("a").is_err());
    }
}
