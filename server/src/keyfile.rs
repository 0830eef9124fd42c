//! Secret keys the server keeps in its data folder: 32 bytes each,
//! created on first start, readable by the owner only, wiped from memory
//! once parsed.

use std::io::Write;
use std::path::Path;

use zeroize::Zeroizing;

/// The 32 bytes of `data_dir/name`, or, if the file is missing, those
/// `generate` makes, written there first (a new file, never replacing
/// one).
pub(crate) fn load_or_create(
    data_dir: &Path,
    name: &str,
    generate: impl FnOnce() -> Zeroizing<[u8; 32]>,
) -> std::io::Result<Zeroizing<[u8; 32]>> {
    let path = data_dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte key", path.display()),
                )
            })?;
            Ok(Zeroizing::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let key = generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path)?;
            file.write_all(&*key)?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), "k.key", || Zeroizing::new([7; 32])).unwrap();
        let second = load_or_create(dir.path(), "k.key", || Zeroizing::new([9; 32])).unwrap();
        assert_eq!(*first, [7; 32]);
        assert_eq!(*second, [7; 32]);
        std::fs::write(dir.path().join("short.key"), [1; 31]).unwrap();
        assert!(load_or_create(dir.path(), "short.key", || Zeroizing::new([0; 32])).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn only_the_owner_reads_a_new_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), "k.key", || Zeroizing::new([7; 32])).unwrap();
        let mode = std::fs::metadata(dir.path().join("k.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
