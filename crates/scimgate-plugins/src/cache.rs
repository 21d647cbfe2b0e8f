//! Compiled plugin code kept in the data folder, so that a restart does not recompile:
//! one file per module, named by a hash of the module's bytes and of the engine's build
//! and settings. This is the one place in scimgate that needs `unsafe`.

use std::hash::{Hash, Hasher};
use std::path::Path;

use blake2::{Blake2b512, Digest};
use wasmtime::{Engine, Module};

/// The module for `bytes`: from the cache when it holds one for this engine, else
/// compiled and stored there. A cache that cannot be read or written is only logged.
pub fn module(engine: &Engine, dir: &Path, bytes: &[u8]) -> wasmtime::Result<Module> {
    let file = dir.join(format!("{}.cwasm", key(engine, bytes)));
    if let Ok(compiled) = std::fs::read(&file) {
        // SAFETY: `deserialize` runs the native code it is given. The bytes are ours:
        // written below from a module this engine compiled, in the data folder that only
        // the service account can write, under a name that hashes the module's bytes and
        // the engine's compatibility; wasmtime also checks the engine fingerprint they
        // carry and refuses a mismatch, in which case we recompile. They are read into
        // memory rather than mapped, so a file changed later cannot pull pages from under
        // the running server.
        #[allow(unsafe_code)]
        match unsafe { Module::deserialize(engine, &compiled) } {
            Ok(module) => return Ok(module),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cached plugin code unusable; recompiling")
            }
        }
    }
    let module = Module::new(engine, bytes)?;
    if let Err(e) = store(dir, &file, &module) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot cache compiled plugin code");
    }
    Ok(module)
}

fn store(dir: &Path, file: &Path, module: &Module) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    // Inside the private data folder, and private itself: the cached code is loaded
    // without checks, so no other user may write it (or read the operator's plugins).
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = file.with_extension("tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?
        .write_all(&module.serialize()?)?;
    std::fs::rename(tmp, file)?;
    Ok(())
}

fn key(engine: &Engine, bytes: &[u8]) -> String {
    struct Blake(Blake2b512);
    impl Hasher for Blake {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = Blake(Blake2b512::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.0.update(bytes);
    h.0.finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}
