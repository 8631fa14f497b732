//! Tests against the real OKX capture: the book checked against OKX's own
//! checksums row by row, and the processor's bars against an independent
//! computation in plain floating point.

use crate::harness::{json, okx_capture, processor};
use orderflow::model::{Book, Level, Side};
use orderflow::source::levels::parse_levels;
use std::collections::{BTreeMap, HashMap};

const FILES: [&str; 3] = [
    "BTC-USDT-2022-05-13.db",
    "BTC-USD-220527-2022-05-13.db",
    "UNI-USD-SWAP-2022-05-13.db",
];

/// OKX's checksum: CRC32 (as i32) of the best 25 levels interleaved as
/// `bidPx:bidSz:askPx:askSz:…`, from the exchange's own strings.
fn okx_checksum(book: &Book, text: &HashMap<(bool, i64), (String, String)>) -> i32 {
    let bids: Vec<Level> = book.bids().take(25).collect();
    let asks: Vec<Level> = book.asks().take(25).collect();
    let mut parts = Vec::new();
    for i in 0..25 {
        for (is_bid, side) in [(true, &bids), (false, &asks)] {
            if let Some(l) = side.get(i) {
                let (p, s) = &text[&(is_bid, l.price.raw())];
                parts.push(format!("{p}:{s}"));
            }
        }
    }
    crc32fast::hash(parts.join(":").as_bytes()) as i32
}

#[test]
fn the_book_matches_okx_checksums_on_every_row() {
    let Some(dir) = okx_capture() else { return };
    for file in FILES {
        let expected: Vec<i32> =
            serde_json::from_value(json(&dir.join(format!("{file}.checksums.json")))).unwrap();
        let conn = rusqlite::Connection::open(dir.join(file)).unwrap();
        let mut stmt = conn
            .prepare("SELECT bids, asks FROM book ORDER BY id")
            .unwrap();
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows.len(),
            expected.len(),
            "{file}: one checksum per book row"
        );
        let mut book = Book::new();
        let mut text: HashMap<(bool, i64), (String, String)> = HashMap::new();
        let mut levels = Vec::new();
        for (n, (bids, asks)) in rows.iter().enumerate() {
            for (is_bid, side, raw) in [(true, Side::Bid, bids), (false, Side::Ask, asks)] {
                parse_levels(raw, &mut levels).unwrap();
                book.apply_all(side, &levels);
                // Keep the exchange's strings for the checksum.
                let strings: Vec<Vec<String>> = serde_json::from_str(raw).unwrap();
                for (l, s) in levels.iter().zip(&strings) {
                    text.insert((is_bid, l.price.raw()), (s[0].clone(), s[1].clone()));
                }
            }
            book.check_integrity().unwrap();
            assert_eq!(
                okx_checksum(&book, &text),
                expected[n],
                "{file}: checksum after book row {}",
                n + 1
            );
        }
    }
}

/// Bars computed independently: plain f64, a hash-map book, SQL ordering.
fn expected_bars(db: &std::path::Path, window_ms: i64) -> (Vec<[f64; 6]>, Vec<[f64; 9]>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    // (ts, kind 0 = book 1 = trade, id) gives the merge order: book first on ties.
    let mut events: Vec<(i64, u8, i64)> = Vec::new();
    for (sql, kind) in [
        ("SELECT timestamp, id FROM book", 0u8),
        ("SELECT timestamp, id FROM trades", 1),
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, kind, r.get::<_, i64>(1)?)))
            .unwrap();
        events.extend(rows.map(Result::unwrap));
    }
    events.sort();
    let mut bids: HashMap<String, f64> = HashMap::new();
    let mut asks: HashMap<String, f64> = HashMap::new();
    let mut cvd = 0.0f64;
    let mut ohlc: BTreeMap<i64, [f64; 6]> = BTreeMap::new();
    let mut metrics: BTreeMap<i64, [f64; 9]> = BTreeMap::new();
    for (ts, kind, id) in events {
        let w = ts.div_euclid(window_ms) * window_ms;
        if kind == 0 {
            let (b, a): (String, String) = conn
                .query_row("SELECT bids, asks FROM book WHERE id = ?1", [id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            for (side, text) in [(&mut bids, b), (&mut asks, a)] {
                let levels: Vec<Vec<String>> = serde_json::from_str(&text).unwrap();
                for l in levels {
                    let size: f64 = l[1].parse().unwrap();
                    let key = format!("{}", l[0].parse::<f64>().unwrap());
                    if size <= 0.0 {
                        side.remove(&key);
                    } else {
                        side.insert(key, size);
                    }
                }
            }
        } else {
            let (price, size, side): (f64, f64, String) = conn
                .query_row(
                    "SELECT price, size, side FROM trades WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            let bar = ohlc
                .entry(w)
                .or_insert([w as f64, price, price, price, price, 0.0]);
            bar[2] = bar[2].max(price);
            bar[3] = bar[3].min(price);
            bar[4] = price;
            bar[5] += size;
            cvd += match side.as_str() {
                "buy" => size,
                "sell" => -size,
                _ => 0.0,
            };
        }
        let b: f64 = bids.values().sum();
        let a: f64 = asks.values().sum();
        let obi = if b + a == 0.0 { 0.0 } else { (b - a) / (b + a) };
        let m = metrics
            .entry(w)
            .or_insert([w as f64, obi, obi, obi, obi, cvd, cvd, cvd, cvd]);
        m[2] = m[2].max(obi);
        m[3] = m[3].min(obi);
        m[4] = obi;
        m[6] = m[6].max(cvd);
        m[7] = m[7].min(cvd);
        m[8] = cvd;
    }
    (
        ohlc.into_values().collect(),
        metrics.into_values().collect(),
    )
}

fn assert_close(got: &serde_json::Value, want: &[f64], what: &str) {
    let got: Vec<f64> = serde_json::from_value(got.clone()).unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "{what} column {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn one_second_bars_on_the_real_capture_match_an_independent_computation() {
    let Some(dir) = okx_capture() else { return };
    for file in FILES {
        let instrument = file.trim_end_matches("-2022-05-13.db");
        let out = tempfile::tempdir().unwrap();
        let o = out.path().to_str().unwrap();
        let run = processor(&[
            instrument,
            "2022-05-13",
            "2022-05-13",
            "--window-seconds",
            "1",
            "--data-root",
            dir.to_str().unwrap(),
            "--out",
            o,
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let (ohlc, metrics) = expected_bars(&dir.join(file), 1000);
        assert!(
            !ohlc.is_empty() && metrics.len() > 5,
            "{file}: the capture has bars"
        );
        let got_ohlc = json(&out.path().join("ohlc_data.json"));
        let got_metrics = json(&out.path().join("metrics_data.json"));
        let got_ohlc = got_ohlc.as_array().unwrap();
        let got_metrics = got_metrics.as_array().unwrap();
        assert_eq!(got_ohlc.len(), ohlc.len(), "{file}: OHLC bars");
        assert_eq!(got_metrics.len(), metrics.len(), "{file}: metric bars");
        for (g, w) in got_ohlc.iter().zip(&ohlc) {
            assert_close(g, w, &format!("{file} OHLC bar {}", w[0]));
        }
        for (g, w) in got_metrics.iter().zip(&metrics) {
            assert_close(g, w, &format!("{file} metric bar {}", w[0]));
        }
        let status = json(&out.path().join("status.json"));
        assert_eq!(status["state"], "finished");
        assert_eq!(status["skipped_rows"], 0);
    }
}

#[test]
fn the_store_of_three_real_instruments_matches_an_independent_replay() {
    use crate::store::{reference, stored_bars, RefBar, TIMEFRAMES};
    let Some(dir) = okx_capture() else { return };
    let out = tempfile::tempdir().unwrap();
    let tfs: Vec<&str> = TIMEFRAMES.iter().map(|(t, _)| *t).collect();
    let run = processor(&[
        "BTC-USDT",
        "2022-05-13",
        "2022-05-13",
        "--with",
        "BTC-USD-220527",
        "--with",
        "UNI-USD-SWAP",
        "--timeframes",
        &tfs.join(","),
        "--data-root",
        dir.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for instrument in ["BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP"] {
        let r = reference(&dir.join(format!("{instrument}-2022-05-13.db")));
        for (tf, w) in TIMEFRAMES {
            let want: Vec<serde_json::Value> = r.bars[tf].iter().map(RefBar::json).collect();
            assert!(!want.is_empty());
            assert_eq!(
                stored_bars(out.path(), instrument, tf, w),
                want,
                "{instrument}/{tf}"
            );
        }
    }
}
