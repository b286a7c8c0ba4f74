//! Shards: one part of the input per process, on a scheduler that starts many (a Slurm array,
//! a Kubernetes Indexed Job), all writing into one output folder; then `rejudge merge` checks
//! that every part was judged alike and writes the report and card of the whole.
//!
//! A shard judges a contiguous range of rows, numbered as in the whole input, so its rows come
//! out exactly as an unsharded run's would. It writes `data/train-0000I-of-0000N.*`, its own
//! journal, and a manifest under `shards/` holding everything the merge needs: what was judged
//! and how (to refuse mixing), the counts, and the rows for the review page.

use super::RunError;
use crate::report::{Description, Measures, Report, Review, Tally};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Which part of the input a process judges: `index` of `count`, 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This part, from 0.
    pub index: u32,
    /// Parts in all.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` (0-based: `0/4` to `3/4`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("{text}: expected I/N, e.g. 0/4"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text}: expected I/N with whole numbers"))
        };
        Shard::new(number(index)?, number(count)?)
    }

    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > 99_999 || index >= count {
            return Err(format!(
                "{index}/{count}: the shard must be 0 to {} of 1 to 99999 shards",
                count.saturating_sub(1)
            ));
        }
        Ok(Shard { index, count })
    }

    /// The rows of `rows` this shard judges.
    pub fn rows(self, rows: u64) -> Range<u64> {
        let (index, count) = (u64::from(self.index), u64::from(self.count));
        // The products fit: rows < 2^48 in practice and count < 10^5.
        let start = u128::from(rows) * u128::from(index) / u128::from(count);
        let end = u128::from(rows) * u128::from(index + 1) / u128::from(count);
        u64::try_from(start).unwrap_or(u64::MAX)..u64::try_from(end).unwrap_or(u64::MAX)
    }

    /// `00002-of-00004`, as the file names carry it.
    pub fn label(self) -> String {
        format!("{:05}-of-{:05}", self.index, self.count)
    }
}

/// What a finished shard leaves for the merge.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// This shard.
    pub shard: Shard,
    /// What identifies the input: its name, rows and schema.
    pub input: String,
    /// What identifies how rows were judged: judges, template, protocol, order, seed, margin.
    pub judging: String,
    /// The data file, relative to the output folder.
    pub data_file: String,
    /// What was run.
    pub description: Description,
    /// The shard's counts.
    pub tally: Tally,
    /// The shard's measures.
    pub measures: Measures,
    /// The rows of the review page.
    pub review: Review,
}

/// The folder of the manifests.
pub(super) fn manifest_path(folder: &Path, shard: Shard) -> PathBuf {
    folder
        .join("shards")
        .join(format!("manifest-{}.json", shard.label()))
}

/// Writes a shard's manifest, atomically: its presence says the shard is complete.
pub(super) fn write_manifest(folder: &Path, manifest: &Manifest) -> Result<(), RunError> {
    let path = manifest_path(folder, manifest.shard);
    fs_err::create_dir_all(folder.join("shards")).map_err(RunError::Folder)?;
    let json = serde_json::to_string(manifest).expect("a manifest serialises; this is a bug");
    crate::report::write_atomically(&path, json.as_bytes())?;
    Ok(())
}

/// Errors of `rejudge merge`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// No manifest at all.
    #[error("{folder}: no finished shard (no shards/manifest-*.json)\nhint: run the shards first: rejudge rerank INPUT --output {folder} --shard I/N", folder = folder.display())]
    Nothing {
        /// The output folder.
        folder: PathBuf,
    },
    /// Some shards have not finished.
    #[error("{folder}: {missing} of {count} shards are not finished: {names}\nhint: run them (or rerun them: they resume), then merge again", folder = folder.display())]
    Missing {
        /// The output folder.
        folder: PathBuf,
        /// How many are missing.
        missing: u32,
        /// Shards in all.
        count: u32,
        /// Their numbers.
        names: String,
    },
    /// The shards were not all made alike.
    #[error("{folder}: shard {shard} {what}\nhint: every shard must judge the same input with the same judge and settings and the same shard count; rerun it with them", folder = folder.display())]
    Mismatch {
        /// The output folder.
        folder: PathBuf,
        /// The odd shard.
        shard: String,
        /// What differs.
        what: String,
    },
    /// A manifest cannot be read.
    #[error("{path}: not a readable shard manifest: {message}", path = path.display())]
    Unreadable {
        /// The manifest.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Reads every manifest of `folder` and checks they make one whole.
pub fn read_manifests(folder: &Path) -> Result<Vec<Manifest>, RunError> {
    let mut manifests = Vec::new();
    let shards = folder.join("shards");
    let Ok(entries) = fs_err::read_dir(&shards) else {
        return Err(merge(MergeError::Nothing {
            folder: folder.to_path_buf(),
        }));
    };
    for entry in entries {
        let path = entry.map_err(RunError::Folder)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !(name.starts_with("manifest-") && path.extension().is_some_and(|e| e == "json")) {
            continue;
        }
        let text = fs_err::read_to_string(&path).map_err(RunError::Folder)?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            merge(MergeError::Unreadable {
                path: path.clone(),
                message: e.to_string(),
            })
        })?;
        manifests.push(manifest);
    }
    check(folder, &mut manifests)?;
    Ok(manifests)
}

fn merge(error: MergeError) -> RunError {
    RunError::Merge(Box::new(error))
}

/// Every shard present once, all of one count, input and judging.
fn check(folder: &Path, manifests: &mut [Manifest]) -> Result<(), RunError> {
    manifests.sort_by_key(|m| m.shard.index);
    let Some(first) = manifests.first() else {
        return Err(merge(MergeError::Nothing {
            folder: folder.to_path_buf(),
        }));
    };
    let (count, input, judging) = (
        first.shard.count,
        first.input.clone(),
        first.judging.clone(),
    );
    let mismatch = |manifest: &Manifest, what: String| {
        merge(MergeError::Mismatch {
            folder: folder.to_path_buf(),
            shard: manifest.shard.label(),
            what,
        })
    };
    for manifest in manifests.iter() {
        if manifest.shard.count != count {
            return Err(mismatch(
                manifest,
                format!(
                    "is one of {} shards, the first one of {count}",
                    manifest.shard.count
                ),
            ));
        }
        if manifest.input != input {
            return Err(mismatch(
                manifest,
                format!("judged another input ({})", manifest.input),
            ));
        }
        if manifest.judging != judging {
            return Err(mismatch(
                manifest,
                "was judged with other judges or settings".to_owned(),
            ));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|index| !manifests.iter().any(|m| m.shard.index == *index))
        .map(|index| index.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(merge(MergeError::Missing {
            folder: folder.to_path_buf(),
            missing: u32::try_from(missing.len()).unwrap_or(u32::MAX),
            count,
            names: missing.join(", "),
        }));
    }
    Ok(())
}

/// The report of the whole from its shards' manifests, written to the folder with the card,
/// the plots and the review page, as an unsharded run writes them.
pub fn merge_shards(folder: &Path, settings: Option<&str>) -> Result<Report, RunError> {
    let manifests = read_manifests(folder)?;
    let mut tally = Tally::default();
    let mut review = Review::default();
    let mut measures = Measures::default();
    for manifest in &manifests {
        tally.merge(&manifest.tally);
        review.merge(&manifest.review);
        measures.merge(&manifest.measures);
    }
    let first = &manifests[0];
    measures.output = folder.join(&first.data_file);
    let mut report = Report::new(first.description.clone(), tally.clone(), measures);
    report.files = manifests.iter().map(|m| m.data_file.clone()).collect();
    let schema = crate::dataset::schema_of(&folder.join(&first.data_file))?;
    super::publish(folder, &report, &tally, &review, &schema, settings)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_rows_without_gaps_or_overlaps() {
        for (rows, count) in [(10u64, 4u32), (3, 4), (1_000_003, 7), (0, 2)] {
            let mut next = 0;
            for index in 0..count {
                let range = Shard::new(index, count).unwrap().rows(rows);
                assert_eq!(range.start, next);
                next = range.end;
            }
            assert_eq!(next, rows);
        }
        assert_eq!(Shard::parse("2/4").unwrap().rows(10), 5..7);
        for bad in ["4/4", "1/0", "x/2", "3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Shard::parse("2/4").unwrap().label(), "00002-of-00004");
    }
}
