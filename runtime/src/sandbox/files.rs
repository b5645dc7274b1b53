//! Read-only access to exactly the host files an initialiser was granted.
//!
//! WASI grants directories, not files. To grant one file without its neighbours, each run gets
//! a private staging directory per granted parent directory, holding fresh copies of just the
//! granted files, preopened read-only at the parent's own path: the guest opens
//! `/seed/acme.json` as the operator wrote it and sees nothing else in `/seed`. The copies are
//! made at the start of each run (so an edited seed file is picked up, as upstream re-reads it)
//! and removed with the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The staging directories of one run; dropping it removes them.
pub(crate) struct StagedFiles {
    _dirs: Vec<TempDir>,
}

/// Copy `files` into staging directories and preopen them in `wasi`. A granted file that does
/// not exist (yet) is simply absent inside the sandbox, as it is on the host.
pub(crate) fn stage(files: &[PathBuf], wasi: &mut WasiCtxBuilder) -> std::io::Result<StagedFiles> {
    let mut by_parent: BTreeMap<&Path, Vec<&Path>> = BTreeMap::new();
    for file in files {
        if let Some(parent) = file.parent() {
            by_parent.entry(parent).or_default().push(file);
        }
    }
    let mut dirs = Vec::with_capacity(by_parent.len());
    for (parent, files) in by_parent {
        let staging = tempfile::Builder::new().prefix("bootstrap-wasm-grant-").tempdir()?;
        for file in files {
            let Some(file_name) = file.file_name() else { continue };
            match std::fs::copy(file, staging.path().join(file_name)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(std::io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
            }
        }
        wasi.preopened_dir(staging.path(), parent.to_string_lossy(), FsPerms::ReadOnly)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", parent.display())))?;
        dirs.push(staging);
    }
    Ok(StagedFiles { _dirs: dirs })
}
