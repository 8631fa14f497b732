//! Parsing the `bids`/`asks` text of a book row into levels.
//!
//! Captures store levels in several textual forms, all accepted here:
//!
//! - JSON arrays of numbers or numeric strings, with any extra trailing
//!   fields: `[[30247.5, 0.1]]`, `[["30247.5","0.1","0","3"]]`;
//! - Python literals: `[(50000.0, 10.0, 0, 1)]`, `[('50000', '10')]`;
//! - objects: `[{"price": 1, "size": 2}]` or `[{"p": "1", "s": "2"}]`;
//! - an empty list `[]`.
//!
//! No general-purpose parser reads all of these (Python tuples and single
//! quotes are not JSON), and this is the processor's hot path, so it is a
//! small hand-written scanner over bytes that parses numbers straight into
//! [`Fixed`] without allocating. Anything else is a [`LevelError`] naming
//! the byte offset; a non-finite or negative price is an error too.

use crate::model::{Fixed, Level};

/// Why a level text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("unexpected {found} at byte {offset}, expected {expected}")]
    Syntax {
        offset: usize,
        expected: &'static str,
        found: String,
    },
    #[error("level {index} has no {field}")]
    Missing { index: usize, field: &'static str },
    #[error("level {index} has a {field} that is not a finite number: {text:?}")]
    NotANumber {
        index: usize,
        field: &'static str,
        text: String,
    },
    #[error("level {index} has a negative price {price}")]
    NegativePrice { index: usize, price: Fixed },
}

/// Parses `text` into `out` (cleared first).
pub fn parse_levels(text: &str, out: &mut Vec<Level>) -> Result<(), LevelError> {
    out.clear();
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    s.expect_open(b'[', "'['")?;
    s.ws();
    if s.eat(b']') {
        return s.end();
    }
    loop {
        let index = out.len();
        let level = s.level(index)?;
        if level.price.is_negative() {
            return Err(LevelError::NegativePrice {
                index,
                price: level.price,
            });
        }
        out.push(level);
        s.ws();
        if s.eat(b',') {
            s.ws();
            // Tolerate a trailing comma (Python allows it).
            if s.eat(b']') {
                return s.end();
            }
            continue;
        }
        if s.eat(b']') {
            return s.end();
        }
        return Err(s.error("',' or ']'"));
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// A scalar value: the bytes of a number, or of a string's contents.
type Token<'a> = &'a [u8];

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn error(&self, expected: &'static str) -> LevelError {
        let found = match self.b.get(self.i) {
            None => "end of text".to_string(),
            Some(_) => {
                let end = (self.i + 12).min(self.b.len());
                format!("{:?}", String::from_utf8_lossy(&self.b[self.i..end]))
            }
        };
        LevelError::Syntax {
            offset: self.i,
            expected,
            found,
        }
    }

    fn expect_open(&mut self, c: u8, expected: &'static str) -> Result<(), LevelError> {
        self.ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn end(&mut self) -> Result<(), LevelError> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(self.error("end of text"))
        }
    }

    /// One level: `[p, s, …]`, `(p, s, …)` or `{"price": p, "size": s, …}`.
    fn level(&mut self, index: usize) -> Result<Level, LevelError> {
        match self.b.get(self.i) {
            Some(b'[') => self.sequence(index, b']'),
            Some(b'(') => self.sequence(index, b')'),
            Some(b'{') => self.object(index),
            _ => Err(self.error("a level ('[', '(' or '{')")),
        }
    }

    fn sequence(&mut self, index: usize, close: u8) -> Result<Level, LevelError> {
        self.i += 1;
        let mut price = None;
        let mut size = None;
        let mut n = 0;
        self.ws();
        if !self.eat(close) {
            loop {
                self.ws();
                match n {
                    0 => price = Some(self.scalar()?),
                    1 => size = Some(self.scalar()?),
                    _ => self.skip_value()?,
                }
                n += 1;
                self.ws();
                if self.eat(b',') {
                    self.ws();
                    if self.eat(close) {
                        break;
                    }
                    continue;
                }
                if self.eat(close) {
                    break;
                }
                return Err(self.error(if close == b']' {
                    "',' or ']'"
                } else {
                    "',' or ')'"
                }));
            }
        }
        level_of(index, price, size)
    }

    fn object(&mut self, index: usize) -> Result<Level, LevelError> {
        self.i += 1;
        let mut price = None;
        let mut size = None;
        self.ws();
        if !self.eat(b'}') {
            loop {
                self.ws();
                let key = self.string().ok_or_else(|| self.error("a quoted key"))?;
                self.ws();
                if !self.eat(b':') {
                    return Err(self.error("':'"));
                }
                self.ws();
                match key {
                    b"price" | b"p" | b"px" => price = Some(self.scalar()?),
                    b"size" | b"s" | b"sz" | b"qty" | b"amount" => size = Some(self.scalar()?),
                    _ => self.skip_value()?,
                }
                self.ws();
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b'}') {
                    break;
                }
                return Err(self.error("',' or '}'"));
            }
        }
        level_of(index, price, size)
    }

    /// A quoted string (either quote), returning its contents.
    fn string(&mut self) -> Option<Token<'a>> {
        let quote = *self.b.get(self.i)?;
        if quote != b'"' && quote != b'\'' {
            return None;
        }
        let start = self.i + 1;
        let mut j = start;
        while j < self.b.len() {
            match self.b[j] {
                b'\\' => j += 2,
                c if c == quote => {
                    self.i = j + 1;
                    return Some(&self.b[start..j]);
                }
                _ => j += 1,
            }
        }
        None
    }

    /// A number, quoted number, or bare word (`None`, `NaN`): its bytes.
    fn scalar(&mut self) -> Result<Token<'a>, LevelError> {
        if let Some(s) = self.string() {
            return Ok(s);
        }
        let start = self.i;
        while self.i < self.b.len()
            && !matches!(
                self.b[self.i],
                b',' | b']' | b')' | b'}' | b' ' | b'\t' | b'\n' | b'\r'
            )
        {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.error("a number"));
        }
        Ok(&self.b[start..self.i])
    }

    /// Skips any value: scalar, string, or nested list/tuple/object.
    fn skip_value(&mut self) -> Result<(), LevelError> {
        match self.b.get(self.i) {
            Some(b'[') | Some(b'(') | Some(b'{') => {
                let mut depth = 0usize;
                while self.i < self.b.len() {
                    match self.b[self.i] {
                        b'[' | b'(' | b'{' => depth += 1,
                        b']' | b')' | b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(());
                            }
                        }
                        b'"' | b'\'' => {
                            if self.string().is_none() {
                                return Err(self.error("a closing quote"));
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                Err(self.error("a closing bracket"))
            }
            _ => self.scalar().map(|_| ()),
        }
    }
}

fn level_of(index: usize, price: Option<Token>, size: Option<Token>) -> Result<Level, LevelError> {
    let price = price.ok_or(LevelError::Missing {
        index,
        field: "price",
    })?;
    let size = size.ok_or(LevelError::Missing {
        index,
        field: "size",
    })?;
    Ok(Level::new(
        number(index, "price", price)?,
        number(index, "size", size)?,
    ))
}

fn number(index: usize, field: &'static str, token: Token) -> Result<Fixed, LevelError> {
    let trimmed = trim(token);
    Fixed::parse_bytes(trimmed).ok_or_else(|| LevelError::NotANumber {
        index,
        field,
        text: String::from_utf8_lossy(token).into_owned(),
    })
}

fn trim(mut t: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = t {
        if first.is_ascii_whitespace() {
            t = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = t {
        if last.is_ascii_whitespace() {
            t = rest;
        } else {
            break;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, LevelError> {
        let mut out = Vec::new();
        parse_levels(text, &mut out)?;
        Ok(out
            .iter()
            .map(|l| (l.price.to_string(), l.size.to_string()))
            .collect())
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn every_form_of_the_spec() {
        let want = pairs(&[("30247.5", "0.1"), ("30247", "2")]);
        for text in [
            "[[30247.5, 0.1], [30247, 2]]",
            r#"[["30247.5","0.1","0","3"],["30247","2","0","1"]]"#,
            "[(30247.5, 0.1, 0, 1), (30247.0, 2.0, 0, 1)]",
            "[('30247.5', '0.1'), ('30247', '2')]",
            r#"[{"price": 30247.5, "size": 0.1}, {"price": "30247", "size": "2"}]"#,
            r#"[{"p": "30247.5", "s": "0.1", "n": 3}, {"s": 2, "p": 30247}]"#,
            " [ [ 30247.5 , 0.1 , [1, \"x]\"] ] , [30247,2,],] ",
        ] {
            assert_eq!(parse(text).unwrap(), want, "{text}");
        }
        assert_eq!(parse("[]").unwrap(), pairs(&[]));
        assert_eq!(parse(" [ ] ").unwrap(), pairs(&[]));
        assert_eq!(parse("[[1, 0]]").unwrap(), pairs(&[("1", "0")]));
        assert_eq!(parse("[[1e2, 5e-1]]").unwrap(), pairs(&[("100", "0.5")]));
    }

    #[test]
    fn rejects_what_cannot_be_a_level() {
        for text in [
            "",
            "garbage",
            "[[1,2]",
            "[[1]]",
            "[1, 2]",
            "[[1,2]] x",
            "[[\"abc\", 1]]",
            "[{\"price\": 1}]",
            "[[1 2]]",
            "{}",
        ] {
            assert!(parse(text).is_err(), "{text:?} should fail");
        }
        let err = parse("[[1,2],[3").unwrap_err().to_string();
        assert!(err.contains("byte 9"), "{err}");
    }

    #[test]
    fn rejects_non_finite_and_negative_prices() {
        assert!(matches!(
            parse("[[NaN, 1]]"),
            Err(LevelError::NotANumber { field: "price", .. })
        ));
        assert!(matches!(
            parse("[[\"inf\", 1]]"),
            Err(LevelError::NotANumber { .. })
        ));
        assert!(matches!(
            parse("[(1.0, nan)]"),
            Err(LevelError::NotANumber { field: "size", .. })
        ));
        assert!(matches!(
            parse("[[-5, 1]]"),
            Err(LevelError::NegativePrice { index: 0, .. })
        ));
        // A negative size is a deletion, not an error.
        assert_eq!(parse("[[5, -1]]").unwrap(), pairs(&[("5", "-1")]));
    }
}
