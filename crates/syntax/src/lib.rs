pub mod expr;
pub mod htaccess;
