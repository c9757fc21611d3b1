//! Customer certificates: validating an uploaded PEM certificate, chain
//! and key (`validate`), and installing it where the server finds it
//! (`upload`).  The rustls configs themselves are the server's
//! (`crate::server::tls`).

pub mod upload;
pub mod validate;
