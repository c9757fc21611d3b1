//! The .htaccess engine (being written).
