//! Secret keys the server keeps in its data folder: 32 bytes each,
//! created on first start, readable by the owner only, written all at
//! once, wiped from memory once parsed.

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
    match read_key(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let key = generate();
            match write_new(&path, &*key) {
                Ok(()) => Ok(key),
                // Another process starting on this folder wrote it first.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(&path),
                Err(e) => Err(e),
            }
        }
        read => read,
    }
}

fn read_key(path: &Path) -> std::io::Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(std::fs::read(path)?);
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a 32-byte key", path.display()),
        )
    })?;
    Ok(Zeroizing::new(key))
}

/// Writes `contents` to `path` as a new file readable by the owner only,
/// all at once: written and synced under a temporary name of this call's
/// own beside it, then linked into place, which fails if `path` exists. A
/// crash at any instant leaves no file or the whole one, never a short key
/// that would keep the server from starting; of two processes writing at
/// once, one wins and the other gets `AlreadyExists`.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut tag = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut tag);
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", hex::encode(tag)));
    let partial = std::path::PathBuf::from(partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&partial).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    linked?;
    // The new name itself survives a crash once its folder is synced.
    #[cfg(unix)]
    if let Some(folder) = path.parent() {
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
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

    #[test]
    fn a_new_file_is_written_whole_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        write_new(&path, b"first").unwrap();
        let error = write_new(&path, b"second").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
