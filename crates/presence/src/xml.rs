//! A small, strict XML reader for presence documents.
//!
//! It reads UTF-8 documents into a tree of elements and text, and refuses
//! what a PIDF body never needs and an attacker would like: DTDs (so no
//! entity definitions or expansion), unknown entity references, more than
//! [`MAX_DEPTH`] levels or [`MAX_NODES`] nodes, and bodies over
//! [`MAX_DOCUMENT`] bytes. Namespace prefixes are kept as written; callers
//! match on local names (see [`Element::local`]).

use crate::PresenceError;

/// Largest document accepted (a PIDF body is a few hundred bytes).
pub const MAX_DOCUMENT: usize = 64 * 1024;
pub const MAX_DEPTH: usize = 32;
pub const MAX_NODES: usize = 2_000;
const MAX_ATTRS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The qualified name as written (`rpid:busy`).
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    /// The name without its namespace prefix.
    pub fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this local name.
    pub fn child(&self, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.local() == local)
    }

    /// All text directly inside this element, trimmed.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            if let Node::Text(t) = c {
                s.push_str(t);
            }
        }
        s.trim().to_string()
    }
}

/// Escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to carry other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn err(what: impl Into<String>) -> PresenceError {
    PresenceError::Xml(what.into())
}

/// Parses a whole document and returns its root element.
pub fn parse(input: &[u8]) -> Result<Element, PresenceError> {
    if input.len() > MAX_DOCUMENT {
        return Err(PresenceError::TooLarge(input.len()));
    }
    let text = std::str::from_utf8(input).map_err(|_| err("document is not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = Reader { s: text, pos: 0, nodes: 0 };
    r.misc()?;
    if !r.rest().starts_with('<') {
        return Err(err("no root element"));
    }
    let root = r.element(0)?;
    r.misc()?;
    if r.pos != r.s.len() {
        return Err(err("content after the root element"));
    }
    Ok(root)
}

struct Reader<'a> {
    s: &'a str,
    pos: usize,
    nodes: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.') || (c as u32) > 0x7f
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    fn expect(&mut self, lit: &str) -> Result<(), PresenceError> {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(err(format!("expected {lit:?} at byte {}", self.pos)))
        }
    }

    /// Skips past `end`, which must occur.
    fn skip_past(&mut self, end: &str, what: &str) -> Result<&'a str, PresenceError> {
        let r = self.rest();
        let i = r.find(end).ok_or_else(|| err(format!("unterminated {what}")))?;
        self.pos += i + end.len();
        Ok(&r[..i])
    }

    /// Whitespace, comments and processing instructions (the prolog and
    /// what may follow the root).
    fn misc(&mut self) -> Result<(), PresenceError> {
        loop {
            self.skip_ws();
            let r = self.rest();
            if r.starts_with("<?") {
                self.pos += 2;
                self.skip_past("?>", "processing instruction")?;
            } else if r.starts_with("<!--") {
                self.pos += 4;
                self.skip_past("-->", "comment")?;
            } else if r.starts_with("<!") {
                return Err(err("DTDs and declarations are not accepted"));
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, PresenceError> {
        let r = self.rest();
        let len = r.find(|c: char| !is_name_char(c)).unwrap_or(r.len());
        let name = &r[..len];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
            return Err(err(format!("invalid name at byte {}", self.pos)));
        }
        self.pos += len;
        Ok(name.to_string())
    }

    fn count_node(&mut self) -> Result<(), PresenceError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(err("too many nodes"));
        }
        Ok(())
    }

    fn element(&mut self, depth: usize) -> Result<Element, PresenceError> {
        if depth >= MAX_DEPTH {
            return Err(err("elements nested too deeply"));
        }
        self.count_node()?;
        self.expect("<")?;
        let name = self.name()?;
        let mut el = Element {
            name,
            attrs: Vec::new(),
            children: Vec::new(),
        };
        loop {
            let before = self.pos;
            self.skip_ws();
            let r = self.rest();
            if r.starts_with("/>") {
                self.pos += 2;
                return Ok(el);
            }
            if r.starts_with('>') {
                self.pos += 1;
                break;
            }
            if self.pos == before {
                return Err(err(format!("expected whitespace before an attribute at byte {}", self.pos)));
            }
            let an = self.name()?;
            self.skip_ws();
            self.expect("=")?;
            self.skip_ws();
            let quote = self.rest().chars().next().filter(|c| *c == '"' || *c == '\'');
            let quote = quote.ok_or_else(|| err("attribute value without quotes"))?;
            self.pos += 1;
            let raw = self.skip_past(if quote == '"' { "\"" } else { "'" }, "attribute value")?;
            if raw.contains('<') {
                return Err(err("'<' in an attribute value"));
            }
            if el.attrs.iter().any(|(n, _)| *n == an) {
                return Err(err(format!("duplicate attribute {an}")));
            }
            if el.attrs.len() >= MAX_ATTRS {
                return Err(err("too many attributes"));
            }
            el.attrs.push((an, unescape(raw)?));
        }
        // Content up to the matching end tag.
        loop {
            let r = self.rest();
            if r.is_empty() {
                return Err(err(format!("element {} is not closed", el.name)));
            }
            if r.starts_with("</") {
                self.pos += 2;
                let end = self.name()?;
                if end != el.name {
                    return Err(err(format!("</{end}> closes <{}>", el.name)));
                }
                self.skip_ws();
                self.expect(">")?;
                return Ok(el);
            }
            if r.starts_with("<!--") {
                self.pos += 4;
                self.skip_past("-->", "comment")?;
            } else if r.starts_with("<![CDATA[") {
                self.pos += 9;
                let t = self.skip_past("]]>", "CDATA section")?;
                self.count_node()?;
                el.children.push(Node::Text(t.to_string()));
            } else if r.starts_with("<?") {
                self.pos += 2;
                self.skip_past("?>", "processing instruction")?;
            } else if r.starts_with("<!") {
                return Err(err("declarations are not accepted inside elements"));
            } else if r.starts_with('<') {
                let child = self.element(depth + 1)?;
                el.children.push(Node::Element(child));
            } else {
                let len = r.find('<').unwrap_or(r.len());
                let t = &r[..len];
                self.pos += len;
                self.count_node()?;
                el.children.push(Node::Text(unescape(t)?));
            }
        }
    }
}

/// Resolves the five predefined entities and character references; any
/// other `&` is an error (there is no DTD to define more).
fn unescape(s: &str) -> Result<String, PresenceError> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .filter(|e| *e <= 10)
            .ok_or_else(|| err("unterminated entity reference"))?;
        let ent = &after[..end];
        let c = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = ent.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .filter(|c| *c != '\0')
                    .ok_or_else(|| err(format!("unknown entity &{};", ent.chars().take(10).collect::<String>())))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_attributes_text_and_references() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<!-- c --><a:root xmlns:a="urn:x" k='v &amp; w'><b>x &lt; y &#65;&#x42;</b><c/><![CDATA[<raw>]]></a:root>
"#;
        let root = parse(doc).unwrap();
        assert_eq!((root.name.as_str(), root.local()), ("a:root", "root"));
        assert_eq!(root.attr("k"), Some("v & w"));
        assert_eq!(root.child("b").unwrap().text(), "x < y AB");
        assert!(root.child("c").unwrap().children.is_empty());
        assert_eq!(root.text(), "<raw>");
    }

    #[test]
    fn refuses_malformed_and_dangerous_documents() {
        for bad in [
            &b""[..],
            b"<a>",
            b"<a></b>",
            b"<a><b></a></b>",
            b"<a x=1/>",
            b"<a x='1' x='2'/>",
            b"<a>&foo;</a>",
            b"<a>& b</a>",
            b"<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            b"<a/><b/>",
            b"<a/>trailing",
            b"<a\xff/>",
            b"<1a/>",
            b"<a x='<'/>",
            b"<a>&#0;</a>",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_err());
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_NODES + 1));
        assert!(parse(wide.as_bytes()).is_err());
        assert!(matches!(parse(&vec![b' '; MAX_DOCUMENT + 1]), Err(PresenceError::TooLarge(_))));
    }

    #[test]
    fn escape_round_trips() {
        let s = "a<b>&\"c'\u{1}";
        let doc = format!("<n v=\"{}\">{}</n>", escape(s), escape(s));
        let e = parse(doc.as_bytes()).unwrap();
        assert_eq!(e.attr("v"), Some("a<b>&\"c'"));
        assert_eq!(e.text(), "a<b>&\"c'");
    }
}
