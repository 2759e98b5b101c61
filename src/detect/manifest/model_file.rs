//! The ONNX file a manifest names: present, and the very file the manifest describes (its
//! sha256), so a swapped or half-copied model is refused before ORT opens it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Problem;

/// Why the model file cannot be used; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{}: {source}; run scripts/setup (or scripts/quantize for the INT8 model) to place it", file.display())]
    Unreadable { file: PathBuf, source: std::io::Error },
    #[error(
        "{} has sha256 {got} but the manifest says {want}: this is not the file the manifest describes; place the right file or, if the file is right, update sha256",
        file.display()
    )]
    Sha256Mismatch { file: PathBuf, got: String, want: String },
}

impl ModelFileError {
    /// The manifest key to fix.
    pub fn key(&self) -> &'static str {
        match self {
            ModelFileError::Unreadable { .. } => "file",
            ModelFileError::Sha256Mismatch { .. } => "sha256",
        }
    }
}

/// A manifest's problems are listed by key, with the rest of them.
impl From<ModelFileError> for Problem {
    fn from(e: ModelFileError) -> Problem {
        Problem { key: e.key().to_string(), message: e.to_string() }
    }
}

/// `file` can be read and, when the manifest gives a `sha256`, has it.
pub(super) fn verify_file(file: &Path, sha256: Option<&str>) -> Result<(), ModelFileError> {
    let bytes =
        std::fs::read(file).map_err(|source| ModelFileError::Unreadable { file: file.to_path_buf(), source })?;
    let Some(want) = sha256 else { return Ok(()) };
    let got = hex(&Sha256::digest(&bytes));
    if got != want {
        return Err(ModelFileError::Sha256Mismatch { file: file.to_path_buf(), got, want: want.to_string() });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_another_sha256_is_named() {
        let f = std::env::temp_dir().join(format!("lookout-sha-{}.onnx", std::process::id()));
        std::fs::write(&f, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert!(verify_file(&f, Some(abc)).is_ok());
        let p = Problem::from(verify_file(&f, Some(&"0".repeat(64))).unwrap_err());
        assert_eq!(p.key, "sha256");
        assert!(p.message.contains(&format!("has sha256 {abc} but the manifest says 000")), "{}", p.message);
        let _ = std::fs::remove_file(&f);
        let e = verify_file(&f, Some(abc)).unwrap_err();
        assert_eq!(e.key(), "file");
        assert!(e.to_string().ends_with("to place it"), "{e}");
    }
}
