//! The pure model: fixed-point numbers, the order book, rolling bars and the
//! engine that turns rows into bars.
//!
//! Nothing here does I/O or reads a clock, so every rule of the spec's §3
//! is unit- and property-tested here, and the processor's state can be
//! checkpointed by serialising an [`Engine`].

pub mod bars;
pub mod book;
pub mod fixed;
pub mod ladder;
pub mod rolling;

pub use bars::{Candle, Counters, Engine, EngineConfig, MetricBar, OhlcBar, TradeSide};
pub use book::{Book, Level, Side};
pub use fixed::Fixed;
pub use rolling::{Rolling, Timestamped};

/// Midnight UTC of `day`, in Unix milliseconds (the bounds of a replay).
pub fn day_start_ms(day: chrono::NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}
