//! Tokens of the filter language, each with its 1-based byte position for error messages.

use crate::error::ScimError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token<'a> {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// A JSON string literal, unescaped.
    Str(String),
    /// Anything else: attribute paths, keywords, numbers, `true`, `false`, `null`.
    Word(&'a str),
}

#[derive(Debug, Clone)]
pub struct Spanned<'a> {
    pub token: Token<'a>,
    pub pos: usize,
}

pub fn tokenize(input: &str) -> Result<Vec<Spanned<'_>>, ScimError> {
    let mut out = Vec::new();
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let pos = i + 1;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => push(&mut out, Token::Open, pos, &mut i),
            b')' => push(&mut out, Token::Close, pos, &mut i),
            b'[' => push(&mut out, Token::OpenBracket, pos, &mut i),
            b']' => push(&mut out, Token::CloseBracket, pos, &mut i),
            b'"' => {
                let end = string_end(bytes, i).ok_or_else(|| {
                    ScimError::invalid_filter(format!(
                        "unterminated string starting at position {pos}"
                    ))
                })?;
                let text: String = serde_json::from_str(&input[i..=end]).map_err(|e| {
                    ScimError::invalid_filter(format!("invalid string at position {pos}: {e}"))
                })?;
                out.push(Spanned {
                    token: Token::Str(text),
                    pos,
                });
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < bytes.len() && !b" \t\r\n()[]\"".contains(&bytes[i]) {
                    i += 1;
                }
                out.push(Spanned {
                    token: Token::Word(&input[start..i]),
                    pos,
                });
            }
        }
    }
    Ok(out)
}

fn push(out: &mut Vec<Spanned<'_>>, token: Token<'static>, pos: usize, i: &mut usize) {
    out.push(Spanned { token, pos });
    *i += 1;
}

/// Index of the quote closing the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}
