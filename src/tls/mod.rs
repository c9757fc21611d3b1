//! Certificates: loading PEM files, making self-signed ones, rustls configs.
