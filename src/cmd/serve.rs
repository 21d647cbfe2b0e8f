//! `scimgate serve`: the HTTP server, TLS, SIGHUP for plugin reloads, and a clean stop;
//! `scimgate healthcheck` for Docker.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use scimgate::build;
use scimgate::config::FlagOverrides;
use scimgate::open_files;
use scimgate::reload::{ConfigSource, PluginReloader, Trigger};
use scimgate_http::build_app;
use scimgate_model::SystemClock;

use crate::{CliResult, HealthcheckArgs, ServeArgs, init_logging};

pub fn serve(args: ServeArgs) -> CliResult {
    let flags = FlagOverrides {
        listen: args.listen,
        data: args.data,
        database: args.database,
        public_base_url: args.public_base_url,
    };
    let source = ConfigSource {
        file: args.config,
        flags,
    };
    let config = source.load()?;
    let _log = init_logging(&config)?;
    scimgate::data_dir::create_private(&config.data).map_err(|e| {
        format!(
            "cannot create the data folder {}: {e}",
            config.data.display()
        )
    })?;
    let _data_lock = scimgate::data_dir::lock(&config.data)?;
    let built = build(&config, Arc::new(SystemClock))?;
    let state = built.state;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        (None, None) => None,
        _ => return Err("tls_cert and tls_key go together: set both or neither".into()),
    };
    let poll = (config.plugins.plugin_watch_interval_ms > 0)
        .then(|| Duration::from_millis(config.plugins.plugin_watch_interval_ms));
    let (reload, reload_thread) =
        PluginReloader::new(source, config.clone(), built.plugins, state.store.clone())
            .spawn(poll)?;
    let sighup = reload.clone();
    let from_page = std::sync::Mutex::new(reload.clone());
    state.console.set_reload(Box::new(move || {
        from_page
            .lock()
            .map_err(|_| "the reload channel".to_owned())?
            .send(Trigger::Signal)
            .map_err(|_| "the reload thread has stopped".to_owned())
    }));
    let workers = config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let reserve = open_files::reserved(config.store.read_connections);
    let cap = open_files::raise_and_cap(config.max_connections, workers, reserve);
    if cap.per_worker < config.max_connections {
        tracing::info!(
            configured = config.max_connections,
            per_worker = cap.per_worker,
            open_files_limit = cap.open_files,
            "max_connections lowered to fit the open-files limit"
        );
    }
    state.connections.set_cap(cap.total());
    let _watch = open_files::watch(Arc::clone(&state.connections));
    let background = built.background;
    let receivers = built.receivers;
    let store = Arc::clone(&state.store);
    let connections = Arc::clone(&state.connections);
    tracing::info!(listen = %config.listen, data = %config.data.display(), "scimgate starting");
    actix_web::rt::System::new().block_on(async move {
        reload_on_sighup(sighup);
        let mut server = actix_web::HttpServer::new(move || build_app(state.clone()))
            // Each connection is counted while it is open (its extensions drop with it).
            .on_connect(move |_, extensions| {
                extensions.insert(connections.opened());
            })
            .client_request_timeout(Duration::from_secs(config.header_timeout_secs))
            .client_disconnect_timeout(Duration::from_secs(5))
            .keep_alive(Duration::from_secs(config.keep_alive_secs))
            .max_connections(cap.per_worker)
            // On SIGTERM: stop accepting, give in-flight requests this long to finish.
            .shutdown_timeout(30);
        server = server.workers(workers);
        server = match &tls {
            Some(tls) => server.bind_rustls_0_23(&config.listen, tls.clone())?,
            None => server.bind(&config.listen)?,
        };
        server.run().await
    })?;
    // The receivers stop (one stuck on a hanging receiver is left after a short grace),
    // then what is still queued for the writer (audit rows, positions) is committed: the
    // store itself may outlive this if a stuck receiver holds it. The reload thread still
    // holds the plugin set: it stops too. All of it within a grace: background work
    // blocked on a database that holds its connections open and never answers must not
    // keep the process from stopping.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("scimgate-stop".into())
        .spawn(move || {
            drop(receivers);
            drop(background);
            if let Err(e) = store.flush() {
                tracing::warn!(error = %e, "could not commit what was queued at the stop");
            }
            drop(store);
            drop(reload);
            let _ = reload_thread.join();
            let _ = done.send(());
        })?;
    if finished.recv_timeout(STOP_GRACE).is_err() {
        tracing::warn!(
            grace_secs = STOP_GRACE.as_secs(),
            "background work did not stop within the grace (the database not answering?); \
             stopping without it: every acknowledged write is committed, what was queued \
             (audit rows of refused requests, feed positions) may not be"
        );
    }
    tracing::info!("scimgate stopped");
    Ok(())
}

/// How long the stop waits for background work and for what was queued to be committed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The server's TLS settings from PEM files: TLS 1.2 and 1.3, rustls's safe defaults.
pub(crate) fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_cert {}: no certificate in it", cert.display()).into());
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| format!("tls_cert and tls_key do not make a usable pair: {e}"))?;
    Ok(config)
}

/// Forwards each SIGHUP to the plugin reload thread.
fn reload_on_sighup(reload: std::sync::mpsc::Sender<Trigger>) {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    actix_web::rt::spawn(async move {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; plugins reload on file change only");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            if reload.send(Trigger::Signal).is_err() {
                return;
            }
        }
    });
}

/// An HTTP/1.1 GET of /healthz (over TLS when the server speaks it), so the runtime image
/// needs no curl.
pub fn healthcheck(args: HealthcheckArgs) -> CliResult {
    let config = scimgate::Config::load(args.config.as_deref(), &FlagOverrides::default())?;
    let addr = args.addr.unwrap_or_else(|| loopback(&config.listen));
    let tls = args.tls || config.tls_cert.is_some();
    let target = addr.to_socket_addrs()?.next().ok_or("no address")?;
    let mut tcp = TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
    tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(3)))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = Vec::new();
    if tls {
        let server_name = rustls::pki_types::ServerName::try_from(target.ip().to_string())?;
        let conn = rustls::ClientConnection::new(Arc::new(liveness_tls()?), server_name)?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream.write_all(request.as_bytes())?;
        // A server may end TLS without close_notify after `Connection: close`.
        if let Err(e) = stream.read_to_end(&mut response)
            && response.is_empty()
        {
            return Err(e.into());
        }
    } else {
        tcp.write_all(request.as_bytes())?;
        tcp.read_to_end(&mut response)?;
    }
    let response = String::from_utf8_lossy(&response);
    if response.starts_with("HTTP/1.1 200") {
        Ok(())
    } else if !response.starts_with("HTTP/") {
        Err(format!(
            "unhealthy: no HTTP answer from {addr}{}",
            if tls {
                ""
            } else {
                " (does it speak HTTPS? add --tls)"
            }
        )
        .into())
    } else {
        Err(format!(
            "unhealthy: {}",
            response.lines().next().unwrap_or("no answer")
        )
        .into())
    }
}

/// `listen` as a local client reaches it: every-address binds on loopback.
fn loopback(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => listen.to_owned(),
    }
}

/// A TLS client for the liveness check: it talks to the server on this host and only asks
/// whether it answers, so it takes any certificate (the server's may name a public host
/// name, not 127.0.0.1).
fn liveness_tls() -> Result<rustls::ClientConfig, Box<dyn std::error::Error>> {
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}
