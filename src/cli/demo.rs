//! The built-in demo site: a WordPress-style front controller behind a
//! force-HTTPS rule, written to a temporary folder.

use std::path::PathBuf;

const HTACCESS: &str = r#"# Force HTTPS (the rule hosting docs give their customers; the demo's TLS
# port is not 443, so it is written out)
RewriteEngine On
RewriteCond %{HTTPS} off
RewriteRule ^ https://%{SERVER_NAME}:HTTPS_PORT%{REQUEST_URI} [L,R=301]

# BEGIN WordPress
<IfModule mod_rewrite.c>
RewriteBase /
RewriteRule ^index\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>
# END WordPress

Header always set Strict-Transport-Security "max-age=300"
<Files "wp-config.php">
Require all denied
</Files>
"#;

/// Writes the demo site; `https_port` is where the force-HTTPS rule sends
/// visitors.
pub fn write_site(https_port: u16) -> std::io::Result<PathBuf> {
    let root = std::env::temp_dir().join(format!("htgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(root.join("wp-content"))?;
    std::fs::write(
        root.join(".htaccess"),
        HTACCESS.replace("HTTPS_PORT", &https_port.to_string()),
    )?;
    std::fs::write(
        root.join("index.php"),
        "<?php /* demo front controller: htgate served index.php for this URL */ ?>\n",
    )?;
    std::fs::write(root.join("wp-config.php"), "<?php /* secret */\n")?;
    std::fs::write(root.join("wp-content/style.css"), "body { color: #333 }\n")?;
    Ok(root)
}
