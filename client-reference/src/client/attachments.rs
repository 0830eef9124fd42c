//! Attachments: encrypted in a streaming pass (constant memory) to a
//! ciphertext file, uploaded with resume after a dropped connection,
//! downloaded with resume into the home's attachment folder (still
//! encrypted), verified against the digest, and decrypted only to where the
//! person asks, never over an existing file (see [`save`]).

mod save;

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use starling_crypto::attachment::{
    AttachmentDecryptor, AttachmentEncryptor, AttachmentError, AttachmentInfo, AttachmentKey,
    CHUNK_SIZE, HEADER_SIZE, SEALED_CHUNK, stored_len,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::Client;
use crate::content::{self, AttachmentKind};
use crate::conversation::{Conversation, ConversationRef};
use crate::error::{ClientError, Result};

/// Attempts of an upload or download before giving up.
const TRANSFER_ATTEMPTS: usize = 5;

/// Receives transfer progress (a progress bar, or nothing).
pub trait Progress: Send {
    /// The transfer of `total` bytes starts (or resumes at `done`).
    fn start(&mut self, total: u64, done: u64);
    /// `bytes` more were transferred.
    fn advance(&mut self, bytes: u64);
    /// The transfer ended.
    fn finish(&mut self);
}

impl Progress for () {
    fn start(&mut self, _: u64, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// Guesses a media type from a file name.
fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "ogg" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "mp3" => "audio/mpeg",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// The attachment kind a file's media type suggests.
pub fn kind_for(name: &str) -> AttachmentKind {
    let media = media_type(name);
    if media.starts_with("image/") {
        AttachmentKind::Image
    } else if media.starts_with("video/") {
        AttachmentKind::Video
    } else if media.starts_with("audio/") {
        AttachmentKind::VoiceNote
    } else {
        AttachmentKind::File
    }
}

impl Client {
    /// Encrypts and uploads a file, then sends it to a conversation.
    /// Returns the message id.
    pub async fn send_file<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        path: &Path,
        kind: AttachmentKind,
        caption: &str,
        progress: &mut dyn Progress,
    ) -> Result<Vec<u8>> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| ClientError::NotAFile(path.to_path_buf()))?;
        let conversation = self.conversation(conversation.into()).await?;
        let outgoing = self.store().home().join("outgoing");
        tokio::fs::create_dir_all(&outgoing).await?;
        let encrypted = outgoing.join(hex::encode(content::new_message_id()));
        let info = encrypt_file(path, &encrypted).await;
        let result = match info {
            Ok(info) => {
                self.upload_and_send(
                    &conversation,
                    &encrypted,
                    info,
                    &file_name,
                    kind,
                    caption,
                    progress,
                )
                .await
            }
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&encrypted).await;
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_and_send(
        &mut self,
        conversation: &Conversation,
        encrypted: &Path,
        info: AttachmentInfo,
        file_name: &str,
        kind: AttachmentKind,
        caption: &str,
        progress: &mut dyn Progress,
    ) -> Result<Vec<u8>> {
        let size = stored_len(info.plaintext_len).ok_or(AttachmentError::TooLarge)?;
        let id = self.api().create_attachment(size).await?;
        upload_resumable(self, &id, encrypted, size, progress).await?;
        let attachment = content::Attachment {
            kind: kind.into(),
            server_id: id,
            key: info.key.to_bytes().to_vec(),
            digest: info.digest.to_vec(),
            plaintext_len: info.plaintext_len,
            ciphertext_len: size,
            file_name: file_name.to_owned(),
            media_type: media_type(file_name).to_owned(),
            caption: caption.to_owned(),
            ..content::Attachment::default()
        };
        self.send_body(conversation, content::Body::Attachment(attachment))
            .await
    }

    /// The attachment of a message in the history.
    async fn attachment_of(
        &self,
        message_id: &[u8],
    ) -> Result<(content::Attachment, Option<String>)> {
        use prost::Message as _;
        let (bytes, file) = self
            .store()
            .message_content(message_id)
            .await?
            .ok_or(ClientError::UnknownMessage)?;
        match content::Content::decode(bytes.as_slice())?.body {
            Some(content::content::Body::Attachment(a)) => Ok((a, file)),
            _ => Err(ClientError::NoAttachment),
        }
    }

    /// Downloads a message's attachment into the home (still encrypted),
    /// resuming a partial download, and checks its digest.
    pub async fn download_attachment(
        &mut self,
        message_id: &[u8],
        progress: &mut dyn Progress,
    ) -> Result<PathBuf> {
        let (attachment, file) = self.attachment_of(message_id).await?;
        let dir = self.store().attachments_dir();
        if let Some(file) = file {
            return Ok(dir.join(file));
        }
        tokio::fs::create_dir_all(&dir).await?;
        let name = hex::encode(message_id);
        let partial = dir.join(format!("{name}.part"));
        let info = attachment_info(&attachment)?;
        let verified = match download_resumable(self, &attachment, &info, &partial, progress).await
        {
            Ok(verified) => verified,
            Err(e @ ClientError::Attachment(_)) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        // A download resumed from a partial file is verified as a whole.
        if !verified && let Err(e) = decrypt_file(&partial, None, &info).await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        let path = dir.join(&name);
        tokio::fs::rename(&partial, &path).await?;
        self.store().set_attachment_file(message_id, &name).await?;
        Ok(path)
    }

    /// Decrypts a message's attachment to `destination`: a folder to put
    /// it in under the sender's file name (made safe), or a file path.
    /// An existing file is never replaced nor a symlink followed: a taken
    /// name becomes "name (1).ext" and so on. Returns the file written.
    pub async fn save_attachment(
        &mut self,
        message_id: &[u8],
        destination: &Path,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf> {
        let encrypted = self.download_attachment(message_id, progress).await?;
        let (attachment, _) = self.attachment_of(message_id).await?;
        let (folder, name) = if destination.is_dir() {
            let name = save::safe_file_name(&attachment.file_name)
                .unwrap_or_else(|| hex::encode(message_id));
            (destination.to_path_buf(), name)
        } else {
            let name = destination
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| ClientError::NotAFileName(destination.to_path_buf()))?;
            let folder = destination
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (folder.to_path_buf(), name)
        };
        let (temp, mut output) = save::temporary_file(&folder).await?;
        let info = attachment_info(&attachment)?;
        let decrypted = decrypt_file(&encrypted, Some(&mut output), &info).await;
        drop(output);
        if let Err(e) = decrypted {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        save::place(&temp, &folder, &name).await
    }
}

fn attachment_info(attachment: &content::Attachment) -> Result<AttachmentInfo> {
    let key: [u8; 32] = attachment
        .key
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::Protocol("bad attachment key".into()))?;
    let digest: [u8; 32] = attachment
        .digest
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::Protocol("bad attachment digest".into()))?;
    Ok(AttachmentInfo {
        key: AttachmentKey::from_bytes(&key),
        digest,
        plaintext_len: attachment.plaintext_len,
    })
}

async fn encrypt_file(source: &Path, target: &Path) -> Result<AttachmentInfo> {
    let mut input = tokio::fs::File::open(source)
        .await
        .map_err(|source_error| ClientError::CannotRead {
            path: source.to_path_buf(),
            source: source_error,
        })?;
    let mut output = tokio::fs::File::create(target).await?;
    let mut encryptor = AttachmentEncryptor::new(&mut rand::rngs::OsRng);
    // Whole chunks, each sealed from `buffer` straight into `out`.
    let mut buffer = vec![0u8; CHUNK_SIZE];
    let mut out = vec![0u8; AttachmentEncryptor::max_update_len(CHUNK_SIZE)];
    loop {
        let read = read_up_to(&mut input, &mut buffer).await?;
        if read == 0 {
            break;
        }
        let written = encryptor.update_into(&buffer[..read], &mut out)?;
        output.write_all(&out[..written]).await?;
    }
    let mut last = Vec::with_capacity(SEALED_CHUNK);
    let info = encryptor.finish(&mut last)?;
    output.write_all(&last).await?;
    output.sync_all().await?;
    Ok(info)
}

/// Reads until `buffer` is full or the file ends; returns the bytes read.
async fn read_up_to(input: &mut tokio::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let read = input.read(&mut buffer[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(filled)
}

/// Decrypts and verifies `source`; writes the plaintext to `output` when
/// given (the caller discards it if verification fails).
async fn decrypt_file(
    source: &Path,
    mut output: Option<&mut tokio::fs::File>,
    info: &AttachmentInfo,
) -> Result<()> {
    let mut input = tokio::fs::File::open(source).await?;
    let mut decryptor = AttachmentDecryptor::new(info);
    // The header, then whole sealed chunks: each one is opened from
    // `buffer` straight into `out`, none is gathered across reads.
    let mut buffer = vec![0u8; SEALED_CHUNK];
    let mut out = vec![0u8; AttachmentDecryptor::max_update_len(SEALED_CHUNK)];
    let mut want = HEADER_SIZE;
    loop {
        let read = read_up_to(&mut input, &mut buffer[..want]).await?;
        if read == 0 {
            break;
        }
        let written = decryptor.update_into(&buffer[..read], &mut out)?;
        if let Some(output) = output.as_mut() {
            output.write_all(&out[..written]).await?;
        }
        want = SEALED_CHUNK;
    }
    let mut out = Vec::with_capacity(CHUNK_SIZE);
    decryptor.finish(&mut out)?;
    if let Some(output) = output.as_mut() {
        output.write_all(&out).await?;
        output.sync_all().await?;
    }
    Ok(())
}

async fn upload_resumable(
    client: &Client,
    id: &str,
    path: &Path,
    size: u64,
    progress: &mut dyn Progress,
) -> Result<()> {
    let mut last_error = None;
    for attempt in 0..TRANSFER_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
        }
        let offset = if attempt == 0 {
            0
        } else {
            match client.api().attachment_received(id).await {
                Ok(offset) => offset,
                Err(e @ ClientError::Network(_)) => {
                    last_error = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        if offset >= size {
            progress.finish();
            return Ok(());
        }
        progress.start(size, offset);
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let stream = tokio_util_stream(file.take(size - offset), sent_tx);
        let upload = client.api().upload_attachment(
            id,
            offset,
            size - offset,
            reqwest::Body::wrap_stream(stream),
        );
        tokio::pin!(upload);
        let outcome = loop {
            tokio::select! {
                result = &mut upload => break result,
                Some(n) = sent_rx.recv() => progress.advance(n),
            }
        };
        match outcome {
            Ok(()) => {
                progress.finish();
                return Ok(());
            }
            // Broken off, or the server kept another amount than assumed:
            // ask it where to continue.
            Err(e @ (ClientError::Network(_) | ClientError::Server { status: 409, .. })) => {
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| ClientError::Network("upload failed".into())))
}

/// A stream of 64 KiB chunks of `reader`, reporting each chunk's size.
fn tokio_util_stream(
    reader: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    sent: tokio::sync::mpsc::UnboundedSender<u64>,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    futures_util::stream::unfold((reader, sent), |(mut reader, sent)| async move {
        let mut chunk = vec![0u8; CHUNK_SIZE];
        match reader.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                let _ = sent.send(n as u64);
                Some((Ok(chunk), (reader, sent)))
            }
            Err(e) => Some((Err(e), (reader, sent))),
        }
    })
}

/// Downloads into `partial`, resuming what is there. Returns whether the
/// whole blob was verified (decrypted, digest checked) as it arrived, which
/// is the case when it came in one piece.
async fn download_resumable(
    client: &Client,
    attachment: &content::Attachment,
    info: &AttachmentInfo,
    partial: &Path,
    progress: &mut dyn Progress,
) -> Result<bool> {
    let size = attachment.ciphertext_len;
    let mut last_error = None;
    for attempt in 0..TRANSFER_ATTEMPTS {
        let offset = tokio::fs::metadata(partial)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if offset >= size {
            progress.finish();
            return Ok(false);
        }
        progress.start(size, offset);
        let mut verifier = (offset == 0).then(|| AttachmentDecryptor::new(info));
        let mut scratch = Vec::with_capacity(CHUNK_SIZE + 64);
        let result: Result<()> = async {
            let response = client
                .api()
                .download_attachment(&attachment.server_id, offset)
                .await?;
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(partial)
                .await?;
            let mut stream = response.bytes_stream();
            let mut written = offset;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                written += chunk.len() as u64;
                if written > size {
                    return Err(ClientError::Protocol(
                        "attachment longer than announced".into(),
                    ));
                }
                if let Some(verifier) = verifier.as_mut() {
                    verifier.update(&chunk, &mut scratch)?;
                    scratch.clear();
                }
                file.write_all(&chunk).await?;
                progress.advance(chunk.len() as u64);
            }
            file.sync_all().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                let complete = tokio::fs::metadata(partial)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0)
                    >= size;
                if let (true, Some(verifier)) = (complete, verifier) {
                    verifier.finish(&mut scratch)?;
                    progress.finish();
                    return Ok(true);
                }
            }
            Err(e @ ClientError::Network(_)) => {
                last_error = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
    if tokio::fs::metadata(partial)
        .await
        .map(|m| m.len())
        .unwrap_or(0)
        >= size
    {
        progress.finish();
        return Ok(false);
    }
    Err(last_error.unwrap_or_else(|| ClientError::Network("download incomplete".into())))
}
