//! The state folder's file I/O: `claude_bottle_io::fs` (crash-safe writes, reads and folders that
//! never follow a symlink, the same code supervise writes the queue with), with the state folder's
//! own read bound.
//!
//! Every call names the state folder as its root: a symlink planted anywhere below it (in the
//! queue supervise writes into, say) is refused rather than followed.

use std::path::Path;

pub use claude_bottle_io::fs::FsError as AtomicError;
pub use claude_bottle_io::fs::{
    DIR_MODE, FILE_MODE, Overwrite, TEMP_PREFIX, check_no_symlinks, create_new, ensure_dir_in,
    open_append_in, open_in, sync_dir, write_atomic, write_atomic_in, write_atomic_mode,
};

/// Largest state file read whole; queue records are a few KiB.
pub const MAX_READ: u64 = 1024 * 1024;

/// Reads the regular file `path` inside `root`, at most [`MAX_READ`] bytes, refusing symlinks on
/// the way. `Ok(None)` when it does not exist.
pub fn read_in(root: &Path, path: &Path) -> Result<Option<Vec<u8>>, AtomicError> {
    claude_bottle_io::fs::read_in(root, path, MAX_READ)
}
