//! Whether a folder is on a network filesystem.
//!
//! The engine `stat`s on the async workers, as nginx does: on a local
//! disk a `stat` costs a microsecond and a hop to the blocking pool would
//! cost more than the work.  On NFS, CIFS, a FUSE mount or a cluster
//! filesystem a `stat` can hang for as long as the server is away, and a
//! hung worker would stall every site's connections queued on it.  A
//! site whose root is on such a filesystem therefore runs its whole
//! engine on the blocking pool, within its share of it and a deadline
//! (`engine::limits`), so a hung mount costs its own sites' slots only.

use std::path::Path;

/// Filesystem types whose operations can block on a remote party.
const NETWORK_TYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "ceph",
    "glusterfs",
    "lustre",
    "gpfs",
    "beegfs",
    "afs",
    "ocfs2",
    "gfs2",
    "sshfs",
    "davfs",
];

/// Whether `fstype` (as `/proc/self/mountinfo` names it) can block on a
/// remote party: a known network filesystem, or any FUSE filesystem
/// (sshfs, s3fs, rclone…: a user-space server may hang).
pub(crate) fn is_network_type(fstype: &str) -> bool {
    fstype.starts_with("fuse") || NETWORK_TYPES.contains(&fstype)
}

/// The filesystem type of the mount holding `path` (the longest mount
/// point that is a prefix of it), from `mountinfo`'s text.
pub(crate) fn fs_type_in(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options... - type source super-options
        let mut fields = line.split(' ');
        let mount_point = fields.nth(4)?;
        let mount_point = unescape_octal(mount_point);
        let (_, after) = line.split_once(" - ")?;
        let fstype = after.split(' ').next()?.to_string();
        if path.starts_with(&mount_point)
            && best
                .as_ref()
                .map_or(true, |(len, _)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), fstype));
        }
    }
    best.map(|(_, t)| t)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's mount table (`/proc/self/mountinfo`), read once per
/// configuration load and asked for every site.
pub fn mount_table() -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo").ok()
}

/// Whether `root` is on a network filesystem according to `mounts` (from
/// [`mount_table`]; `false` when that cannot be told).
pub fn is_network_path(mounts: Option<&str>, root: &Path) -> bool {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    mounts
        .and_then(|m| fs_type_in(m, &root))
        .is_some_and(|t| is_network_type(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /srv/nfs rw,relatime - nfs4 filer:/export rw,vers=4.2
41 40 0:41 / /srv/nfs/local rw,relatime - ext4 /dev/vdb rw
42 27 0:42 / /mnt/my\\040drive rw - fuse.sshfs host: rw
";

    #[test]
    fn the_longest_mount_point_wins() {
        let t = |p: &str| fs_type_in(MOUNTINFO, Path::new(p));
        assert_eq!(t("/var/www").as_deref(), Some("ext4"));
        assert_eq!(t("/srv/nfs/site").as_deref(), Some("nfs4"));
        assert_eq!(t("/srv/nfs/local/site").as_deref(), Some("ext4"));
        assert_eq!(t("/srv/nfsx").as_deref(), Some("ext4"));
        assert_eq!(t("/mnt/my drive/site").as_deref(), Some("fuse.sshfs"));
    }

    #[test]
    fn network_types() {
        assert!(is_network_type("nfs4"));
        assert!(is_network_type("fuse.sshfs"));
        assert!(is_network_type("cifs"));
        assert!(!is_network_type("ext4"));
        assert!(!is_network_type("tmpfs"));
        assert!(!is_network_type("overlay"));
    }

    #[test]
    fn this_machines_temp_folder_is_local() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!is_network_path(mount_table().as_deref(), dir.path()));
    }
}
