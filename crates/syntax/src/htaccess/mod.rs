//! Reading `.htaccess` files: physical lines to logical lines (`lexer`),
//! logical lines to a syntax tree (`parser`, nom), the tree (`ast`) and the
//! diagnostics every later stage reuses (`diag`).

pub mod ast;
pub mod diag;
pub mod lexer;
pub mod parser;

pub use ast::{Arg, Directive, File, Node, Section, Span};
pub use diag::Diagnostic;
pub use parser::parse;
