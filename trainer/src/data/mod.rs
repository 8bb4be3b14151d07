//! Data preparation: read → normalize → clean → dedup → split, with a short report.
pub mod clean;
pub mod dedup;
pub mod normalize;
pub mod split;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

pub use normalize::Normalization;

use crate::error::{Result, TrainError};

#[derive(Clone, Debug)]
pub struct PrepareOptions {
    pub normalization: Normalization,
    /// Near-duplicate Jaccard threshold; above 1 disables near-duplicate removal.
    pub near_dup_threshold: f64,
    /// Drop repeated lines of at least this many characters (0 = keep all lines).
    pub dedup_lines_min_chars: usize,
    pub val_fraction: f64,
    pub seed: u64,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            normalization: Normalization::Nfc,
            near_dup_threshold: 0.8,
            dedup_lines_min_chars: 0,
            val_fraction: 0.1,
            seed: 1337,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PrepareReport {
    pub docs_read: usize,
    pub docs_kept: usize,
    pub docs_empty: usize,
    pub docs_exact_dup: usize,
    pub docs_near_dup: usize,
    pub lines_dropped: usize,
    pub chars_cleaned: usize,
    pub docs_train: usize,
    pub docs_val: usize,
    pub chars_train: usize,
    pub chars_val: usize,
    pub tokens_train: usize,
    pub tokens_val: usize,
}

impl PrepareReport {
    pub fn to_json(&self) -> Value {
        json!({
            "docs_read": self.docs_read,
            "docs_kept": self.docs_kept,
            "docs_dropped_empty": self.docs_empty,
            "docs_dropped_exact_duplicate": self.docs_exact_dup,
            "docs_dropped_near_duplicate": self.docs_near_dup,
            "lines_dropped_duplicate": self.lines_dropped,
            "chars_cleaned": self.chars_cleaned,
            "train": {"docs": self.docs_train, "chars": self.chars_train, "tokens": self.tokens_train},
            "val": {"docs": self.docs_val, "chars": self.chars_val, "tokens": self.tokens_val},
        })
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let kept = self.docs_kept;
        let mut s = format!(
            "documents: {} read, {kept} kept, {} dropped (empty {}, exact dup {}, near dup {})",
            self.docs_read,
            self.docs_read - kept,
            self.docs_empty,
            self.docs_exact_dup,
            self.docs_near_dup
        );
        if self.lines_dropped > 0 {
            s += &format!("; {} duplicate lines dropped", self.lines_dropped);
        }
        let tokens = |n: usize| {
            if self.tokens_train > 0 {
                format!(", {n} tokens")
            } else {
                String::new()
            }
        };
        s += &format!(
            "\ntrain: {} docs, {} chars{}\nval:   {} docs, {} chars{}",
            self.docs_train,
            self.chars_train,
            tokens(self.tokens_train),
            self.docs_val,
            self.chars_val,
            tokens(self.tokens_val)
        );
        s
    }
}

/// Train and validation documents after preparation.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub train: Vec<String>,
    pub val: Vec<String>,
}

/// The files of a corpus: PATH itself, or the regular files directly in directory PATH
/// (hidden files skipped), sorted by name so a run does not depend on directory order.
pub fn corpus_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| TrainError::Data(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| TrainError::io(path, e))? {
        let entry = entry.map_err(|e| TrainError::io(path, e))?;
        let p = entry.path();
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(TrainError::Data(format!(
            "{} contains no files",
            path.display()
        )));
    }
    Ok(files)
}

/// Reads each file as one document (invalid UTF-8 is replaced, not fatal).
pub fn read_documents(path: &Path) -> Result<Vec<String>> {
    corpus_files(path)?
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).map_err(|e| TrainError::io(&f, e))?;
            Ok(String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        })
        .collect()
}

/// The whole pipeline on in-memory documents.
pub fn prepare_documents(
    docs: Vec<String>,
    opts: &PrepareOptions,
) -> Result<(Prepared, PrepareReport)> {
    if !(opts.val_fraction > 0.0 && opts.val_fraction < 1.0) {
        return Err(TrainError::Config(format!(
            "--val-fraction {} must be in (0, 1)",
            opts.val_fraction
        )));
    }
    let mut report = PrepareReport {
        docs_read: docs.len(),
        ..Default::default()
    };
    let mut cleaned = Vec::with_capacity(docs.len());
    for d in docs {
        let (c, n) = clean::clean(&normalize::normalize(&d, opts.normalization));
        report.chars_cleaned += n;
        if c.is_empty() {
            report.docs_empty += 1;
        } else {
            cleaned.push(c);
        }
    }
    let (mut kept, stats) = dedup::dedup_documents(cleaned, opts.near_dup_threshold);
    report.docs_exact_dup = stats.exact;
    report.docs_near_dup = stats.near;
    if opts.dedup_lines_min_chars > 0 {
        report.lines_dropped = dedup::dedup_lines(&mut kept, opts.dedup_lines_min_chars);
        let before = kept.len();
        kept.retain(|d| !d.trim().is_empty());
        report.docs_empty += before - kept.len();
    }
    if kept.is_empty() {
        return Err(TrainError::Data("the corpus is empty after cleanup".into()));
    }
    report.docs_kept = kept.len();
    let (train, val) = split::split(kept, opts.val_fraction, opts.seed);
    report.docs_train = train.len();
    report.docs_val = val.len();
    report.chars_train = train.iter().map(|d| d.chars().count()).sum();
    report.chars_val = val.iter().map(|d| d.chars().count()).sum();
    if report.chars_train == 0 || report.chars_val == 0 {
        return Err(TrainError::Data(
            "the corpus is too small to split into train and validation".into(),
        ));
    }
    Ok((Prepared { train, val }, report))
}

/// Reads PATH and prepares it.
pub fn prepare(path: &Path, opts: &PrepareOptions) -> Result<(Prepared, PrepareReport)> {
    prepare_documents(read_documents(path)?, opts)
}

/// Documents of one split joined into one text, a blank line between documents.
pub fn join(docs: &[String]) -> String {
    docs.iter()
        .map(|d| d.trim_end_matches('\n'))
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_reports_what_it_dropped() {
        let docs = vec![
            "First doc.\r\n".to_string(),
            "\u{0}\u{0}\n".to_string(),
            "First doc.".to_string(),
            "Second doc, quite different.".to_string(),
            "Third one!".to_string(),
        ];
        let opts = PrepareOptions {
            val_fraction: 0.34,
            ..Default::default()
        };
        let (p, r) = prepare_documents(docs, &opts).unwrap();
        assert_eq!((r.docs_read, r.docs_empty, r.docs_exact_dup), (5, 1, 1));
        assert_eq!((p.train.len() + p.val.len(), r.docs_kept), (3, 3));
        assert_eq!(p.val.len(), 1);
        assert!(prepare_documents(vec!["\n \n".into()], &opts).is_err());
        assert!(prepare_documents(
            vec!["x".into()],
            &PrepareOptions {
                val_fraction: 0.0,
                ..opts
            }
        )
        .is_err());
    }
}
