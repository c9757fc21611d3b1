//! The QUIC side of a TLS listener: the same certificate resolver as its
//! TCP side (so certificate choice by SNI and hot reload are the same),
//! TLS 1.3 only (QUIC has no other), ALPN `h3`, no 0-RTT, and transport
//! limits taken from the [`Limits`] HTTP/2 has.

use crate::limits::Limits;
use crate::tls::{provider, TlsError};
use quinn::{IdleTimeout, VarInt};
use std::sync::Arc;
use std::time::Duration;

/// The ALPN protocol of HTTP/3 (RFC 9114).
pub(crate) const ALPN_H3: &[u8] = b"h3";

/// Unidirectional streams a client may open: HTTP/3 needs three (control,
/// QPACK encoder and decoder); the rest leaves room for grease streams.
const MAX_UNI_STREAMS: u32 = 8;

/// Flow-control window of one request stream: what a client's request
/// body may have in flight unread (the body is read by the handler, at
/// its own pace).
const STREAM_RECEIVE_WINDOW: u32 = 1024 * 1024;

/// Flow-control window of a whole connection.
const CONNECTION_RECEIVE_WINDOW: u32 = 4 * 1024 * 1024;

/// The QUIC server configuration of a listener whose TCP side uses `tls`.
pub(crate) fn quic_server_config(
    tls: &rustls::ServerConfig,
    limits: &Limits,
) -> Result<quinn::ServerConfig, TlsError> {
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(crypto(tls)?)
        .map_err(|e| TlsError::Config(format!("QUIC: {e}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(Arc::new(transport(limits)));
    Ok(server)
}

/// The TLS side: `tls`'s certificates and resumption keys, TLS 1.3, `h3`.
fn crypto(tls: &rustls::ServerConfig) -> Result<rustls::ServerConfig, TlsError> {
    let mut crypto = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&tls.cert_resolver));
    crypto.alpn_protocols = vec![ALPN_H3.to_vec()];
    // 0-RTT requests can be replayed by anyone who saw them; a GET that a
    // customer's PHP treats as an action must not run twice.
    crypto.max_early_data_size = 0;
    // Resumption keys shared with the TCP side.
    crypto.ticketer = Arc::clone(&tls.ticketer);
    crypto.session_storage = Arc::clone(&tls.session_storage);
    Ok(crypto)
}

/// Transport limits: streams as HTTP/2's, windows bounded, the idle
/// timeout the TCP side's.
fn transport(limits: &Limits) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(limits.h2_max_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        // What a connection may have sent and not yet acknowledged.
        .send_window(u64::try_from(limits.h2_max_send_buf.max(256 * 1024)).unwrap_or(u64::MAX) * 4)
        .max_idle_timeout(Some(idle_timeout(limits.idle_timeout)))
        // HTTP/3 does not use QUIC datagrams.
        .datagram_receive_buffer_size(None);
    t
}

/// QUIC's idle timeout (a variable-length integer of milliseconds).
fn idle_timeout(d: Duration) -> IdleTimeout {
    IdleTimeout::try_from(d).unwrap_or_else(|_| IdleTimeout::from(VarInt::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_offers_h3_over_tls13_without_early_data_and_the_same_certificates() {
        let (certs, key) = crate::tls::self_signed(&["q.test".to_string()]).expect("cert");
        let tcp = crate::tls::server_config(certs, key).expect("config");
        let quic = crypto(&tcp).expect("crypto");
        assert_eq!(quic.alpn_protocols, vec![b"h3".to_vec()]);
        assert_eq!(quic.max_early_data_size, 0, "no 0-RTT");
        assert!(Arc::ptr_eq(&quic.cert_resolver, &tcp.cert_resolver));
        assert!(quic_server_config(&tcp, &Limits::default()).is_ok());
    }
}
