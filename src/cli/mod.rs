//! The subcommands, one file each. `main.rs` only parses arguments and dispatches here.

pub mod bench;
pub mod check;
pub mod detect;
pub mod run;

use std::path::{Path, PathBuf};

/// Exit status for a config that does not validate (as `lookout check` documents).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the daemon cannot run or a camera failed.
pub const EXIT_FAILURE: u8 = 1;

/// A path as given, or relative to the config directory when relative and not found as given.
pub fn resolve_in(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.exists() { p.to_path_buf() } else { dir.join(p) }
}
