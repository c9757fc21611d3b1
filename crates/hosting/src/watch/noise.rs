//! Names of editors', FTP clients' and tools' scratch files.
//!
//! Saving a file rarely touches only that file: vim probes the folder with
//! `4913`, keeps `.name.swp` and writes `name~`; emacs keeps `#name#` and
//! `.#name`; `sed -i`, rsync, WinSCP and GNOME write a temporary file and
//! rename it over the real one. None of these is a change by itself; the
//! rename onto the real name is, and the watcher sees it as an event for the
//! destination name, which is never noise.

use std::ffi::OsStr;

/// Suffixes (compared ASCII-case-insensitively, Windows FTP clients upload
/// `FILE.TMP`) that mark a scratch or backup copy.
const NOISE_SUFFIXES: &[&str] = &[
    ".tmp",
    ".temp",
    ".bak",
    ".orig",
    ".filepart",    // WinSCP's upload-then-rename
    ".part",        // browsers' and several FTP clients' partial downloads
    ".crdownload",  // Chromium's partial downloads
    ".kate-swp",    // Kate
    "___jb_tmp___", // JetBrains "safe write"
    "___jb_old___", // JetBrains "safe write"
    ".dpkg-tmp",    // dpkg while unpacking
    ".dpkg-new",    // dpkg while unpacking
];

/// Prefixes of scratch files.
const NOISE_PREFIXES: &[&str] = &[
    ".~lock.",         // LibreOffice lock files
    ".nfs",            // NFS "silly rename" of a file deleted while open
    ".goutputstream-", // GNOME/GIO atomic save
    ".#",              // emacs lock link
    "~$",              // MS Office owner file
];

/// Editors' swap/backup/temp files that never count as a change by
/// themselves: `.htaccess.swp`, `.htaccess.swx`, `.htaccess~`,
/// `#.htaccess#`, `.#.htaccess`, vim's `4913`, `*.tmp`, `.*.tmp-*`, `*.bak`,
/// `*.orig`, `.~lock.*`, `.nfs*`, `.goutputstream-*`, `sedXXXXXX`, rsync's
/// `.name.XXXXXX`, WinSCP's `*.filepart` ... A rename of such a file ONTO
/// `.htaccess` is a change of `.htaccess` (the destination counts).
pub(crate) fn is_editor_noise(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    let lower = name.to_ascii_lowercase();
    NOISE_SUFFIXES.iter().any(|s| lower.ends_with(s))
        || NOISE_PREFIXES.iter().any(|p| name.starts_with(p))
        || name.ends_with('~')
        || (name.len() > 2 && name.starts_with('#') && name.ends_with('#'))
        || is_vim_swap(&name)
        || is_vim_write_probe(&name)
        || is_dotted_tmp(&name)
        || is_sed_temp(&name)
        || is_rsync_temp(&name)
}

/// vim's swap files: `.name.swp`, then `.swo`, `.swn` ... down to `.swa`
/// when older ones exist, and `.swx` for its "can I create a swap file" probe.
fn is_vim_swap(name: &str) -> bool {
    let Some(ext) = name.strip_prefix('.').and_then(|n| n.rsplit_once('.')) else {
        return false;
    };
    let ext = ext.1.as_bytes();
    ext.len() == 3 && ext.starts_with(b"sw") && matches!(ext[2], b'a'..=b'p' | b'x')
}

/// vim checks whether it may create files in a folder by creating `4913`
/// (then 5036, 5159 ... in steps of 123 while such a name exists).
fn is_vim_write_probe(name: &str) -> bool {
    if name.is_empty() || name.len() > 6 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    name.parse::<u32>()
        .map(|n| n >= 4913 && (n - 4913) % 123 == 0)
        .unwrap_or(false)
}

/// `.*.tmp-*`: hidden temp copies such as `.htaccess.tmp-12345` (many
/// deploy tools and atomic-write libraries).
fn is_dotted_tmp(name: &str) -> bool {
    name.starts_with('.') && name.to_ascii_lowercase().contains(".tmp-")
}

/// `sed -i` writes `sedXXXXXX` (6 random alphanumerics) in the same folder
/// and renames it over the edited file.
fn is_sed_temp(name: &str) -> bool {
    name.len() == 9
        && name.starts_with("sed")
        && name.bytes().skip(3).all(|b| b.is_ascii_alphanumeric())
}

/// rsync (without --inplace) writes `.name.XXXXXX` and renames it over
/// `name`.
fn is_rsync_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once('.') {
        Some((stem, suffix)) => {
            !stem.is_empty()
                && suffix.len() == 6
                && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_editor_noise;
    use std::ffi::OsStr;

    fn noise(name: &str) -> bool {
        is_editor_noise(OsStr::new(name))
    }

    #[test]
    fn editor_scratch_files_are_noise() {
        for name in [
            ".htaccess.swp",
            ".htaccess.swx",
            ".htaccess.swo",
            ".htaccess~",
            "#.htaccess#",
            ".#.htaccess",
            "4913",
            "5036",
            "x.tmp",
            "X.TMP",
            ".htaccess.tmp-1234",
            "htaccess.bak",
            ".htaccess.orig",
            ".~lock.cert.pem#",
            ".nfs000000000123",
            ".goutputstream-ABC123",
            "sedAb12Cd",
            ".htaccess.a1B2c3",
            "cert.pem.filepart",
            "key.pem___jb_tmp___",
        ] {
            assert!(noise(name), "{name} should be noise");
        }
    }

    #[test]
    fn real_files_are_not_noise() {
        for name in [
            ".htaccess",
            "htgate.toml",
            "cert.pem",
            "fullchain.pem",
            "privkey.pem",
            "index.php",
            "4914",
            "49130",
            "#",
            "sed",
            "sedimentary",
            ".htpasswd",
            "site.swp",
        ] {
            assert!(!noise(name), "{name} should not be noise");
        }
    }
}
