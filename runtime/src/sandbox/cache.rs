//! The compile cache: components compiled once, then loaded from disk on later starts.
//!
//! Compiling is the costly step of a start, seconds for an interpreted Python or JavaScript
//! guest, where loading a compiled artefact takes a fraction of that (docs/performance.md,
//! "Loading a component: compiling, precompiled, cached"). Artefacts are keyed by the component's SHA-256 and by the engine's settings
//! (wasmtime's compatibility hash), so a changed component or an upgraded runtime compiles
//! afresh. A write is atomic (a temporary file, then a rename), so a crash leaves no half file.
//!
//! Loading an artefact runs native code produced by the compiler: the cache directory must be
//! the operator's own. It is created private (0700), and anything that fails to load is
//! compiled again and replaced.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::integrity::Digest;

/// A directory of compiled components for one engine configuration.
#[derive(Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir, engine_key: format!("{:016x}", hasher.finish()) }
    }

    /// The compiled `bytes` (whose SHA-256 is `digest`), from the cache, or else from the
    /// build's precompiled `artefact` or compiled now (and then cached either way: a cached file
    /// is mapped, not copied, so later starts keep less of it resident than of the binary's
    /// embedded copy). A hit reads nothing of `bytes`.
    pub fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: Digest,
        artefact: Option<&[u8]>,
    ) -> wasmtime::Result<Component> {
        let path = self.path_for(digest);
        if path.exists() {
            // SAFETY: the file is one this cache wrote from wasmtime's own `serialize`, in the
            // operator's private directory (see the module's documentation); a file that does
            // not load is compiled again below.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "loaded a compiled component from the cache");
                    return Ok(component);
                }
                Err(e) => tracing::warn!(path = %path.display(), "ignoring an unusable cache entry: {e}"),
            }
        }
        let component = super::precompiled::compile(engine, bytes, artefact)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compile cache: {e}");
        }
        Ok(component)
    }

    fn path_for(&self, digest: Digest) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    fn store(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let serialized = component.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
        let staging = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::fs::write(staging.path(), serialized)?;
        staging.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_load_comes_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = CompileCache::new(dir.path().join("cache"), &engine);
        let bytes = wat_component();
        let digest = Digest::of(&bytes);
        cache.component(&engine, &bytes, digest, None).unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path().join("cache")).unwrap().collect();
        assert_eq!(entries.len(), 1, "one compiled artefact");
        // A corrupt entry is replaced, not trusted.
        let path = cache.path_for(digest);
        assert!(path.to_str().unwrap().contains(&digest.to_string()), "keyed by the component's SHA-256");
        std::fs::write(&path, b"garbage").unwrap();
        cache.component(&engine, &bytes, digest, None).unwrap();
        assert_ne!(std::fs::read(&path).unwrap(), b"garbage");
        // The entry now loads as it is.
        assert!(unsafe { Component::deserialize_file(&engine, &path) }.is_ok());
    }

    /// The smallest component: no imports, no exports.
    fn wat_component() -> Vec<u8> {
        // `(component)` in the binary format: magic, then the component layer's version.
        vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]
    }
}
