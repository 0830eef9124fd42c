//! [`Client`]: one device's view of its account. It owns the encrypted
//! store and the server API; submodules hold one concern each (prekeys,
//! outgoing and incoming messages, changes to earlier messages, groups,
//! attachments, calls, trust).

mod attachments;
mod calls;
mod directory;
mod groups;
mod incoming;
mod link_code;
mod outgoing;
mod prekeys;
mod trust;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::rngs::OsRng;
use starling_client_core::sealed::SealedRecord;
use starling_client_core::transparency::LogRecord;
use starling_client_core::{Account, Device};
use starling_crypto::link::LinkSecret;
use starling_crypto::sealed::TrustedServerKeys;
use starling_crypto::{IdentityKeyPair, PreKeyStore};
use zeroize::Zeroizing;

pub use attachments::{Progress, kind_for};
pub use calls::{CallOptions, CallReport, IncomingCall};
pub use prekeys::{PREKEY_BATCH, PREKEY_LOW_WATER, SIGNED_PREKEY_MAX_AGE_SECS};
pub use starling_client_core::{CallSignalKind, Event, UpdateKind};
pub use trust::{OwnLogChange, SafetyNumberView};

use crate::api::{Api, Credentials, DirectoryEntry};
use crate::conversation::{Conversation, ConversationRef};
use crate::error::{ClientError, Result};
use crate::ports::SystemClock;
use crate::store::{AccountRecord, HistoryEntry, Store, StoreKey};

/// Where to find the server, for registration and linking.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base URL, e.g. `https://chat.example.org:8443`.
    pub url: String,
    /// SHA-256 fingerprint of a pinned (self-signed) certificate, hex.
    pub ca_fingerprint: Option<String>,
}

/// How a home gets its device.
enum Setup<'a> {
    Register {
        username: &'a str,
        invite: Option<&'a str>,
    },
    Link {
        code: &'a str,
    },
}

/// The client core over this shell's store, server, clock and randomness.
type Core = Device<Store, Api, SystemClock, OsRng>;

/// One device of an account.
pub struct Client {
    core: Core,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("username", &self.core.username())
            .field("device_id", &self.core.device_id())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens the account stored in `home`.
    pub async fn open(home: &Path, key: &StoreKey) -> Result<Self> {
        let store = Store::open(home, key).await?;
        let account = store.account().await?;
        let api = Api::new(&account.server_url, account.ca_fingerprint.as_deref())?
            .with_credentials(Credentials {
                username: account.username.clone(),
                device_id: account.device_id,
                secret: account.credential.clone(),
            });
        let client = Self::with_core(
            store,
            api,
            Account {
                username: account.username,
                device_id: account.device_id,
                identity: account.identity,
                prekeys: account.prekeys,
            },
        );
        client
            .store()
            .delete_expired_files(crate::store::now_millis())
            .await?;
        Ok(client)
    }

    /// Registers a new account with an invite code (or none, when the
    /// server allows open registration) and stores it in `home`.
    pub async fn register(
        home: &Path,
        key: &StoreKey,
        server: &ServerConfig,
        username: &str,
        invite: Option<&str>,
    ) -> Result<Self> {
        Self::set_up(home, key, server, Setup::Register { username, invite }).await
    }

    /// Links this home as a new device of an existing account, with a
    /// one-time code issued by one of its devices (`starling devices link-code`).
    pub async fn link(
        home: &Path,
        key: &StoreKey,
        server: &ServerConfig,
        code: &str,
    ) -> Result<Self> {
        Self::set_up(home, key, server, Setup::Link { code }).await
    }

    /// Creates the device; a failed first setup leaves no store behind, so
    /// the next attempt may choose another passphrase.
    async fn set_up(
        home: &Path,
        key: &StoreKey,
        server: &ServerConfig,
        setup: Setup<'_>,
    ) -> Result<Self> {
        let fresh = !home.join(crate::store::DATABASE_FILE).exists();
        let store = Store::open(home, key).await?;
        let result = async {
            if let Some(existing) = store.account_username().await? {
                return Err(ClientError::AlreadyRegistered(existing));
            }
            let api = Api::new(&server.url, server.ca_fingerprint.as_deref())?;
            let identity = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
            let public = identity.public().to_bytes();
            let linked = matches!(setup, Setup::Link { .. });
            let registered = match setup {
                Setup::Register { username, invite } => {
                    api.register(username, invite, &public).await?
                }
                Setup::Link { code } => {
                    let (code, secret) = link_code::split(code)?;
                    // The new device's endorsement needs its account's
                    // name, which only the server's answer gives; the
                    // server checks it against the name it holds.
                    api.link(code, identity.public(), secret.as_ref()).await?
                }
            };
            let mut client =
                Self::finish_setup(store.clone(), api, server, identity, registered).await?;
            if linked {
                // The account's other devices answer with every group it
                // is in and their keys; until one does, a group's next
                // message brings it too.
                if let Err(error) = client.core.request_group_sync().await {
                    tracing::warn!(%error, "the account's groups could not be asked for");
                }
            }
            Ok(client)
        }
        .await;
        if result.is_err() && fresh && store.account_username().await.ok().flatten().is_none() {
            store.close().await;
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let path = home.join(format!("{}{suffix}", crate::store::DATABASE_FILE));
                let _ = tokio::fs::remove_file(path).await;
            }
        }
        result
    }

    async fn finish_setup(
        store: Store,
        api: Api,
        server: &ServerConfig,
        identity: IdentityKeyPair,
        registered: crate::api::Registered,
    ) -> Result<Self> {
        let credential = Zeroizing::new(registered.credential);
        let record = AccountRecord {
            server_url: server.url.clone(),
            ca_fingerprint: server.ca_fingerprint.clone(),
            username: registered.username.clone(),
            device_id: registered.device_id,
            credential: credential.clone(),
            identity,
            prekeys: PreKeyStore::new(),
        };
        store.create_account(&record).await?;
        if let Some(pin) = &registered.server_key {
            // The key sender certificates are checked against, learned over
            // the connection the account was made on.
            let public_key = B64
                .decode(&pin.public_key)
                .map_err(|_| ClientError::Protocol("the server key is not base64".into()))?;
            let trusted = TrustedServerKeys::pin(pin.id, &public_key, pin.created_at)?;
            let record = SealedRecord {
                trusted_keys: Some(trusted.to_bytes()),
                certificate: None,
                profile_key: None,
                profile_key_pending: false,
            };
            store.save_sealed_record(&record).await?;
        }
        if let Some(pin) = &registered.log {
            // The transparency log's keys, learned over the same connection:
            // every key fetched from now on must be in the log they sign.
            let pins = crate::api::transparency::pins(pin)?;
            store
                .save_log_record(&LogRecord { pins, newest: None })
                .await?;
        }
        let api = api.with_credentials(Credentials {
            username: registered.username.clone(),
            device_id: registered.device_id,
            secret: credential,
        });
        let mut client = Self::with_core(
            store,
            api,
            Account {
                username: registered.username,
                device_id: registered.device_id,
                identity: record.identity,
                prekeys: record.prekeys,
            },
        );
        let devices = client.api().devices(client.username()).await?;
        client.store().record_setup_devices(&devices).await?;
        client.core.upload_initial_prekeys().await?;
        Ok(client)
    }

    fn with_core(store: Store, api: Api, account: Account) -> Self {
        Self {
            core: Device::new(store, api, SystemClock, OsRng, account),
        }
    }

    /// Our username.
    pub fn username(&self) -> &str {
        self.core.username()
    }

    /// Our device id.
    pub fn device_id(&self) -> u32 {
        self.core.device_id()
    }

    /// The server this device was set up with: its URL and the pinned
    /// certificate fingerprint, as a new device of the account needs them.
    pub async fn server(&self) -> Result<ServerConfig> {
        let account = self.store().account().await?;
        Ok(ServerConfig {
            url: account.server_url,
            ca_fingerprint: account.ca_fingerprint,
        })
    }

    /// The local store.
    pub fn store(&self) -> &Store {
        self.core.storage()
    }

    /// The server API, authenticated as this device.
    pub fn api(&self) -> &Api {
        self.core.transport()
    }

    /// Searches the organisation's directory.
    pub async fn directory_search(&self, query: &str, limit: u32) -> Result<Vec<DirectoryEntry>> {
        self.api().directory(query, limit).await
    }

    /// Our account's devices, as the server lists them.
    pub async fn devices(&self) -> Result<Vec<u32>> {
        self.api().devices(self.username()).await
    }

    /// Issues a one-time code to link another device (this device must be
    /// a manager: the one that registered the account, or one linked as a
    /// manager).
    pub async fn link_code(&self) -> Result<Zeroizing<String>> {
        self.issue_link_code(false).await
    }

    /// Issues a one-time code that links another device as a manager: it
    /// may link and remove devices too.
    pub async fn manager_link_code(&self) -> Result<Zeroizing<String>> {
        self.issue_link_code(true).await
    }

    /// A link code: the server's one-time code, a dot, and a link secret
    /// the server never sees, whose link key this device vouches for
    /// (`crypto/SPEC.md` §2.5), so that contacts who verified the account
    /// keep it verified when the new device joins.
    async fn issue_link_code(&self, manager: bool) -> Result<Zeroizing<String>> {
        let secret = LinkSecret::generate(&mut OsRng);
        let grant = self.core.link_grant(&secret);
        let code = self.api().link_code(manager, &grant.to_bytes()).await?;
        Ok(link_code::join(&code, &secret))
    }

    /// Whether our account takes sealed envelopes from strangers (senders
    /// without our profile key), as the server keeps it.
    pub async fn sealed_from_strangers(&self) -> Result<bool> {
        Ok(self
            .api()
            .device_list(self.username())
            .await?
            .sealed_from_strangers)
    }

    /// Lets strangers send our account sealed envelopes without a
    /// credential (`true`), or only contacts holding our profile key.
    pub async fn set_sealed_from_strangers(&mut self, allow: bool) -> Result<()> {
        Ok(self.core.set_sealed_from_strangers(allow).await?)
    }

    /// Removes one of our devices (never this one: use another device).
    pub async fn remove_device(&mut self, device_id: u32) -> Result<()> {
        if device_id == self.device_id() {
            return Err(ClientError::RemovingThisDevice);
        }
        self.api().remove_device(device_id).await?;
        Ok(self.core.forget_own_device(device_id).await?)
    }

    /// A conversation's history (`@user`, a group, or a [`Conversation`]).
    pub async fn history<'a>(
        &self,
        conversation: impl Into<ConversationRef<'a>>,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>> {
        let conversation = self.conversation(conversation.into()).await?;
        self.store().history(&conversation, limit).await
    }

    /// Full-text search over the local history, optionally in one conversation.
    pub async fn search(
        &self,
        words: &str,
        conversation: Option<ConversationRef<'_>>,
    ) -> Result<Vec<HistoryEntry>> {
        let conversation = match conversation {
            Some(c) => Some(self.conversation(c).await?),
            None => None,
        };
        self.store().search(words, conversation.as_ref()).await
    }

    /// Resolves what a person types: `@user`, `#group` (its name or an id
    /// prefix), or a bare name.
    ///
    /// Group names are chosen by whoever creates the group, so a bare name
    /// that could be a username never silently means a group: when a group
    /// of that name exists too, the name is refused as ambiguous and the
    /// person must say `@name` or `#name`.
    pub async fn resolve(&self, name: &str) -> Result<Conversation> {
        if let Some(user) = name.strip_prefix('@') {
            return starling_protocol::Username::parse(user)
                .map(Conversation::Direct)
                .map_err(|source| ClientError::BadUsername {
                    name: user.to_owned(),
                    source,
                });
        }
        if let Some(group) = name.strip_prefix('#') {
            return Ok(self.store().find_group(group).await?.conversation());
        }
        let user = starling_protocol::Username::parse(name).ok();
        match (self.store().find_group(name).await, user) {
            (Ok(_), Some(_)) => Err(ClientError::AmbiguousName(name.to_owned())),
            (Ok(group), None) => Ok(group.conversation()),
            (Err(ClientError::UnknownGroup(_)), Some(user)) => Ok(Conversation::Direct(user)),
            (Err(e), _) => Err(e),
        }
    }

    /// The conversation a caller named: resolved as [`Self::resolve`]
    /// does, or as given.
    pub(crate) async fn conversation(&self, named: ConversationRef<'_>) -> Result<Conversation> {
        match named {
            ConversationRef::Named(name) => self.resolve(name).await,
            ConversationRef::Resolved(conversation) => Ok(conversation.clone()),
        }
    }

    /// Deletes messages whose disappearing timer ran out, with their
    /// attachment files, and forgets processed envelope ids old enough that
    /// the server cannot deliver them again.
    pub async fn delete_expired(&self) -> Result<usize> {
        let now = crate::store::now_millis();
        self.store()
            .prune_seen_envelopes(now.saturating_sub(SEEN_ENVELOPE_RETENTION_MILLIS))
            .await?;
        self.store().delete_expired_files(now).await
    }

    /// Closes the store cleanly.
    pub async fn close(self) {
        self.store().close().await;
    }
}

/// How long processed envelope ids are remembered to show redeliveries
/// once: twice the longest a server keeps an envelope (30 days by default).
const SEEN_ENVELOPE_RETENTION_MILLIS: i64 = 60 * 86_400 * 1000;
