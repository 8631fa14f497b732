//! Input: finding the SQLite capture files of an instrument and date range
//! ([`discover`](mod@discover)), checking them and reading their rows
//! ([`sqlite`]), streaming each table in order on reader threads
//! ([`stream`]), and parsing level text ([`levels`]).
//!
//! This module reads; it never writes a capture and knows nothing of bars
//! or output files.

pub mod discover;
pub mod levels;
pub mod sqlite;
pub mod stream;

pub use discover::{discover, explicit, owner, InputFile};
pub use sqlite::{inspect, BookRow, FileInfo, Order, Position, Table, Trade, TradeRow};
pub use stream::{Next, StreamSpec, StreamStop, TableStream};

use chrono::NaiveDate;
use std::path::{Path, PathBuf};

/// Errors reading the input. Each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "data root {root} is not a directory; pass --data-root DIR or set ORDERFLOW_DATA_ROOT"
    )]
    DataRoot { root: PathBuf },
    #[error("cannot search {root}: {source}")]
    Walk {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no capture file for {instrument} from {start} to {end} under {root} \
         (expected names like {instrument}-{start}.db, or {instrument}/{start}/….db)"
    )]
    NoFiles {
        root: PathBuf,
        instrument: String,
        start: NaiveDate,
        end: NaiveDate,
    },
    #[error(
        "none of the --db files belongs to {instrument} (name them like \
         {instrument}-2024-01-01.db, or put them in a folder named {instrument})"
    )]
    NoExplicitFiles { instrument: String },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an SQLite database")]
    NotSqlite { path: PathBuf },
    #[error("{path} is truncated: {actual} bytes, its header says {expected}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path} has no table `{table}` (a capture needs `book` and `trades`)")]
    MissingTable { path: PathBuf, table: &'static str },
    #[error("{path}: table `{table}` has no column `{column}`")]
    MissingColumn {
        path: PathBuf,
        table: &'static str,
        column: &'static str,
    },
    #[error(
        "{path}: the `{table}` reader stopped early ({detail}); nothing after that point was read"
    )]
    ReaderLost {
        path: PathBuf,
        table: &'static str,
        detail: String,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

impl SourceError {
    /// Classifies an SQLite error on `path`.
    pub fn sqlite(path: &Path, e: rusqlite::Error) -> SourceError {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => SourceError::NotSqlite { path },
            Some(ErrorCode::DatabaseCorrupt) => SourceError::Corrupt {
                path,
                detail: e.to_string(),
            },
            _ => SourceError::Sqlite { path, source: e },
        }
    }
}
