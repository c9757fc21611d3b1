//! htgate: a web server for shared hosting that runs customers' `.htaccess`
//! files as Apache httpd 2.4 does.
//!
//! The pipeline: `htaccess` reads a file into a syntax tree (nom); `engine`
//! compiles the tree into an immutable per-directory program (regexes
//! compiled once) and runs the programs of a request's directories with
//! Apache's per-directory semantics; `server` is the hyper + rustls front
//! that hands requests to the engine and serves files; `tls` makes and loads
//! certificates; `logs` writes the access and error logs; `metrics` counts
//! for the admin listener's `/metrics`; `expr` is Apache's `ap_expr`
//! language used by `<If>`, `RewriteCond expr` and `Header ... expr=`;
//! `cli` is the command line.

pub mod acme;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod content;
pub mod engine;
pub mod expr;
pub mod fastcgi;
pub mod hosting;
pub mod htaccess;
pub mod logs;
pub mod metrics;
pub mod server;
pub mod tls;
pub mod util;
pub mod watch;
