//! Apache's (and APR's) small helpers that several modules need, defined
//! once.

pub mod fnmatch;
