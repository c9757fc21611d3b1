//! The `.htaccess` engine: compiles each directory's `.htaccess` once
//! (`compile`, `rewrite`, `template`, `pattern`, `headers`, `access`,
//! `config`), keeps them per site (`site`), and runs a request through
//! Apache's phases with per-directory semantics (`request`,
//! `rewrite_exec`, `respond`).

mod access;
mod auth;
pub mod compile;
mod config;
mod conn;
mod dispatch;
pub mod fs_kind;
mod headers;
pub mod limits;
pub mod lint;
mod listing_cache;
mod passwords;
mod pattern;
mod php;
pub mod php_gate;
pub mod request;
pub mod respond;
mod rewrite;
mod rewrite_exec;
pub mod site;
pub mod stat_cache;
mod template;
pub mod trace;

pub use conn::ConnInfo;
