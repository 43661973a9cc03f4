//! Decoding bencoded values, the encoding of rtpengine's ng control
//! protocol. Dictionaries are kept in the order they come (rtpengine's are
//! not always in key order).

/// A bencoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Ben {
    /// `i…e`.
    Int(i64),
    /// `N:…`.
    Bytes(Vec<u8>),
    /// `l…e`.
    List(Vec<Ben>),
    /// `d…e`, in wire order.
    Dict(Vec<(Vec<u8>, Ben)>),
}

impl Ben {
    /// The value `b` holds, all of it; `None` if it is not one value.
    pub fn parse(b: &[u8]) -> Option<Ben> {
        let mut i = 0;
        let v = Self::at(b, &mut i)?;
        (i == b.len()).then_some(v)
    }

    fn at(b: &[u8], i: &mut usize) -> Option<Ben> {
        match *b.get(*i)? {
            b'i' => {
                let end = *i + b[*i..].iter().position(|&c| c == b'e')?;
                let n = std::str::from_utf8(&b[*i + 1..end]).ok()?.parse().ok()?;
                *i = end + 1;
                Some(Ben::Int(n))
            }
            b'l' => {
                *i += 1;
                let mut v = Vec::new();
                while *b.get(*i)? != b'e' {
                    v.push(Self::at(b, i)?);
                }
                *i += 1;
                Some(Ben::List(v))
            }
            b'd' => {
                *i += 1;
                let mut v = Vec::new();
                while *b.get(*i)? != b'e' {
                    let Ben::Bytes(k) = Self::at(b, i)? else {
                        return None;
                    };
                    v.push((k, Self::at(b, i)?));
                }
                *i += 1;
                Some(Ben::Dict(v))
            }
            b'0'..=b'9' => {
                let colon = *i + b[*i..].iter().position(|&c| c == b':')?;
                let n: usize = std::str::from_utf8(&b[*i..colon]).ok()?.parse().ok()?;
                let s = b.get(colon + 1..colon + 1 + n)?.to_vec();
                *i = colon + 1 + n;
                Some(Ben::Bytes(s))
            }
            _ => None,
        }
    }

    /// A dictionary's value for `key`.
    pub fn get(&self, key: &str) -> Option<&Ben> {
        self.entries()
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// A dictionary's entries (none for anything else).
    pub fn entries(&self) -> &[(Vec<u8>, Ben)] {
        match self {
            Ben::Dict(d) => d,
            _ => &[],
        }
    }

    /// A list's items (none for anything else).
    pub fn items(&self) -> &[Ben] {
        match self {
            Ben::List(l) => l,
            _ => &[],
        }
    }

    /// An integer's value.
    pub fn int(&self) -> Option<i64> {
        match self {
            Ben::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// A byte string, as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Ben::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A bencoded string.
pub fn bstr(s: &str) -> String {
    format!("{}:{s}", s.len())
}

#[cfg(test)]
mod tests {
    use super::{bstr, Ben};

    #[test]
    fn decodes_a_reply_in_wire_order() {
        let v = Ben::parse(b"d6:result2:ok5:callsl3:abce1:ni-7ee").unwrap();
        assert_eq!(v.get("result").and_then(Ben::text).as_deref(), Some("ok"));
        assert_eq!(
            v.get("calls").unwrap().items()[0].text().as_deref(),
            Some("abc")
        );
        assert_eq!(v.get("n").and_then(Ben::int), Some(-7));
        assert_eq!(bstr("abc"), "3:abc");
        assert_eq!(Ben::parse(b"i1ei2e"), None, "one value only");
    }
}
