//! Files named `<prefix><number>.log` (journal files, segments): listing a directory for them.

use std::path::{Path, PathBuf};

use crate::error::BookieError;

/// Every `<prefix><number>.log` file in `dir` as `(number, path)`, ascending by number. Other
/// names are skipped. `what` names the directory in errors ("journal", "ledger").
pub(super) fn list(
    dir: &Path,
    prefix: &str,
    what: &str,
) -> Result<Vec<(u64, PathBuf)>, BookieError> {
    let context = || format!("list {what} directory");
    let mut out = vec![];
    let rd = std::fs::read_dir(dir).map_err(|e| BookieError::io(context(), e))?;
    for ent in rd {
        let ent = ent.map_err(|e| BookieError::io(context(), e))?;
        let name = ent.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            out.push((number, ent.path()));
        }
    }
    out.sort();
    Ok(out)
}
