//! Input: finding the SQLite files of an instrument and date range,
//! streaming their rows, and parsing level text.

pub mod levels;
