//! The built-in demo site: a WordPress-style front controller behind a
//! force-HTTPS rule, written to a temporary folder that goes away with the
//! demo (on a stop and on a failed start alike).

const HTACCESS: &str = r#"# Force HTTPS (the rule hosting docs give their customers; the demo's TLS
# port is not 443, so it is written out)
RewriteEngine On
RewriteCond %{HTTPS} off
RewriteRule ^ https://%{SERVER_NAME}:HTTPS_PORT%{REQUEST_URI} [L,R=301]

# BEGIN WordPress (pointed at index.html: the demo runs no PHP, and a
# .php file without PHP-FPM would be sent as its source)
<IfModule mod_rewrite.c>
RewriteBase /
RewriteRule ^index\.html$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.html [L]
</IfModule>
# END WordPress

# HSTS means something only over HTTPS (browsers ignore it over HTTP, and
# RFC 6797 says not to send it there)
Header always set Strict-Transport-Security "max-age=300" "expr=%{HTTPS} == 'on'"
<Files "wp-config.php">
Require all denied
</Files>
"#;

const FRONT_CONTROLLER: &str = "<!DOCTYPE html>
<html><head><title>htgate demo</title></head>
<body>
<h1>htgate demo: the front controller</h1>
<p>This is <code>/index.html</code>. WordPress's rewrite rules send every URL that is
not a file or a folder here, as they send it to <code>index.php</code> on a
WordPress site.</p>
</body></html>
";

/// Writes the demo site; `https_port` is where the force-HTTPS rule sends
/// visitors.  The folder is removed when the returned value is dropped.
pub(super) fn write_site(https_port: u16) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("htgate-demo-").tempdir()?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("wp-content"))?;
    std::fs::write(
        root.join(".htaccess"),
        HTACCESS.replace("HTTPS_PORT", &https_port.to_string()),
    )?;
    std::fs::write(root.join("index.html"), FRONT_CONTROLLER)?;
    std::fs::write(root.join("wp-config.php"), "<?php /* secret */\n")?;
    std::fs::write(root.join("wp-content/style.css"), "body { color: #333 }\n")?;
    Ok(dir)
}
