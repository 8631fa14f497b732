//! Error messages for people: an error and its causes on one line, each
//! cause said once.
//!
//! Library errors name what failed and often repeat their cause's text
//! (`cannot write X: No space left on device`) while also exposing it as
//! their `source`; printing the chain naively would say the cause twice.

use std::error::Error;

/// `error: cause: cause …`, leaving out a cause whose text the message
/// already ends with.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.ends_with(&t) && !text.contains(&format!("{t}:")) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write {path}: {source}")]
    struct Write {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the run stopped")]
    struct Outer(#[source] Write);

    #[test]
    fn each_cause_is_said_once() {
        let full = || std::io::Error::from_raw_os_error(28);
        let e = Write {
            path: "out/checkpoint.json".into(),
            source: full(),
        };
        assert_eq!(
            chain(&e),
            "cannot write out/checkpoint.json: No space left on device (os error 28)"
        );
        let e = Outer(Write {
            path: "x".into(),
            source: full(),
        });
        assert_eq!(
            chain(&e),
            "the run stopped: cannot write x: No space left on device (os error 28)"
        );
        let anyhow_err = anyhow::Error::new(Write {
            path: "y".into(),
            source: full(),
        })
        .context("orderflow-processor failed");
        assert_eq!(
            chain(anyhow_err.as_ref()),
            "orderflow-processor failed: cannot write y: No space left on device (os error 28)"
        );
    }
}
