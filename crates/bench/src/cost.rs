//! The cost model is `vqa_core::cost` (pure arithmetic, which the live monitor uses too);
//! here it is re-exported for the bench, with the reading of a user's price table.

use std::path::Path;

pub use vqa_core::cost::*;

use crate::BenchError;

/// A user's price table (`--prices`); errors name the file and the field.
pub fn load_prices(path: &Path) -> Result<PriceTable, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::PricesRead {
        path: path.display().to_string(),
        source,
    })?;
    PriceTable::parse(&text).map_err(|e| BenchError::Prices {
        path: path.display().to_string(),
        reason: e.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_table_with_a_mistake_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            DEFAULT_PRICES.replace("per_gb_second =", "per_gb_secnd ="),
        )
        .unwrap();
        let err = load_prices(&path).unwrap_err().to_string();
        assert!(
            err.contains("p.toml") && err.contains("per_gb_secnd"),
            "{err}"
        );
    }
}
