//! Where a decrypted attachment lands. The sender's file name is made safe
//! first; the plaintext goes to a fresh temporary file in the target
//! folder, which then gets its final name without ever replacing a file or
//! following a symlink that is already there: a taken name becomes
//! "name (1).ext", "name (2).ext", ….

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{ClientError, Result};
use crate::text::invisible_control;

/// Longest file name kept from a sender, in bytes (file systems allow 255,
/// and a suffix may be added).
const MAX_NAME_BYTES: usize = 200;
/// Longest extension kept whole when a long name is shortened.
const MAX_EXTENSION_BYTES: usize = 16;
/// Numbered names tried before giving up.
const MAX_SUFFIX: u32 = 999;

/// A sender's file name made safe to create in a folder: no path
/// separators (or other characters file systems reserve), no `..`, no
/// leading dot, no control characters; `None` when nothing usable is left.
pub(super) fn safe_file_name(name: &str) -> Option<String> {
    let safe: String = name
        .chars()
        .map(|c| {
            let reserved = matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|');
            if reserved || c.is_control() || invisible_control(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut safe = safe
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .to_owned();
    while safe.contains("..") {
        safe = safe.replace("..", "_");
    }
    let shortened = shorten(safe.trim_end_matches(|c: char| c == '.' || c.is_whitespace()));
    (!shortened.is_empty()).then_some(shortened)
}

/// Cuts a name to [`MAX_NAME_BYTES`], keeping a short extension.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() < MAX_EXTENSION_BYTES => {
            (stem, format!(".{ext}"))
        }
        _ => (name, String::new()),
    };
    let mut cut = String::new();
    for c in stem.chars() {
        if cut.len() + c.len_utf8() + extension.len() > MAX_NAME_BYTES {
            break;
        }
        cut.push(c);
    }
    cut + &extension
}

/// The `n`-th candidate for `name`: the name itself, then "stem (n).ext".
fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
        _ => format!("{name} ({n})"),
    }
}

/// A new, empty temporary file in `folder` for the plaintext (never an
/// existing file: its random name is created exclusively).
pub(super) async fn temporary_file(folder: &Path) -> Result<(PathBuf, tokio::fs::File)> {
    let path = folder.join(format!(
        ".starling-{}.part",
        hex::encode(crate::content::new_message_id())
    ));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await?;
    Ok((path, file))
}

/// Gives the finished `temp` file (in `folder`) the name `name`, or the
/// first numbered variant that is free, and returns the path. The final
/// name is a hard link, which the system creates only where nothing (not
/// even a dangling symlink) exists; where hard links are not supported it
/// is a new file opened with create-new semantics and filled from `temp`.
/// `temp` is removed either way.
pub(super) async fn place(temp: &Path, folder: &Path, name: &str) -> Result<PathBuf> {
    let result = place_inner(temp, folder, name).await;
    let _ = tokio::fs::remove_file(temp).await;
    result
}

async fn place_inner(temp: &Path, folder: &Path, name: &str) -> Result<PathBuf> {
    for n in 0..=MAX_SUFFIX {
        let target = folder.join(numbered(name, n));
        let created = match tokio::fs::hard_link(temp, &target).await {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => copy_to_new(temp, &target).await,
            linked => linked,
        };
        match created {
            Ok(()) => return Ok(target),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ClientError::NamesTaken(folder.join(name)))
}

/// Copies `source` to `target`, which must not exist yet (a symlink there
/// counts as existing and is not followed).
async fn copy_to_new(source: &Path, target: &Path) -> std::io::Result<()> {
    let mut output = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .await?;
    let copied = async {
        let mut input = tokio::fs::File::open(source).await?;
        tokio::io::copy(&mut input, &mut output).await?;
        output.sync_all().await
    }
    .await;
    if copied.is_err() {
        let _ = tokio::fs::remove_file(target).await;
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_names_are_made_safe() {
        let cases = [
            ("report.pdf", Some("report.pdf")),
            ("../../etc/passwd", Some("___etc_passwd")),
            ("/etc/passwd", Some("_etc_passwd")),
            ("..\\..\\boot.ini", Some("___boot.ini")),
            (".bashrc", Some("bashrc")),
            ("...", None),
            ("..", None),
            ("", None),
            ("a..b.txt", Some("a_b.txt")),
            ("line\nbreak\x1b[31m.txt", Some("line_break_[31m.txt")),
            ("photo\u{202e}gpj.exe", Some("photo_gpj.exe")),
            ("C:evil", Some("C_evil")),
            ("Zoë 日本.txt", Some("Zoë 日本.txt")),
        ];
        for (given, expected) in cases {
            assert_eq!(safe_file_name(given).as_deref(), expected, "{given:?}");
        }
        let long = format!("{}.jpeg", "é".repeat(300));
        let safe = safe_file_name(&long).unwrap();
        assert!(
            safe.len() <= MAX_NAME_BYTES && safe.ends_with("é.jpeg"),
            "{safe}"
        );
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("a.txt", 0), "a.txt");
        assert_eq!(numbered("a.txt", 2), "a (2).txt");
        assert_eq!(numbered("archive", 1), "archive (1)");
        assert_eq!(numbered("x.tar.gz", 1), "x.tar (1).gz");
    }

    async fn finished_temp(folder: &Path, bytes: &[u8]) -> PathBuf {
        use tokio::io::AsyncWriteExt;
        let (path, mut file) = temporary_file(folder).await.unwrap();
        file.write_all(bytes).await.unwrap();
        file.flush().await.unwrap();
        path
    }

    #[tokio::test]
    async fn saving_twice_keeps_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = finished_temp(dir.path(), b"one").await;
        let second = finished_temp(dir.path(), b"two").await;
        let a = place(&first, dir.path(), "notes.txt").await.unwrap();
        let b = place(&second, dir.path(), "notes.txt").await.unwrap();
        assert_eq!(a, dir.path().join("notes.txt"));
        assert_eq!(b, dir.path().join("notes (1).txt"));
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        assert_eq!(std::fs::read(&b).unwrap(), b"two");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "temporary files are gone");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_at_the_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("notes.txt")).unwrap();
        let dangling = outside.path().join("created-through-link");
        std::os::unix::fs::symlink(&dangling, dir.path().join("other.txt")).unwrap();

        let temp = finished_temp(dir.path(), b"attacker").await;
        let saved = place(&temp, dir.path(), "notes.txt").await.unwrap();
        assert_eq!(saved, dir.path().join("notes (1).txt"));
        let temp = finished_temp(dir.path(), b"attacker").await;
        let saved = place(&temp, dir.path(), "other.txt").await.unwrap();
        assert_eq!(saved, dir.path().join("other (1).txt"));

        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(!dangling.exists());
        for link in ["notes.txt", "other.txt"] {
            let meta = std::fs::symlink_metadata(dir.path().join(link)).unwrap();
            assert!(meta.file_type().is_symlink());
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn copying_never_follows_a_symlink_either() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let link = dir.path().join("notes.txt");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let temp = finished_temp(dir.path(), b"attacker").await;
        let refused = copy_to_new(&temp, &link).await.unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    }
}
