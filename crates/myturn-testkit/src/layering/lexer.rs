//! Rust source as the tokens the layering check reads: identifiers,
//! `::` and single punctuation, with their line numbers. Comments (doc
//! comments too), strings, characters, numbers and lifetimes are dropped;
//! a string's text is kept only for `#[path = "…"]`.

/// One token and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Its line, from 1.
    pub line: usize,
}

/// A token's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An identifier or keyword (`r#` dropped).
    Ident(String),
    /// A string literal's contents (escapes left as written).
    Str(String),
    /// `::`.
    PathSep,
    /// Any other punctuation character.
    Punct(char),
}

/// The tokens of `src`.
pub fn tokens(src: &str) -> Vec<Token> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    while i < b.len() {
        let c = b[i];
        let start = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(b[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' {
            let (text, next) = quoted(&b, i + 1, &mut line);
            out.push(Token {
                kind: Kind::Str(text),
                line: start,
            });
            i = next;
        } else if c == '\'' {
            i = char_or_lifetime(&b, i);
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let word: String = b[s..i].iter().collect();
            let prefix = matches!(word.as_str(), "r" | "b" | "br" | "c" | "cr");
            if prefix && (at(i) == '"' || (at(i) == '#' && word.ends_with('r') && raw_start(&b, i)))
            {
                let (text, next) = if word.ends_with('r') {
                    raw(&b, i, &mut line)
                } else {
                    quoted(&b, i + 1, &mut line)
                };
                out.push(Token {
                    kind: Kind::Str(text),
                    line: start,
                });
                i = next;
            } else if word == "r" && at(i) == '#' {
                // A raw identifier: `r#type`.
                let s = i + 1;
                i = s;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
                out.push(Token {
                    kind: Kind::Ident(b[s..i].iter().collect()),
                    line: start,
                });
            } else {
                out.push(Token {
                    kind: Kind::Ident(word),
                    line: start,
                });
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token {
                kind: Kind::PathSep,
                line: start,
            });
            i += 2;
        } else {
            out.push(Token {
                kind: Kind::Punct(c),
                line: start,
            });
            i += 1;
        }
    }
    out
}

/// A `"…"` body from `i` (after the quote): its text and the index after
/// the closing quote.
fn quoted(b: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let s = i;
    while i < b.len() && b[i] != '"' {
        if b[i] == '\\' {
            i += 1;
        }
        *line += usize::from(b.get(i) == Some(&'\n'));
        i += 1;
    }
    (b[s..i.min(b.len())].iter().collect(), i + 1)
}

/// Whether `#`s from `i` lead to a `"` (a raw string, not `r#ident`).
fn raw_start(b: &[char], mut i: usize) -> bool {
    while b.get(i) == Some(&'#') {
        i += 1;
    }
    b.get(i) == Some(&'"')
}

/// A raw string from `i` (at its `#`s or quote): its text and the index
/// after it.
fn raw(b: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let mut hashes = 0;
    while b.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1;
    let s = i;
    loop {
        if i >= b.len() {
            return (b[s..].iter().collect(), i);
        }
        if b[i] == '"' && (1..=hashes).all(|k| b.get(i + k) == Some(&'#')) {
            return (b[s..i].iter().collect(), i + 1 + hashes);
        }
        *line += usize::from(b[i] == '\n');
        i += 1;
    }
}

/// Skips a character literal or a lifetime at `i` (its quote).
fn char_or_lifetime(b: &[char], i: usize) -> usize {
    let at = |k: usize| b.get(k).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut k = i + 2;
        while k < b.len() && b[k] != '\'' {
            k += 1;
        }
        return k + 1;
    }
    if at(i + 2) == '\'' {
        return i + 3;
    }
    let mut k = i + 1;
    while k < b.len() && (b[k].is_alphanumeric() || b[k] == '_') {
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::{tokens, Kind};

    fn idents(src: &str) -> Vec<String> {
        tokens(src)
            .into_iter()
            .filter_map(|t| match t.kind {
                Kind::Ident(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_strings_chars_and_lifetimes_are_not_code() {
        let src = "/// crate::doc\n//! crate::inner\n/* crate::block /* nested */ */\n\
                   let s = \"crate::a\"; let r = r#\"crate::\"b\"#; let c = '\"'; fn f<'a>(x: &'a u8) {}\n";
        assert_eq!(
            idents(src),
            ["let", "s", "let", "r", "let", "c", "fn", "f", "x", "u8"]
        );
    }

    #[test]
    fn lines_are_counted_through_comments_and_strings() {
        let t = tokens("/*\n\n*/ \"a\nb\" x");
        assert_eq!(t.last().map(|t| t.line), Some(4));
    }
}
