//! Broken input files for error-path tests.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

/// Paths to inputs that an analyser must reject (or, for `truncated`, survive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInputs {
    /// A 0-byte file named `empty.mp4`.
    pub empty: PathBuf,
    /// 1 MiB of pseudo-random bytes named `random.mp4` (fixed seed, identical every run).
    pub random: PathBuf,
    /// A plain-text file named `text_as_mp4.mp4`: the extension lies.
    pub text_as_mp4: PathBuf,
    /// The first 40 % of the bytes of the good clip. With an MP4 written with
    /// `+faststart` (index first) or an MKV it still opens and part of it decodes.
    pub truncated: PathBuf,
    /// A path in `dir` that does not exist.
    pub missing: PathBuf,
}

/// Size of the `random` file.
const RANDOM_BYTES: usize = 1 << 20;
/// Fraction of the good clip kept in `truncated`.
const TRUNCATED_FRACTION: f64 = 0.4;

/// SplitMix64: a tiny, well-mixed PRNG; enough for junk bytes (and seeded colours)
/// without a `rand` crate.
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Pseudo-random bytes from a fixed seed, so failures reproduce.
fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Writes the bad inputs into `dir`. `good_clip` is the source of `truncated`; make it
/// an MP4 from [`crate::make_clip`] (which uses `+faststart`) or an MKV.
pub fn make_bad_inputs(dir: &Path, good_clip: &Path) -> Result<BadInputs> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let empty = dir.join("empty.mp4");
    fs::write(&empty, b"").with_context(|| format!("writing {}", empty.display()))?;

    let random = dir.join("random.mp4");
    fs::write(
        &random,
        pseudo_random_bytes(RANDOM_BYTES, 0x5EED_F00D_BAD5_F11E),
    )
    .with_context(|| format!("writing {}", random.display()))?;

    let text_as_mp4 = dir.join("text_as_mp4.mp4");
    fs::write(
        &text_as_mp4,
        "This is a plain text file with an .mp4 extension.\n\
         A video analyser must report that it is not a media file.\n",
    )
    .with_context(|| format!("writing {}", text_as_mp4.display()))?;

    let good = fs::read(good_clip)
        .with_context(|| format!("reading good clip {}", good_clip.display()))?;
    ensure!(
        good.len() >= 1024,
        "good clip {} is only {} bytes; cannot make a meaningful truncated copy",
        good_clip.display(),
        good.len()
    );
    let keep = (good.len() as f64 * TRUNCATED_FRACTION) as usize;
    let extension = good_clip
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mp4".to_owned());
    let truncated = dir.join(format!("truncated.{extension}"));
    fs::write(&truncated, &good[..keep])
        .with_context(|| format!("writing {}", truncated.display()))?;

    let missing = dir.join("missing.mp4");
    if missing.exists() {
        fs::remove_file(&missing).with_context(|| format!("removing {}", missing.display()))?;
    }

    Ok(BadInputs {
        empty,
        random,
        text_as_mp4,
        truncated,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_deterministic_and_varied() {
        let a = pseudo_random_bytes(4096, 42);
        let b = pseudo_random_bytes(4096, 42);
        assert_eq!(a, b);
        assert_eq!(a.len(), 4096);
        let distinct = a.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(distinct > 250, "only {distinct} distinct byte values");
    }
}
