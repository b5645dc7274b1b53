//! What a tenant's last load read, stamped, so that an unchanged tenant costs a few `stat`s.
//!
//! A stamp is what `stat` says of a file (device, inode, size, modification and change times,
//! symlinks followed): a file rewritten in place changes its times, one replaced by a rename
//! (an editor's save, Kubernetes swapping a ConfigMap's `..data`) its inode. Comparing stamps
//! is how each wake finds the tenants whose files changed, without reading any.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::components::KnownComponent;

/// One file as `stat` saw it; `None` when it did not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    pub(super) fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// Every file a tenant's load depended on, stamped: its own files (for a directory, the
/// tenant files in it, so that one added or removed shows), and each component it named with
/// that component's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sources {
    /// By path. A tenant's path turned from a file into a directory (or back) shows as other
    /// paths.
    stamps: Vec<(PathBuf, Option<Stamp>)>,
}

impl Sources {
    /// Stamp a tenant's `files` (those at its path, listed afresh) and `components`.
    pub(super) fn stamp(files: &[PathBuf], components: &[PathBuf]) -> Self {
        let mut stamps: Vec<_> = files.iter().map(|file| (file.clone(), Stamp::of(file))).collect();
        for component in components {
            stamps.push((component.clone(), Stamp::of(component)));
            let signature = signature_path(component);
            let stamp = Stamp::of(&signature);
            stamps.push((signature, stamp));
        }
        Self { stamps }
    }
}

impl Sources {
    /// These stamps of a tenant's own files, and those its load took of `components` and
    /// their signatures (in [`Sources::stamp`]'s order).
    pub(super) fn with_components(mut self, components: &HashMap<PathBuf, KnownComponent>) -> Self {
        let mut paths: Vec<&PathBuf> = components.keys().collect();
        paths.sort();
        for path in paths {
            let known = &components[path];
            self.stamps.push((path.clone(), known.stamp));
            self.stamps.push((signature_path(path), known.signature_stamp));
        }
        self
    }
}

/// Where a component's detached signature is: beside it, as minisign writes it.
pub(super) fn signature_path(component: &Path) -> PathBuf {
    let mut path = component.as_os_str().to_owned();
    path.push(".minisig");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_a_rename_or_a_new_file_changes_the_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acme.yaml");
        std::fs::write(&file, "initialisers: []").unwrap();
        let component = dir.path().join("c.wasm");
        let stamp = || Sources::stamp(std::slice::from_ref(&file), std::slice::from_ref(&component));
        let before = stamp();
        assert_eq!(before, stamp(), "nothing changed");

        std::fs::write(&component, b"wasm").unwrap();
        let with_component = stamp();
        assert_ne!(before, with_component, "the component appeared");

        let replacement = dir.path().join(".acme.tmp");
        std::fs::write(&replacement, "initialisers: []").unwrap();
        std::fs::rename(&replacement, &file).unwrap();
        assert_ne!(with_component, stamp(), "renamed over");
        assert_eq!(signature_path(&component), dir.path().join("c.wasm.minisig"));
    }
}
