//! The organisation's published directory.

use serde::{Deserialize, Serialize};

/// Most results one search returns.
pub const MAX_DIRECTORY_RESULTS: usize = 100;

/// `GET /v1/directory?q=NAME&limit=N`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DirectoryQuery {
    /// What to search for (at most 100 bytes).
    #[serde(default)]
    pub q: String,
    /// Most results wanted (1 to [`MAX_DIRECTORY_RESULTS`], 20 if absent).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One published member.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct DirectoryEntry {
    /// Username members write to.
    pub username: String,
    /// Published name.
    pub display_name: String,
    /// Published title (may be empty).
    pub title: String,
    /// Department name (may be empty).
    pub department: String,
}
