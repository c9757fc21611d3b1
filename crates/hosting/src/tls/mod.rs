//! Customer certificates: validating an uploaded PEM certificate, chain
//! and key (`validate`), and installing it where the server finds it
//! (`upload`).  The rustls configs themselves are the server's
//! (`htgate_server::tls`).

pub mod upload;
pub mod validate;
