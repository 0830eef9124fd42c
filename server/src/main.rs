//! `starling-server`: `serve` (default), `migrate`, `admin`, `audit`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum_server::tls_rustls::RustlsAcceptor;
use clap::{Parser, Subcommand};
use starling_server::config::ConnectionsConfig;
use starling_server::config::{Config, TlsMode};
use starling_server::listener::CappedAcceptor;
use starling_server::revocation::{self, spawn_revocations};
use starling_server::store::Store;
use starling_server::{AppState, app, audit, spawn_expiry, tls};

#[derive(Parser)]
#[command(
    name = "starling-server",
    version,
    about = "Starling's end-to-end encrypted message server"
)]
struct Cli {
    /// TOML configuration file (every setting has a default).
    #[arg(long, env = "STARLING_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// How log lines are written to stderr: `text` (coloured only on a
    /// terminal) or `json` (one object per line, for log collectors).
    /// What is logged is chosen with RUST_LOG (default `info`).
    #[arg(long, env = "STARLING_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How the server writes its log.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Lines for people; colour codes only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: admin_cli::AdminCommand,
    },
    /// Check the live database against DATA_INVENTORY.md.
    Audit,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Writes a line to stdout. A stdout that went away (the reader of a pipe
/// left, as `tee` does on Ctrl-C) is no reason to panic: the line is lost.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Whether log lines are JSON objects (`--log-format json`): the lines the
/// server says on stderr become log events then, so that stderr stays one
/// object per line.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// [`out!`] for stderr, or an `info` event when logs are JSON.
macro_rules! say {
    ($($arg:tt)*) => {{
        if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!("{}", format_args!($($arg)*));
        } else {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), $($arg)*);
        }
    }};
}

mod admin_cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::error!("starling-server: {error}");
            } else {
                say!("starling-server: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let config = Config::load(cli.config.as_deref())?;
    if matches!(cli.command, None | Some(Command::Serve)) {
        config.check_listener()?;
    }
    let explicit = cli.config.is_some() || std::env::var_os("STARLING_DATA_DIR").is_some();
    if matches!(cli.command, Some(Command::Admin { .. } | Command::Audit)) && !explicit {
        check_data_found(&config)?;
    }
    let store = Store::open(config.database_url.as_deref(), &config.data_dir).await?;
    // A backup copies the database as it is, without changing it first.
    let backup = matches!(
        &cli.command,
        Some(Command::Admin {
            command: admin_cli::AdminCommand::Backup { .. }
        })
    );
    if !backup {
        store.migrate().await?;
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(store, config).await,
        Command::Migrate => {
            out!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { command } => admin_cli::run(store, &config, command).await,
        Command::Audit => run_audit(&store).await,
    }
}

/// Refuses to administer a server that is not there: run from another
/// folder without the server's `--config` or `STARLING_DATA_DIR`, an admin
/// command would otherwise create an empty database in the default folder
/// and act on it. (A folder named explicitly is created, so that invites
/// and the directory can be prepared before the first start.)
fn check_data_found(config: &Config) -> Result<(), Error> {
    let database = config.data_dir.join(starling_server::backup::DATABASE_FILE);
    if config.database_url.is_some() || database.exists() {
        return Ok(());
    }
    let folder = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    Err(format!(
        "no server data in {}: give the server's --config FILE or STARLING_DATA_DIR (the server prints its data folder when it starts)",
        folder.display()
    )
    .into())
}

/// Gives hyper a timer, without which its header-read timeout is off, and
/// the deadline: a connection that sends no complete request head within
/// it (a new one, or a kept-alive one between requests) is closed.
fn with_deadlines(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    config: &ConnectionsConfig,
) {
    let deadline = Duration::from_secs(config.header_read_timeout_seconds.max(1));
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(deadline);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(deadline)
        .keep_alive_timeout(deadline);
}

async fn serve(store: Store, mut config: Config) -> Result<ExitCode, Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addr = config.listen;
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    // Bound first: a second server on the port starts nothing else.
    let listener = bind(addr)?;
    let addr = listener.local_addr()?;
    let accounts = !store.list_accounts().await?.is_empty();
    starling_server::services::certificates::check_keys_present(&config.data_dir, accounts)?;
    starling_server::transparency::check_key_files(&store, &config.data_dir).await?;
    let folder = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    say!(
        "data folder: {} (admin commands elsewhere: STARLING_DATA_DIR={})",
        folder.display(),
        folder.display()
    );
    let relay = start_relay(&mut config, addr).await?;
    let state = AppState::new(store.clone(), config.clone())?;
    let expiry = spawn_expiry(state.clone(), Duration::from_secs(60));
    let revocations = spawn_revocations(state.clone(), revocation::POLL_EVERY);
    // The peer address reaches handlers (unidentified sends are limited
    // by it).
    let mut router = app(state);
    if let Some(relay) = relay {
        router = router.nest(starling_server::relay::PATH, relay);
    }
    let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone(), grace));
    let acceptor = CappedAcceptor::new(&config.connections);
    match config.tls.mode {
        TlsMode::PlainHttp => {
            say!(
                "starling-server listening on http://{addr} (plain HTTP: put a TLS proxy in front)"
            );
            let acceptor = starling_server::listener::FirstBytesDeadline::new(
                acceptor,
                Duration::from_secs(config.connections.header_read_timeout_seconds.max(1)),
            );
            let mut server = axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle);
            with_deadlines(server.http_builder(), &config.connections);
            server.serve(router).await?;
        }
        mode => {
            let material = match mode {
                TlsMode::Files => tls::from_files(
                    config
                        .tls
                        .cert_path
                        .clone()
                        .ok_or("tls.cert_path is required with mode = files")?,
                    config
                        .tls
                        .key_path
                        .clone()
                        .ok_or("tls.key_path is required with mode = files")?,
                )?,
                _ => tls::ensure_self_signed(&config.data_dir)?,
            };
            let rustls_config = axum_server::tls_rustls::RustlsConfig::from_pem_file(
                &material.cert_path,
                &material.key_path,
            )
            .await?;
            say!("starling-server listening on https://{addr}");
            say!("certificate SHA-256 fingerprint: {}", material.fingerprint);
            out!("{}", material.fingerprint);
            let acceptor = RustlsAcceptor::new(rustls_config)
                .handshake_timeout(Duration::from_secs(
                    config.connections.handshake_timeout_seconds.max(1),
                ))
                .acceptor(acceptor);
            let acceptor = starling_server::listener::FirstBytesDeadline::new(
                acceptor,
                Duration::from_secs(config.connections.header_read_timeout_seconds.max(1)),
            );
            let mut server = axum_server::from_tcp(listener)
                .acceptor(acceptor)
                .handle(handle);
            with_deadlines(server.http_builder(), &config.connections);
            server.serve(router).await?;
        }
    }
    expiry.abort();
    revocations.abort();
    store.close().await;
    say!("starling-server stopped");
    Ok(ExitCode::SUCCESS)
}

/// Starts the media relay in-process unless a separate one is configured
/// (`calls.relay_url`) or it is turned off; clients are then sent to it at
/// the relative URL [`starling_server::relay::PATH`]. Returns its router.
async fn start_relay(
    config: &mut Config,
    listen: std::net::SocketAddr,
) -> Result<Option<axum::Router>, Error> {
    if let Some(url) = &config.calls.relay_url {
        say!("media relay: {url} (separate)");
        return Ok(None);
    }
    if !config.relay.embedded {
        say!(
            "media relay: none (calls are refused: set calls.relay_url or [relay] embedded = true)"
        );
        return Ok(None);
    }
    let signer = starling_server::services::calls::load_or_create_signer(&config.data_dir)?;
    let token = config.metrics.token.as_ref().map(|t| t.0.clone());
    let relay =
        starling_server::relay::start(&config.relay, listen, signer.public_key(), token).await?;
    let tcp = relay
        .public_tcp
        .map_or(String::new(), |addr| format!(", ICE-TCP {addr}"));
    say!(
        "media relay: in-process, media at udp {}{tcp}",
        relay.public_udp
    );
    config.calls.relay_url = Some(starling_server::relay::PATH.to_owned());
    Ok(Some(relay.router))
}

/// Sends tracing's output to stderr in `format`.
fn init_logging(format: LogFormat) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A stderr whose reader left (`| tee` after Ctrl-C) must not turn
        // every log line into a panic (its report goes to stderr too).
        .log_internal_errors(false);
    match format {
        LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            logs.json().init();
        }
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Binds the listening socket before anything says the server listens, so
/// that a port in use is an error naming the address.
fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, Error> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Resolves at the next Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}

/// How long after the drain's deadline the process ends regardless.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// At the first signal, drains connections for `grace`; at a second one,
/// or when the drain overruns, ends the process at once. Ctrl-C thus always
/// stops the server, whatever holds it (a client that never lets go, a
/// terminal pipe whose reader left).
async fn shutdown_on_signal(handle: axum_server::Handle, grace: Duration) {
    stop_signal().await;
    handle.graceful_shutdown(Some(grace));
    tracing::info!("shutting down: draining connections (Ctrl-C again to stop at once)");
    tokio::select! {
        () = stop_signal() => say!("starling-server: stopped at once"),
        () = tokio::time::sleep(grace + STOP_MARGIN) => {
            say!("starling-server: connections did not close in time; stopped");
        }
    }
    std::process::exit(1);
}

async fn run_audit(store: &Store) -> Result<ExitCode, Error> {
    let report = audit::audit(store).await?;
    out!("database: {:?}", store.backend());
    out!("accounts: {}", report.accounts);
    out!(
        "queued envelopes: {} ({} bytes of ciphertext), oldest: {}",
        report.queue.count,
        report.queue.bytes,
        report
            .queue
            .oldest
            .map_or("none".to_string(), |t| format!("{t} ms since epoch"))
    );
    for table in &report.tables {
        out!(
            "table {}: {} rows; {}",
            table.name,
            table.rows,
            table.metadata
        );
    }
    let envelopes = &report.envelopes;
    out!(
        "envelopes: {} sealed (no sender stored), {} unsealed (sender visible)",
        envelopes.sealed,
        envelopes.unsealed
    );
    if envelopes.sealed_with_sender > 0 {
        out!(
            "FAIL: {} sealed envelope rows name a sender",
            envelopes.sealed_with_sender
        );
    }
    if envelopes.sealed_unpadded > 0 {
        out!(
            "FAIL: {} sealed envelope rows are not a padding bucket long",
            envelopes.sealed_unpadded
        );
    }
    if envelopes.fine_times > 0 {
        out!(
            "FAIL: {} envelope rows keep a time finer than the hour",
            envelopes.fine_times
        );
    }
    for (table, column) in &report.missing {
        out!("note: declared column {table}.{column} is not in the database");
    }
    for (table, column) in &report.undeclared {
        out!("FAIL: undeclared column {table}.{column}");
    }
    if report.passed() {
        out!(
            "audit passed: every column is declared in DATA_INVENTORY.md, and every envelope row keeps only what it says"
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
