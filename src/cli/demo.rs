//! The built-in demo site: a WordPress-style front controller behind a
//! force-HTTPS rule, written to a temporary folder.

use std::path::PathBuf;

const HTACCESS: &str = r#"# Force HTTPS (the rule hosting docs give their customers)
RewriteEngine On
RewriteCond %{HTTPS} off
RewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]

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

pub fn write_site() -> std::io::Result<PathBuf> {
    let root = std::env::temp_dir().join(format!("htgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(root.join("wp-content"))?;
    std::fs::write(root.join(".htaccess"), HTACCESS)?;
    std::fs::write(
        root.join("index.php"),
        "<?php /* demo front controller: htgate served index.php for this URL */ ?>\n",
    )?;
    std::fs::write(root.join("wp-config.php"), "<?php /* secret */\n")?;
    std::fs::write(root.join("wp-content/style.css"), "body { color: #333 }\n")?;
    Ok(root)
}
