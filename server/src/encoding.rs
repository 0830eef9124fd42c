//! Binary fields of the JSON API travel as standard base64; these decode
//! them (naming the field in the error) and encode them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{AppError, ErrorCode};

/// Decodes a base64 field, naming it in the error.
pub(crate) fn decode_b64(field: &'static str, value: &str) -> Result<Vec<u8>, AppError> {
    STANDARD.decode(value).map_err(|_| {
        AppError::bad_request(
            ErrorCode::BadBase64,
            format!("`{field}` is not valid base64"),
        )
    })
}

/// Encodes bytes for a JSON field.
pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
