//! Checking history files: what `cargo sim check FILE…` runs.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::{check, CheckOptions, CheckResult, Verdict};
use super::formats::{
    parse_jepsen_etcd, parse_jsonl, parse_porcupine_kv, HistoryFormat, ParseError,
};
use super::html::{explain, Explanation};
use super::model::{Model, Operation};
use super::models::{KvModel, PorcupineKvModel, RegisterModel};

/// Why one file could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckFileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is in none of the known formats.
    #[error("{path}: unknown history format (expected a Jepsen etcd log, a Porcupine kv log or JSON lines)")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The visualization could not be written.
    #[error("{path}: {source}")]
    WriteHtml {
        /// The HTML file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Why [`check_files`] could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckFilesError {
    /// The verdicts could not be printed.
    #[error("cannot print verdicts: {0}")]
    Print(#[source] io::Error),
}

/// The check of one file.
#[derive(Clone, Debug)]
pub struct FileCheck {
    /// The format detected.
    pub format: HistoryFormat,
    /// The number of operations in the history.
    pub ops: usize,
    /// The check's result (operation numbers index the parsed history).
    pub result: CheckResult,
    /// The explanation, ready for [`Explanation::to_html`].
    pub explanation: Explanation,
}

fn run<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
    title: &str,
) -> (CheckResult, Explanation) {
    let result = check(model, history, options);
    let explanation = explain(model, history, &result, title);
    (result, explanation)
}

/// Reads, parses and checks one history file. The format is detected from the content (and
/// from the extension if the file is blank): Jepsen etcd logs use [`RegisterModel`], Porcupine
/// kv logs [`PorcupineKvModel`] (partitioned by key), JSON lines [`KvModel`].
pub fn check_file(path: &Path, options: &CheckOptions) -> Result<FileCheck, CheckFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| CheckFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format =
        HistoryFormat::detect(path, &text).ok_or_else(|| CheckFileError::UnknownFormat {
            path: path.to_path_buf(),
        })?;
    let name = path.display().to_string();
    let (ops, (result, explanation)) = match format {
        HistoryFormat::JepsenEtcd => {
            let h = parse_jepsen_etcd(&name, &text)?;
            (h.len(), run(&RegisterModel, &h, options, &name))
        }
        HistoryFormat::PorcupineKv => {
            let h = parse_porcupine_kv(&name, &text)?;
            (h.len(), run(&PorcupineKvModel, &h, options, &name))
        }
        HistoryFormat::Jsonl => {
            let h = parse_jsonl(&name, &text)?;
            (h.len(), run(&KvModel, &h, options, &name))
        }
    };
    Ok(FileCheck {
        format,
        ops,
        result,
        explanation,
    })
}

/// What [`check_files`] found for one file.
#[derive(Debug)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Its verdict and where its visualization was written, or why it could not be checked.
    pub outcome: Result<(Verdict, Option<PathBuf>), CheckFileError>,
}

/// Checks each file with a wall-clock `budget` per file, prints one line per file to standard
/// output (`PATH: linearizable`, `PATH: not linearizable (HTML)`, `PATH: unknown (HTML)` or
/// `PATH: error: …`) and writes the visualization of each history that is not linearizable or
/// unknown to `out_dir` (created if needed) as `<file name>.html`.
pub fn check_files(
    paths: &[PathBuf],
    out_dir: &Path,
    budget: Duration,
) -> Result<Vec<FileReport>, CheckFilesError> {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    check_files_to(paths, out_dir, budget, &mut lock)
}

/// [`check_files`], printing to `out`.
pub fn check_files_to(
    paths: &[PathBuf],
    out_dir: &Path,
    budget: Duration,
    out: &mut dyn Write,
) -> Result<Vec<FileReport>, CheckFilesError> {
    let options = CheckOptions::with_budget(budget);
    let mut used_names: BTreeSet<String> = BTreeSet::new();
    let mut reports = Vec::with_capacity(paths.len());
    for path in paths {
        let outcome = check_file(path, &options).and_then(|fc| {
            let verdict = fc.result.verdict;
            if verdict == Verdict::Linearizable {
                return Ok((verdict, None));
            }
            std::fs::create_dir_all(out_dir).map_err(|source| CheckFileError::WriteHtml {
                path: out_dir.to_path_buf(),
                source,
            })?;
            let base = path.file_name().map_or_else(
                || "history".to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let mut name = format!("{base}.html");
            let mut k = 2;
            while !used_names.insert(name.clone()) {
                name = format!("{base}-{k}.html");
                k += 1;
            }
            let html = out_dir.join(name);
            fc.explanation
                .write_html(&html)
                .map_err(|source| CheckFileError::WriteHtml {
                    path: html.clone(),
                    source,
                })?;
            Ok((verdict, Some(html)))
        });
        let line = match &outcome {
            Ok((v, None)) => format!("{}: {v}", path.display()),
            Ok((v, Some(html))) => format!("{}: {v} (see {})", path.display(), html.display()),
            Err(e) => format!("{}: error: {e}", path.display()),
        };
        writeln!(out, "{line}").map_err(CheckFilesError::Print)?;
        reports.push(FileReport {
            path: path.clone(),
            outcome,
        });
    }
    Ok(reports)
}
