//! Link codes as a person carries them from an account's device to a new
//! one: the server's one-time code, a dot, and the link secret
//! (`crypto/SPEC.md` §2.5) in unpadded URL-safe base64. The server is
//! only ever sent the part before the dot. A code without a dot links
//! too, without a certificate: contacts who verified the account are then
//! warned of the new device, as of any unvouched one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use starling_crypto::link::LinkSecret;
use zeroize::Zeroizing;

use crate::error::{ClientError, Result};

/// The code to show: `server_code.secret`, wiped from memory when
/// dropped, as the secret is.
pub(super) fn join(server_code: &str, secret: &LinkSecret) -> Zeroizing<String> {
    let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.as_bytes()));
    let mut code = Zeroizing::new(String::with_capacity(server_code.len() + 1 + encoded.len()));
    code.push_str(server_code);
    code.push('.');
    code.push_str(&encoded);
    code
}

/// The server's part of a code and its secret, if it has one.
pub(super) fn split(code: &str) -> Result<(&str, Option<LinkSecret>)> {
    let code = code.trim();
    let Some((server_code, secret)) = code.split_once('.') else {
        return Ok((code, None));
    };
    let bytes = Zeroizing::new(
        URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| ClientError::DamagedLinkCode)?,
    );
    let secret = LinkSecret::from_bytes(&bytes).map_err(|_| ClientError::DamagedLinkCode)?;
    Ok((server_code, Some(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_carries_its_secret_and_the_server_sees_only_its_part() {
        let secret = LinkSecret::generate(&mut rand::rngs::OsRng);
        let code = join("-server_Code", &secret);
        let typed = format!(" {}\n", code.as_str());
        let (server, carried) = split(&typed).unwrap();
        assert_eq!(server, "-server_Code");
        assert_eq!(carried.unwrap().as_bytes(), secret.as_bytes());
    }

    #[test]
    fn a_code_without_a_secret_links_unvouched_and_a_damaged_one_is_refused() {
        let (server, secret) = split("plain").unwrap();
        assert_eq!((server, secret.is_none()), ("plain", true));
        for damaged in ["code.", "code.abc", "code.!!!!!!!!!!!!!!!!!!!!!!"] {
            assert!(
                matches!(split(damaged), Err(ClientError::DamagedLinkCode)),
                "{damaged}"
            );
        }
    }
}
