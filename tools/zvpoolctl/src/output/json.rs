// SPDX-License-Identifier: GPL-2.0
//! A small JSON emitter: values and pretty printing with correct escaping.

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number, already in JSON syntax (checked by `Json::number`).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// A number if `text` is valid JSON number syntax, else a string.
    pub fn number(text: &str) -> Json {
        if is_number(text) {
            Json::Num(text.to_string())
        } else {
            Json::Str(text.to_string())
        }
    }

    pub fn int(n: u64) -> Json {
        Json::Num(n.to_string())
    }

    /// Pretty-printed with two-space indentation, no trailing newline.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s
    }

    fn write(&self, s: &mut String, depth: usize) {
        match self {
            Json::Null => s.push_str("null"),
            Json::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => s.push_str(n),
            Json::Str(t) => escape_into(t, s),
            Json::Arr(items) if items.is_empty() => s.push_str("[]"),
            Json::Obj(items) if items.is_empty() => s.push_str("{}"),
            Json::Arr(items) => {
                s.push('[');
                for (i, v) in items.iter().enumerate() {
                    s.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(s, depth + 1);
                    v.write(s, depth + 1);
                }
                s.push('\n');
                indent(s, depth);
                s.push(']');
            }
            Json::Obj(items) => {
                s.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    s.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(s, depth + 1);
                    escape_into(k, s);
                    s.push_str(": ");
                    v.write(s, depth + 1);
                }
                s.push('\n');
                indent(s, depth);
                s.push('}');
            }
        }
    }
}

fn indent(s: &mut String, depth: usize) {
    for _ in 0..depth {
        s.push_str("  ");
    }
}

/// Appends `t` as a JSON string: quotes and backslashes escaped, control
/// characters (and DEL) as `\u00XX`, everything else (non-ASCII) as UTF-8.
pub fn escape_into(t: &str, s: &mut String) {
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                s.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

pub fn escape(t: &str) -> String {
    let mut s = String::new();
    escape_into(t, &mut s);
    s
}

/// JSON number syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_number(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e') | Some(b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+') | Some(b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("plain"), "\"plain\"");
        assert_eq!(escape("a\"b"), "\"a\\\"b\"");
        assert_eq!(escape("a\\b"), "\"a\\\\b\"");
        assert_eq!(escape("\\\""), "\"\\\\\\\"\"");
        assert_eq!(escape("line\nnext"), "\"line\\u000anext\"");
        assert_eq!(
            escape("\t\r\u{0}\u{1f}\u{7f}"),
            "\"\\u0009\\u000d\\u0000\\u001f\\u007f\""
        );
        assert_eq!(escape(" ~"), "\" ~\"");
        assert_eq!(escape("größe ☃ 𝄞"), "\"größe ☃ 𝄞\"");
        assert_eq!(escape("\u{2028}"), "\"\u{2028}\"");
        assert_eq!(escape("/"), "\"/\"");
        assert_eq!(escape(""), "\"\"");
    }

    #[test]
    fn numbers() {
        for ok in ["0", "1", "-1", "1.250", "10", "1e5", "1.5E-3", "0.0"] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "nan", "inf", "1.2.3", "+1", "0x1", " 1",
        ] {
            assert!(!is_number(bad), "{bad}");
        }
        assert_eq!(Json::number("1.250"), Json::Num("1.250".into()));
        assert_eq!(Json::number("n/a"), Json::Str("n/a".into()));
    }

    #[test]
    fn pretty() {
        let j = Json::Obj(vec![
            ("name".into(), Json::Str("t\"1".into())),
            ("n".into(), Json::int(5)),
            ("list".into(), Json::Arr(vec![Json::Null, Json::Bool(true)])),
            ("empty".into(), Json::Arr(vec![])),
            ("o".into(), Json::Obj(vec![])),
        ]);
        assert_eq!(
            j.render(),
            "{\n  \"name\": \"t\\\"1\",\n  \"n\": 5,\n  \"list\": [\n    null,\n    true\n  ],\n  \"empty\": [],\n  \"o\": {}\n}"
        );
    }
}
