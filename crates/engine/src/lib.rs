//! The `.htaccess` engine: compiles each directory's `.htaccess` once
//! (`compile`, `rewrite`, `template`, `pattern`, `headers`, `access`,
//! `config`), keeps them per site (`site`), and runs a request through
//! Apache's phases with per-directory semantics (`request`,
//! `rewrite_exec`, `respond`).

pub mod access;
pub mod auth;
pub mod compile;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod fs_kind;
pub mod headers;
pub mod limits;
pub mod lint;
pub mod listing_cache;
pub mod passwords;
pub mod pattern;
pub mod php;
pub mod php_gate;
pub mod request;
pub mod respond;
pub mod rewrite;
pub mod rewrite_exec;
pub mod site;
pub mod stat_cache;
pub mod template;
pub mod trace;

pub use conn::ConnInfo;
