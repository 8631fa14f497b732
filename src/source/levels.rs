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

/// The scanner's cheap, `Copy` error, turned into a [`LevelError`] (which
/// owns strings) only when a row is actually rejected.
#[derive(Clone, Copy, Debug)]
enum Fail {
    Syntax {
        offset: usize,
        expected: &'static str,
    },
    Missing {
        index: usize,
        field: &'static str,
    },
    NotANumber {
        index: usize,
        field: &'static str,
        start: usize,
        end: usize,
    },
    NegativePrice {
        index: usize,
        price: Fixed,
    },
}

impl Fail {
    fn into_error(self, b: &[u8]) -> LevelError {
        match self {
            Fail::Syntax { offset, expected } => {
                let found = if offset >= b.len() {
                    "end of text".to_string()
                } else {
                    let end = (offset + 12).min(b.len());
                    format!("{:?}", String::from_utf8_lossy(&b[offset..end]))
                };
                LevelError::Syntax {
                    offset,
                    expected,
                    found,
                }
            }
            Fail::Missing { index, field } => LevelError::Missing { index, field },
            Fail::NotANumber {
                index,
                field,
                start,
                end,
            } => LevelError::NotANumber {
                index,
                field,
                text: String::from_utf8_lossy(&b[start..end]).into_owned(),
            },
            Fail::NegativePrice { index, price } => LevelError::NegativePrice { index, price },
        }
    }
}

/// Parses `text` into `out` (cleared first).
pub fn parse_levels(text: &str, out: &mut Vec<Level>) -> Result<(), LevelError> {
    out.clear();
    parse_level_bytes(text.as_bytes(), out)
}

/// As [`parse_levels`], on raw bytes (SQLite text, not checked as UTF-8:
/// every accepted byte is ASCII, so any other byte is a syntax error), and
/// *appending* to `out`. On error `out` is left as it was.
pub fn parse_level_bytes(text: &[u8], out: &mut Vec<Level>) -> Result<(), LevelError> {
    let start = out.len();
    if fast::levels(text, out).is_some() {
        return Ok(());
    }
    out.truncate(start);
    let result = scan(text, out).map_err(|f| f.into_error(text));
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// The fast path for the shapes captures actually use: a list of
/// `[p, s, …]` or `(p, s, …)` whose fields are plain numbers or quoted
/// plain numbers. One pass, numbers parsed while scanning, no error
/// detail: anything unusual (objects, exponents, escapes, nested values,
/// a negative price, a bad number) returns `None` and the general scanner
/// below parses the text again and explains what is wrong.
mod fast {
    use super::ENDS_SCALAR;
    use crate::model::fixed::{digit_run, plain_decimal_exact};
    use crate::model::{Fixed, Level};

    #[inline(always)]
    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }

    pub(super) fn levels(b: &[u8], out: &mut Vec<Level>) -> Option<()> {
        let start = out.len();
        let tier = if b.get(1) == Some(&b'[') && b.get(2) == Some(&b'"') {
            quoted(b, out)
        } else {
            plain(b, out)
        };
        if tier.is_some() {
            return Some(());
        }
        out.truncate(start);
        any_fields(b, out)
    }

    /// Takes a level's `[` or `(` and says what closes it.
    #[inline(always)]
    fn open_level(b: &[u8], i: &mut usize) -> Option<u8> {
        let close = match *b.get(*i)? {
            b'[' => b']',
            b'(' => b')',
            _ => return None,
        };
        *i += 1;
        Some(close)
    }

    /// After a level: `,` or `, ` before the next (`Some(false)`), or the
    /// list's `]` ending the text (`Some(true)`).
    #[inline(always)]
    fn next_level(b: &[u8], i: &mut usize) -> Option<bool> {
        if *b.get(*i)? == b']' {
            return (*i + 1 == b.len()).then_some(true);
        }
        comma(b, i)?;
        Some(false)
    }

    /// Skips `,` or `, `; `None` when neither is there.
    #[inline(always)]
    fn comma(b: &[u8], i: &mut usize) -> Option<()> {
        if *b.get(*i)? != b',' {
            return None;
        }
        *i += if b.get(*i + 1) == Some(&b' ') { 2 } else { 1 };
        Some(())
    }

    /// The exact shape of plain-number text, JSON lists or Python tuples,
    /// `[[p, s], …]` or `[(p, s, n, m), …]`, with or without a space after
    /// each comma, every field an unsigned plain number. Like [`quoted`],
    /// the bytes that end fields (`,`, `]`, `)`) are found first, 64 at a
    /// time ([`Marks`]), so that each field is read knowing where it ends
    /// ([`plain_decimal_exact`]) and the punctuation between is matched at
    /// known places. Anything else gives `None` at once.
    pub(super) fn plain(b: &[u8], out: &mut Vec<Level>) -> Option<()> {
        if b == b"[]" {
            return Some(());
        }
        if *b.first()? != b'[' {
            return None;
        }
        let mut ends = Marks::<false>::new(b);
        let mut i = 1;
        loop {
            let close = open_level(b, &mut i)?;
            let e = ends.next()?;
            let price = plain_decimal_exact(b, i, e)?;
            i = e;
            comma(b, &mut i)?;
            let mut e = ends.next()?;
            let size = plain_decimal_exact(b, i, e)?;
            // Further fields: plain numbers, ignored.
            while b[e] == b',' {
                i = e;
                comma(b, &mut i)?;
                e = ends.next()?;
                plain_decimal_exact(b, i, e)?;
            }
            if b[e] != close {
                return None;
            }
            out.push(Level::new(price, size));
            i = e + 1;
            if next_level(b, &mut i)? {
                return Some(());
            }
            // The comma between levels was one of the marks.
            if ends.next()? != e + 1 {
                return None;
            }
        }
    }

    /// The exact shape of OKX's own text, `[["p", "s", "…", …], …]`, with
    /// or without a space after each comma, read by its quotes: every `"`
    /// of the text is found first, a block of 64 bytes at a time (see
    /// [`Marks`]), then the bytes between one field's closing quote and
    /// the next one's opening quote are matched against the few
    /// separators the shape allows, and each price and size is read
    /// knowing where it ends ([`plain_decimal_exact`]). A byte-by-byte
    /// reader finds where a number ends only by reading it, so each number
    /// waits on the one before; here they are independent. Anything else
    /// (an escape, a field that is not a plain number, other punctuation)
    /// gives `None` at once.
    pub(super) fn quoted(b: &[u8], out: &mut Vec<Level>) -> Option<()> {
        if b == b"[]" {
            return Some(());
        }
        if b.get(..3)? != b"[[\"" {
            return None;
        }
        let mut quotes = Marks::<true>::new(b);
        let mut open = quotes.next()?;
        loop {
            // A level: price, size, any further fields, then `]`.
            let close = quotes.next()?;
            let price = plain_decimal_exact(b, open + 1, close)?;
            let size_open = quotes.next()?;
            if separator(b, close, size_open)? != Separator::Field {
                return None;
            }
            let mut close = quotes.next()?;
            let size = plain_decimal_exact(b, size_open + 1, close)?;
            out.push(Level::new(price, size));
            loop {
                let Some(next) = quotes.next() else {
                    // The last field: `]]` must end the text.
                    return (b.get(close + 1..)? == b"]]" && !quotes.flagged).then_some(());
                };
                match separator(b, close, next)? {
                    Separator::Field => close = quotes.next()?,
                    Separator::Level => {
                        open = next;
                        break;
                    }
                }
            }
        }
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Separator {
        /// `,` or `, `: the next field of the level.
        Field,
        /// `],[` or `], [`: the first field of the next level.
        Level,
    }

    /// What lies between a field's closing quote at `close` and the next
    /// opening quote at `next`: the four bytes after `close` as one word,
    /// masked to the gap's length and compared with the one separator of
    /// that length (tables instead of branches: the gaps alternate).
    #[inline(always)]
    fn separator(b: &[u8], close: usize, next: usize) -> Option<Separator> {
        const fn word(s: &[u8]) -> u32 {
            let mut w = 0u32;
            let mut k = 0;
            while k < s.len() {
                w |= (s[k] as u32) << (8 * k);
                k += 1;
            }
            w
        }
        const MASK: [u32; 5] = [0, 0xFF, 0xFFFF, 0xFF_FFFF, 0xFFFF_FFFF];
        // Gap 0 matches nothing (a masked word of 0 is never 1).
        const SEPARATOR: [u32; 5] = [1, word(b","), word(b", "), word(b"],["), word(b"], [")];
        let gap = next.checked_sub(close + 1)?;
        let w = u32::from_le_bytes(b.get(close + 1..close + 5)?.try_into().ok()?);
        if gap > 4 || w & MASK[gap] != SEPARATOR[gap] {
            return None;
        }
        Some(if gap <= 2 {
            Separator::Field
        } else {
            Separator::Level
        })
    }

    /// The positions of the bytes that delimit fields, in order, found 64
    /// bytes at a time as a bit mask (SSE2 on x86-64, a plain loop
    /// elsewhere): with `QUOTES`, every `"`, and a flag for any `\` seen
    /// on the way (an escape: the caller gives up); without, every `,`,
    /// `]` and `)`.
    struct Marks<'a, const QUOTES: bool> {
        b: &'a [u8],
        /// Start of the block `mask` belongs to.
        block: usize,
        /// Marks of the block not yet returned.
        mask: u64,
        flagged: bool,
    }

    impl<'a, const QUOTES: bool> Marks<'a, QUOTES> {
        fn new(b: &'a [u8]) -> Marks<'a, QUOTES> {
            let mut m = Marks {
                b,
                block: 0,
                mask: 0,
                flagged: false,
            };
            m.load();
            m
        }

        /// Masks of the block at `self.block`.
        #[inline(always)]
        fn load(&mut self) {
            let rest = &self.b[self.block.min(self.b.len())..];
            let (marks, flags) = match <&[u8; 64]>::try_from(rest.get(..64).unwrap_or(&[])) {
                Ok(block) => block_masks::<QUOTES>(block),
                Err(_) => {
                    let mut block = [0u8; 64];
                    block[..rest.len()].copy_from_slice(rest);
                    block_masks::<QUOTES>(&block)
                }
            };
            self.mask = marks;
            self.flagged |= flags != 0;
        }

        #[inline(always)]
        fn next(&mut self) -> Option<usize> {
            while self.mask == 0 {
                self.block += 64;
                if self.block >= self.b.len() {
                    return None;
                }
                self.load();
            }
            let at = self.block + self.mask.trailing_zeros() as usize;
            self.mask &= self.mask - 1;
            Some(at)
        }
    }

    /// Bit `j` set where byte `j` of the block is a mark, and where it is
    /// flagged (see [`Marks`]).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn block_masks<const QUOTES: bool>(block: &[u8; 64]) -> (u64, u64) {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        let (mut marks, mut flags) = (0u64, 0u64);
        // SAFETY: SSE2 is part of every x86-64 processor; each load reads
        // 16 bytes inside the 64-byte array.
        unsafe {
            let bits = |v| _mm_movemask_epi8(v) as u16 as u64;
            for k in 0..4 {
                let v = _mm_loadu_si128(block.as_ptr().add(16 * k) as *const __m128i);
                let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
                if QUOTES {
                    marks |= bits(is(b'"')) << (16 * k);
                    flags |= bits(is(b'\\')) << (16 * k);
                } else {
                    marks |=
                        bits(_mm_or_si128(_mm_or_si128(is(b','), is(b']')), is(b')'))) << (16 * k);
                }
            }
        }
        (marks, flags)
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub(super) fn block_masks<const QUOTES: bool>(block: &[u8; 64]) -> (u64, u64) {
        block_masks_bytewise::<QUOTES>(block)
    }

    /// [`block_masks`] a byte at a time: off x86-64, and as the reference
    /// the SSE2 version is tested against.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    pub(super) fn block_masks_bytewise<const QUOTES: bool>(block: &[u8; 64]) -> (u64, u64) {
        let (mut marks, mut flags) = (0u64, 0u64);
        for (j, &c) in block.iter().enumerate() {
            if QUOTES {
                marks |= u64::from(c == b'"') << j;
                flags |= u64::from(c == b'\\') << j;
            } else {
                marks |= u64::from(matches!(c, b',' | b']' | b')')) << j;
            }
        }
        (marks, flags)
    }

    /// Any fields, numbers quoted or not, any whitespace.
    fn any_fields(b: &[u8], out: &mut Vec<Level>) -> Option<()> {
        let mut i = 0;
        ws(b, &mut i);
        if *b.get(i)? != b'[' {
            return None;
        }
        i += 1;
        ws(b, &mut i);
        if *b.get(i)? == b']' {
            i += 1;
            ws(b, &mut i);
            return (i == b.len()).then_some(());
        }
        loop {
            let close = open_level(b, &mut i)?;
            ws(b, &mut i);
            let price = number(b, &mut i)?;
            ws(b, &mut i);
            if *b.get(i)? != b',' {
                return None;
            }
            i += 1;
            ws(b, &mut i);
            let size = number(b, &mut i)?;
            loop {
                ws(b, &mut i);
                let c = *b.get(i)?;
                i += 1;
                if c == close {
                    break;
                }
                if c != b',' {
                    return None;
                }
                ws(b, &mut i);
                if *b.get(i)? == close {
                    i += 1;
                    break;
                }
                skip_scalar(b, &mut i)?;
            }
            if price.is_negative() {
                return None;
            }
            out.push(Level::new(price, size));
            ws(b, &mut i);
            match *b.get(i)? {
                b',' => {
                    i += 1;
                    ws(b, &mut i);
                    if *b.get(i)? == b']' {
                        i += 1;
                        break;
                    }
                }
                b']' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
        ws(b, &mut i);
        (i == b.len()).then_some(())
    }

    /// A plain decimal, optionally quoted: `-12.5`, `"0.001"`, read in
    /// one pass (anything else: `None`, and the general scanner decides).
    #[inline(always)]
    fn number(b: &[u8], i: &mut usize) -> Option<Fixed> {
        let mut k = *i;
        let quote = match *b.get(k)? {
            q @ (b'"' | b'\'') => {
                k += 1;
                Some(q)
            }
            _ => None,
        };
        let negative = b.get(k) == Some(&b'-');
        if negative {
            k += 1;
        }
        let int = digit_run(b, &mut k);
        let mut frac = (0, 0);
        if k < b.len() && b[k] == b'.' {
            k += 1;
            frac = digit_run(b, &mut k);
        }
        match quote {
            Some(q) => {
                if *b.get(k)? != q {
                    return None;
                }
                k += 1;
            }
            None => {
                if k < b.len() && !ENDS_SCALAR[b[k] as usize] {
                    return None;
                }
            }
        }
        *i = k;
        Fixed::from_decimal_parts(negative, int, frac)
    }

    /// Skips a number, bare word or quoted string without escapes.
    #[inline(always)]
    fn skip_scalar(b: &[u8], i: &mut usize) -> Option<()> {
        match *b.get(*i)? {
            q @ (b'"' | b'\'') => {
                *i += 1;
                loop {
                    let c = *b.get(*i)?;
                    *i += 1;
                    if c == b'\\' {
                        return None;
                    }
                    if c == q {
                        return Some(());
                    }
                }
            }
            b'[' | b'(' | b'{' => None,
            _ => {
                let start = *i;
                while *i < b.len() && !ENDS_SCALAR[b[*i] as usize] {
                    *i += 1;
                }
                (*i > start).then_some(())
            }
        }
    }
}

fn scan(text: &[u8], out: &mut Vec<Level>) -> Result<(), Fail> {
    let mut s = Scanner { b: text, i: 0 };
    s.expect_open(b'[', "'['")?;
    s.ws();
    if s.eat(b']') {
        return s.end();
    }
    loop {
        let index = out.len();
        let level = s.level(index)?;
        if level.price.is_negative() {
            return Err(Fail::NegativePrice {
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

/// Bytes that end an unquoted scalar.
static ENDS_SCALAR: [bool; 256] = {
    let mut t = [false; 256];
    let ends = b",])} \t\n\r";
    let mut i = 0;
    while i < ends.len() {
        t[ends[i] as usize] = true;
        i += 1;
    }
    t
};

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// A scalar value: the byte range of a number, or of a string's contents.
type Token = (usize, usize);

impl Scanner<'_> {
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

    fn error(&self, expected: &'static str) -> Fail {
        Fail::Syntax {
            offset: self.i,
            expected,
        }
    }

    fn expect_open(&mut self, c: u8, expected: &'static str) -> Result<(), Fail> {
        self.ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn end(&mut self) -> Result<(), Fail> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(self.error("end of text"))
        }
    }

    /// One level: `[p, s, …]`, `(p, s, …)` or `{"price": p, "size": s, …}`.
    fn level(&mut self, index: usize) -> Result<Level, Fail> {
        match self.b.get(self.i) {
            Some(b'[') => self.sequence(index, b']'),
            Some(b'(') => self.sequence(index, b')'),
            Some(b'{') => self.object(index),
            _ => Err(self.error("a level ('[', '(' or '{')")),
        }
    }

    fn sequence(&mut self, index: usize, close: u8) -> Result<Level, Fail> {
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
        level_of(self.b, index, price, size)
    }

    fn object(&mut self, index: usize) -> Result<Level, Fail> {
        self.i += 1;
        let mut price = None;
        let mut size = None;
        self.ws();
        if !self.eat(b'}') {
            loop {
                self.ws();
                let (ks, ke) = self.string().ok_or_else(|| self.error("a quoted key"))?;
                let key = &self.b[ks..ke];
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
        level_of(self.b, index, price, size)
    }

    /// A quoted string (either quote), returning its contents.
    fn string(&mut self) -> Option<Token> {
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
                    return Some((start, j));
                }
                _ => j += 1,
            }
        }
        None
    }

    /// A number, quoted number, or bare word (`None`, `NaN`): its bytes.
    fn scalar(&mut self) -> Result<Token, Fail> {
        if let Some(s) = self.string() {
            return Ok(s);
        }
        let start = self.i;
        while self.i < self.b.len() && !ENDS_SCALAR[self.b[self.i] as usize] {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.error("a number"));
        }
        Ok((start, self.i))
    }

    /// Skips any value: scalar, string, or nested list/tuple/object.
    fn skip_value(&mut self) -> Result<(), Fail> {
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

#[inline]
fn level_of(
    b: &[u8],
    index: usize,
    price: Option<Token>,
    size: Option<Token>,
) -> Result<Level, Fail> {
    let price = price.ok_or(Fail::Missing {
        index,
        field: "price",
    })?;
    let size = size.ok_or(Fail::Missing {
        index,
        field: "size",
    })?;
    Ok(Level::new(
        number(b, index, "price", price)?,
        number(b, index, "size", size)?,
    ))
}

#[inline]
fn number(b: &[u8], index: usize, field: &'static str, (start, end): Token) -> Result<Fixed, Fail> {
    Fixed::parse_bytes(trim(&b[start..end])).ok_or(Fail::NotANumber {
        index,
        field,
        start,
        end,
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

    /// The general scanner alone.
    fn general(text: &str) -> Option<Vec<Level>> {
        let mut out = Vec::new();
        scan(text.as_bytes(), &mut out).ok().map(|_| out)
    }

    type Tier = fn(&[u8], &mut Vec<Level>) -> Option<()>;

    /// The fast path alone.
    fn fast_only(text: &str) -> Option<Vec<Level>> {
        let mut out = Vec::new();
        fast::levels(text.as_bytes(), &mut out).map(|_| out)
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_the_general_scanner(
            levels in proptest::collection::vec((0i64..9_000_000_000_000_000_000, -5i64..5_000_000_000), 0..12),
            form in 0usize..5,
            noise in proptest::collection::vec((0usize..400, proptest::sample::select(vec![" ", ",", "]", "\"", "e", "-", "x", "(", "\\", "."])), 0..3),
        ) {
            let levels: Vec<Level> = levels.into_iter().map(|(p, s)| Level::new(Fixed::from_raw(p), Fixed::from_raw(s))).collect();
            let mut text = crate::synth::format_levels(&levels, crate::synth::LevelFormat::ALL[form]);
            for (at, piece) in noise {
                let at = at.min(text.len());
                if text.is_char_boundary(at) {
                    text.insert_str(at, piece);
                }
            }
            let slow = general(&text);
            if let Some(fast) = fast_only(&text) {
                proptest::prop_assert_eq!(Some(fast), slow.clone(), "{}", text);
            }
            // Each tier alone, whatever text it is given.
            for (name, tier) in [("quoted", fast::quoted as Tier), ("plain", fast::plain)] {
                let mut out = Vec::new();
                if tier(text.as_bytes(), &mut out).is_some() {
                    proptest::prop_assert_eq!(Some(out), slow.clone(), "{}: {}", name, text);
                }
            }
        }
    }

    proptest::proptest! {
        /// The SSE2 mark finder agrees with the byte loop on blocks of
        /// delimiters, digits and arbitrary bytes.
        #[test]
        fn block_masks_agree_with_the_byte_loop(
            bytes in proptest::collection::vec(proptest::sample::select(
                b"\"\\,])([0.9 a\x80\xff\x00".to_vec()), 64),
        ) {
            let mut block = [0u8; 64];
            block.copy_from_slice(&bytes);
            proptest::prop_assert_eq!(
                fast::block_masks::<true>(&block),
                fast::block_masks_bytewise::<true>(&block)
            );
            proptest::prop_assert_eq!(
                fast::block_masks::<false>(&block),
                fast::block_masks_bytewise::<false>(&block)
            );
        }
    }

    #[test]
    fn the_fast_path_reads_long_and_short_digit_runs_exactly() {
        for n in [
            "0",
            "7",
            "12345678",
            "123456789",
            "1234567890123",
            "99999999999.99999999",
            "0.00000001",
            "0.12345678",
            "00000000012.5",
            "1.",
            ".5",
            "10000000000",
            "123456789012345678",
            "1234567890123456789",
            "1.123456789",
        ] {
            for text in [
                format!("[[{n}, {n}]]"),
                format!("[[\"{n}\",\"{n}\",\"0\"]]"),
                format!("[({n},{n})]"),
            ] {
                assert_eq!(
                    fast_only(&text),
                    general(&text).filter(|_| fast_only(&text).is_some()),
                    "{text}"
                );
                if let Some(levels) = fast_only(&text) {
                    assert_eq!(Some(levels[0].price), Fixed::parse(n), "{text}");
                }
            }
        }
        assert!(fast_only("[[12345678901.5, 1]]").is_some());
        assert!(
            fast_only("[[1234567890123, 1]]").is_none(),
            "out of range: left to the general scanner"
        );
    }

    #[test]
    fn the_fast_path_takes_the_common_forms() {
        for text in [
            r#"[["30247.5","0.1","0","3"]]"#,
            "[[30247.5, 0.1]]",
            "[(30247.5, 0.1, 0, 1)]",
            "[]",
            "[('1', '2')]",
        ] {
            assert!(fast_only(text).is_some(), "{text}");
        }
        for text in ["[{\"p\": 1, \"s\": 2}]", "[[-1, 1]]", "[[\"a\\\"\", 1]]"] {
            assert!(fast_only(text).is_none(), "{text}");
        }
        // The plain tier takes the plain forms itself (not the general
        // single-pass path), and nothing else.
        let plain = |text: &str| fast::plain(text.as_bytes(), &mut Vec::new()).is_some();
        for text in [
            "[[30247.5, 0.1]]",
            "[[30247.5,0.1],[1,2]]",
            "[(50000.0, 10.0, 0, 1), (1.5, .5, 0, 2)]",
            "[]",
        ] {
            assert!(plain(text), "{text}");
        }
        for text in [
            "[[-1, 1]]",
            "[[1, -1]]",
            "[[1e3, 1]]",
            "[ [1, 2]]",
            "[[1,  2]]",
            "[[1, 2)]",
            "[[1, 2]",
            "[[1, 2]] ",
            "[(1, 2, 'x')]",
            r#"[["1","2"]]"#,
        ] {
            assert!(!plain(text), "{text}");
        }
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
