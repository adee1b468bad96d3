//! Document readers: plain text, HTML pages and RSS/Atom feeds become
//! [`Document`]s with normalised plain text.
//!
//! Every offset the extractor reports (evidence, person mentions) is a
//! Unicode-scalar offset into [`Document::text`], so this module decides once
//! what that text is: the article body with markup, navigation, promos and
//! subscription boilerplate removed, paragraphs separated by a blank line, and
//! the headline as the first paragraph when one is known.
//!
//! Bad input never panics: each problem becomes a [`DocumentError`] naming
//! the document (or the feed item), and the other items of a feed go on.
//!
//! Invalid UTF-8: a charset declared in the document (`<?xml encoding=...?>`,
//! `<meta charset=...>`) of the Latin-1/Windows-1252 family is honoured;
//! otherwise the bytes are decoded lossily with a warning, unless more than
//! 2% of the characters would be replaced, in which case the document is
//! refused as not text.

use chrono::{DateTime, NaiveDate, Utc};
use scraper::{ElementRef, Html, Node, Selector};
use std::sync::LazyLock;
use unicode_normalization::UnicodeNormalization;

/// Limits that keep a hostile or broken input from exhausting memory or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes; larger inputs are refused before parsing.
    pub max_bytes: usize,
    /// Most items read from one feed; the rest are reported as one error.
    pub max_feed_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 10 * 1024 * 1024,
            max_feed_items: 1000,
        }
    }
}

/// One article ready for extraction.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Document {
    /// File name without folders, feed item guid (Atom id), or link.
    pub name: String,
    /// Headline, when the input has one.
    pub title: Option<String>,
    /// Publication time, when the input gives it.
    pub published: Option<DateTime<Utc>>,
    /// Date relative expressions resolve against (the publication day).
    pub reference_date: Option<NaiveDate>,
    /// Normalised plain text; every offset refers to it (Unicode scalar values).
    pub text: String,
    /// Media type the body was read as (`text/plain`, `text/html`, `application/rss+xml` ...).
    pub media_type: String,
    /// URL of the item (feed link), if known.
    pub source_url: Option<String>,
    /// Title of the feed an item came from.
    pub feed: Option<String>,
    /// Problems recovered from while reading it.
    pub warnings: Vec<String>,
}

impl Document {
    /// Stable id derived from the name, so a re-read document keeps its id.
    pub fn id(&self) -> String {
        document_id(&self.name)
    }

    /// A plain-text document dated `reference_date`, mostly for tests and tools.
    pub fn from_text(name: &str, reference_date: Option<NaiveDate>, text: &str) -> Document {
        let text = normalise_text(text);
        Document {
            name: name.to_owned(),
            title: first_line_title(&text),
            published: reference_date
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
            reference_date,
            text,
            media_type: "text/plain".into(),
            source_url: None,
            feed: None,
            warnings: Vec::new(),
        }
    }
}

/// Stable id of a document name: `doc-` and 20 hex digits of its SHA-256
/// (one scheme for the whole system, declared in the domain).
pub use parley_domain::ids::document_id;

/// Why a document (or one feed item) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct DocumentError {
    /// The document or feed item that failed.
    pub name: String,
    /// What was wrong, in words a user can act on.
    pub reason: String,
}

impl DocumentError {
    fn new(name: &str, reason: impl Into<String>) -> Self {
        DocumentError {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The kinds of input this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Html,
    Feed,
}

/// Reads one input into documents: one for a page or text file, one per item
/// for a feed. `name` may contain folders (they are dropped); the media type
/// hint wins over sniffing when it names a known type.
pub fn read_documents(
    name: &str,
    bytes: &[u8],
    media_type_hint: Option<&str>,
    limits: &Limits,
) -> Vec<Result<Document, DocumentError>> {
    let name = base_name(name);
    if bytes.len() > limits.max_bytes {
        return vec![Err(DocumentError::new(
            &name,
            format!(
                "too large: {} bytes, the limit is {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        ))];
    }
    // UTF-16 declares itself with a byte-order mark; without one its NUL
    // bytes make it "binary" below, which is the clear error we want.
    let utf16;
    let bytes = match decode_utf16_bom(bytes) {
        Some(Ok(s)) => {
            utf16 = s.into_bytes();
            &utf16[..]
        }
        Some(Err(reason)) => return vec![Err(DocumentError::new(&name, reason))],
        None => bytes,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return vec![Err(DocumentError::new(&name, "empty document"))];
    }
    if looks_binary(bytes) {
        return vec![Err(DocumentError::new(
            &name,
            "binary data (NUL or control bytes), not a text, HTML or feed document",
        ))];
    }
    let mut warnings = Vec::new();
    let decoded = match decode(bytes, &mut warnings) {
        Ok(s) => s,
        Err(reason) => return vec![Err(DocumentError::new(&name, reason))],
    };
    let kind = sniff(&name, &decoded, media_type_hint);
    match kind {
        Kind::Text => vec![read_text(&name, &decoded, warnings)],
        Kind::Html => vec![read_html(&name, &decoded, warnings)],
        Kind::Feed => read_feed(&name, &decoded, limits, warnings),
    }
}

/// Reads a file from disk into documents like [`read_documents`], refusing
/// files over `limits.max_bytes` before reading them (by their size, and by
/// never reading more than the limit plus one byte, in case the size lies),
/// so a huge file costs no memory. Errors name the file.
pub fn read_path(
    path: &std::path::Path,
    media_type_hint: Option<&str>,
    limits: &Limits,
) -> Vec<Result<Document, DocumentError>> {
    use std::io::Read;
    let shown = path.to_string_lossy();
    let name = base_name(&shown);
    let too_large = |size: u64| {
        vec![Err(DocumentError::new(
            &name,
            format!(
                "too large: {size} bytes, the limit is {} bytes",
                limits.max_bytes
            ),
        ))]
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return vec![Err(DocumentError::new(&name, format!("cannot open: {e}")))],
    };
    if let Ok(meta) = file.metadata()
        && meta.len() > limits.max_bytes as u64
    {
        return too_large(meta.len());
    }
    let mut bytes = Vec::new();
    if let Err(e) = file
        .take(limits.max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
    {
        return vec![Err(DocumentError::new(&name, format!("cannot read: {e}")))];
    }
    if bytes.len() > limits.max_bytes {
        return too_large(bytes.len() as u64);
    }
    read_documents(&shown, &bytes, media_type_hint, limits)
}

/// UTF-16 text with a byte-order mark, decoded; `None` without a mark.
fn decode_utf16_bom(bytes: &[u8]) -> Option<Result<String, String>> {
    let little = match bytes {
        [0xFF, 0xFE, ..] => true,
        [0xFE, 0xFF, ..] => false,
        _ => return None,
    };
    let body = &bytes[2..];
    if !body.len().is_multiple_of(2) {
        return Some(Err(
            "UTF-16 (byte-order mark) with an odd number of bytes".into()
        ));
    }
    let units = body.chunks_exact(2).map(|c| {
        if little {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    Some(
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| format!("invalid UTF-16 despite its byte-order mark: {e}")),
    )
}

/// File name without folders (both separators, so Windows paths work too).
fn base_name(name: &str) -> String {
    let trimmed = name.trim_end_matches(['/', '\\']);
    trimmed
        .rsplit(['/', '\\'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(name)
        .to_owned()
}

/// NUL bytes or many control bytes in the first 8 KB mean it is not text.
fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return true;
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    controls * 20 > head.len().max(1)
}

/// Decodes bytes to a string following the module's documented policy.
fn decode(bytes: &[u8], warnings: &mut Vec<String>) -> Result<String, String> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_owned());
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).to_ascii_lowercase();
    let declared = ["iso-8859-1", "latin1", "latin-1", "windows-1252", "cp1252"]
        .iter()
        .find(|cs| head.contains(*cs));
    if let Some(cs) = declared {
        warnings.push(format!("decoded as declared charset {cs}"));
        return Ok(bytes.iter().map(|&b| windows_1252(b)).collect());
    }
    let lossy = String::from_utf8_lossy(bytes);
    let total = lossy.chars().count().max(1);
    let bad = lossy.chars().filter(|&c| c == '\u{FFFD}').count();
    if bad * 50 > total {
        return Err(format!(
            "not valid UTF-8 text ({bad} undecodable sequences) and no supported charset declared"
        ));
    }
    warnings.push(format!(
        "invalid UTF-8: {bad} undecodable sequence(s) replaced with U+FFFD"
    ));
    Ok(lossy.into_owned())
}

/// Windows-1252 (a superset of printable Latin-1) byte to char.
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

/// Decides the input kind from the hint, then the file extension, then the bytes.
fn sniff(name: &str, text: &str, hint: Option<&str>) -> Kind {
    if let Some(hint) = hint.map(|h| h.to_ascii_lowercase()) {
        if hint.contains("rss") || hint.contains("atom") || hint.contains("xml") {
            return Kind::Feed;
        }
        if hint.contains("html") {
            return Kind::Html;
        }
        if hint.starts_with("text/plain") {
            return Kind::Text;
        }
    }
    let head: String = text
        .trim_start()
        .chars()
        .take(1024)
        .collect::<String>()
        .to_ascii_lowercase();
    let lower_name = name.to_ascii_lowercase();
    if head.starts_with("<?xml") || head.starts_with("<rss") || head.starts_with("<feed") {
        if head.contains("<rss") || head.contains("<feed") || head.contains("<rdf") {
            return Kind::Feed;
        }
        if head.contains("<html") {
            return Kind::Html;
        }
        return Kind::Feed;
    }
    if head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || head.contains("<body")
        || head.contains("<head")
        || lower_name.ends_with(".html")
        || lower_name.ends_with(".htm")
    {
        return Kind::Html;
    }
    if lower_name.ends_with(".xml") || lower_name.ends_with(".rss") || lower_name.ends_with(".atom")
    {
        return Kind::Feed;
    }
    Kind::Text
}

// ---------------------------------------------------------------------------
// Plain text

static DATE_MARKER: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"(?i)^\s*date:?\s+(\d{4}-\d{2}-\d{2})\b[ \t]*").unwrap());

/// Reads a plain-text article, with an optional leading `date YYYY-MM-DD`.
fn read_text(name: &str, raw: &str, warnings: Vec<String>) -> Result<Document, DocumentError> {
    let mut body = raw;
    let mut reference_date = None;
    let mut warnings = warnings;
    if let Some(caps) = DATE_MARKER.captures(raw) {
        match NaiveDate::parse_from_str(&caps[1], "%Y-%m-%d") {
            Ok(d) => reference_date = Some(d),
            Err(_) => warnings.push(format!("unreadable date marker {:?}", &caps[1])),
        }
        body = &raw[caps.get(0).map_or(0, |m| m.end())..];
    }
    let text = clean_lines(body);
    if text.trim().is_empty() {
        return Err(DocumentError::new(
            name,
            "no text after removing boilerplate",
        ));
    }
    if reference_date.is_none() {
        warnings.push("no publication date; relative dates are left unresolved".into());
    }
    Ok(Document {
        name: name.to_owned(),
        title: first_line_title(&text),
        published: reference_date
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()),
        reference_date,
        text,
        media_type: "text/plain".into(),
        source_url: None,
        feed: None,
        warnings,
    })
}

/// The first paragraph when it is short enough to be a headline.
fn first_line_title(text: &str) -> Option<String> {
    let first = text.split("\n\n").next()?.trim();
    (!first.is_empty() && first.chars().count() <= 200 && !first.contains('\n'))
        .then(|| first.to_owned())
}

/// Lines that are site furniture rather than article text.
fn is_boilerplate(line: &str) -> bool {
    const CUES: &[&str] = &[
        "sign up",
        "signing up",
        "subscribe",
        "subscription",
        "newsletter",
        "confirmation email",
        "this audio is created",
        "be among the first",
        "first-ever magazine",
        "editor's note",
        "editor’s note",
        "all rights reserved",
        "click here",
        "read more:",
        "advertisement",
        "share this article",
        "follow us on",
        "cookie",
        "min read",
    ];
    let lower = line.to_lowercase();
    // A long paragraph that merely mentions a newsletter is still article text.
    lower.chars().count() < 220 && CUES.iter().any(|c| lower.contains(c)) && {
        // "min read" only marks a byline/metadata line, which may hold the
        // author's name: keep it when it starts with "by".
        !(lower.contains("min read") && lower.trim_start().starts_with("by "))
    }
}

/// Normalises text and drops boilerplate lines; paragraphs end up separated
/// by one blank line.
fn clean_lines(body: &str) -> String {
    let normalised = normalise_text(body);
    let mut out: Vec<&str> = Vec::new();
    for line in normalised.split('\n') {
        let line = line.trim();
        if line.is_empty() || is_boilerplate(line) {
            continue;
        }
        out.push(line);
    }
    out.join("\n\n")
}

/// NFC, unified line ends, non-breaking and odd spaces folded, runs of
/// spaces collapsed, control characters removed.
pub fn normalise_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.nfc() {
        let c = match c {
            '\r' => continue,
            '\u{a0}' | '\u{2007}' | '\u{202f}' | '\t' | '\u{2009}' | '\u{200a}' | '\u{2002}'
            | '\u{2003}' => ' ',
            '\u{200b}' | '\u{feff}' | '\u{ad}' => continue,
            c if c.is_control() && c != '\n' => continue,
            c => c,
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
    }
    // Trim each line and squeeze blank-line runs to one blank line.
    let mut result = String::with_capacity(out.len());
    let mut blank_run = 0;
    for line in out.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            blank_run += 1;
            if blank_run == 1 && !result.is_empty() {
                result.push('\n');
            }
            continue;
        }
        if !result.is_empty() && (blank_run == 0 || !result.ends_with("\n\n")) {
            result.push('\n');
        }
        blank_run = 0;
        result.push_str(line);
    }
    result
}

// ---------------------------------------------------------------------------
// HTML

/// Elements whose content is never article text.
const SKIP_TAGS: &[&str] = &[
    "script",
    "style",
    "noscript",
    "nav",
    "footer",
    "header",
    "aside",
    "form",
    "button",
    "iframe",
    "svg",
    "template",
    "select",
    "head",
    "figure-ad",
];
/// Class or id fragments that mark promos and furniture.
const SKIP_CLASSES: &[&str] = &[
    "promo",
    "newsletter",
    "subscribe",
    "advert",
    "share",
    "related",
    "cookie",
    "social",
    "comments",
    "sidebar",
    "signup",
    "paywall",
];
/// Elements that end a paragraph.
const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "blockquote",
    "figcaption",
    "pre",
    "section",
    "article",
    "br",
    "tr",
    "dd",
    "dt",
    "time",
];

static SEL_ARTICLE: LazyLock<Selector> = LazyLock::new(|| {
    Selector::parse("article, [itemprop=articleBody], main, [role=main]").unwrap()
});
static SEL_BODY: LazyLock<Selector> = LazyLock::new(|| Selector::parse("body").unwrap());
static SEL_META: LazyLock<Selector> = LazyLock::new(|| Selector::parse("meta").unwrap());
static SEL_TIME: LazyLock<Selector> = LazyLock::new(|| Selector::parse("time[datetime]").unwrap());
static SEL_TITLE: LazyLock<Selector> = LazyLock::new(|| Selector::parse("title").unwrap());
static SEL_H1: LazyLock<Selector> = LazyLock::new(|| Selector::parse("h1").unwrap());
static SEL_CANONICAL: LazyLock<Selector> =
    LazyLock::new(|| Selector::parse("link[rel=canonical]").unwrap());

/// Reads an HTML page: the article body and its metadata.
fn read_html(name: &str, raw: &str, mut warnings: Vec<String>) -> Result<Document, DocumentError> {
    let html = Html::parse_document(raw);
    if !html.errors.is_empty() && html.errors.len() > 50 {
        warnings.push(format!(
            "malformed HTML: {} parse errors",
            html.errors.len()
        ));
    }
    let root = html
        .select(&SEL_ARTICLE)
        .max_by_key(|e| e.text().map(str::len).sum::<usize>())
        .or_else(|| html.select(&SEL_BODY).next());
    let mut body = String::new();
    if let Some(root) = root {
        collect_text(root, &mut body);
    }
    let text = clean_lines(&body);
    if text.trim().is_empty() {
        return Err(DocumentError::new(
            name,
            "no article text found in the HTML page",
        ));
    }
    let mut published = None;
    let mut title = None;
    for meta in html.select(&SEL_META) {
        let el = meta.value();
        let key = el
            .attr("property")
            .or_else(|| el.attr("name"))
            .or_else(|| el.attr("itemprop"))
            .unwrap_or("")
            .to_ascii_lowercase();
        let content = el.attr("content").unwrap_or("").trim();
        match key.as_str() {
            "article:published_time"
            | "og:published_time"
            | "datepublished"
            | "pubdate"
            | "publishdate"
            | "date"
            | "dc.date"
            | "dc.date.issued"
            | "parsely-pub-date"
            | "sailthru.date"
            | "publication_date"
                if published.is_none() =>
            {
                published = parse_datetime(content);
            }
            "og:title" | "twitter:title" if title.is_none() && !content.is_empty() => {
                title = Some(normalise_text(content));
            }
            _ => {}
        }
    }
    if published.is_none() {
        published = html
            .select(&SEL_TIME)
            .filter_map(|t| t.value().attr("datetime"))
            .find_map(parse_datetime);
    }
    if title.is_none() {
        title = html
            .select(&SEL_H1)
            .next()
            .or_else(|| html.select(&SEL_TITLE).next())
            .map(|t| normalise_text(&t.text().collect::<String>()))
            .filter(|t| !t.is_empty());
    }
    if published.is_none() {
        warnings.push("no publication date; relative dates are left unresolved".into());
    }
    let source_url = html
        .select(&SEL_CANONICAL)
        .next()
        .and_then(|l| l.value().attr("href"))
        .map(str::to_owned);
    Ok(Document {
        name: name.to_owned(),
        title,
        published,
        reference_date: published.map(|p| p.date_naive()),
        text,
        media_type: "text/html".into(),
        source_url,
        feed: None,
        warnings,
    })
}

/// Appends the visible text under `el`, a newline after every block element.
fn collect_text(el: ElementRef<'_>, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(e) => {
                let tag = e.name();
                if SKIP_TAGS.contains(&tag) {
                    continue;
                }
                let marks = e.attr("class").into_iter().chain(e.attr("id")).any(|v| {
                    let v = v.to_ascii_lowercase();
                    SKIP_CLASSES.iter().any(|c| v.contains(c))
                });
                if marks {
                    continue;
                }
                let block = BLOCK_TAGS.contains(&tag);
                if block {
                    out.push('\n');
                }
                if let Some(child_el) = ElementRef::wrap(child) {
                    collect_text(child_el, out);
                }
                if block {
                    out.push('\n');
                }
            }
            _ => {}
        }
    }
}

/// RFC 3339, RFC 2822 or a bare day.
fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    let day = s.get(..10)?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Plain text of an HTML fragment (feed descriptions).
fn html_fragment_text(fragment: &str) -> String {
    if !fragment.contains('<') && !fragment.contains('&') {
        return normalise_text(fragment);
    }
    let html = Html::parse_fragment(fragment);
    let mut out = String::new();
    collect_text(html.root_element(), &mut out);
    clean_lines(&out)
}

// ---------------------------------------------------------------------------
// Feeds

/// Reads an RSS 2.0 or Atom feed: one document per item.
fn read_feed(
    name: &str,
    raw: &str,
    limits: &Limits,
    warnings: Vec<String>,
) -> Vec<Result<Document, DocumentError>> {
    let head: String = raw
        .chars()
        .take(4096)
        .collect::<String>()
        .to_ascii_uppercase();
    if head.contains("<!ENTITY") || raw.contains("<!ENTITY") {
        return vec![Err(DocumentError::new(
            name,
            "XML entity declarations are not allowed (external entities are never resolved)",
        ))];
    }
    let feed = match feed_rs::parser::parse(raw.as_bytes()) {
        Ok(f) => f,
        Err(e) => {
            return vec![Err(DocumentError::new(
                name,
                format!("malformed feed: {e}"),
            ))];
        }
    };
    let media_type = match feed.feed_type {
        feed_rs::model::FeedType::Atom => "application/atom+xml",
        feed_rs::model::FeedType::JSON => "application/feed+json",
        _ => "application/rss+xml",
    };
    let feed_title = feed.title.as_ref().map(|t| normalise_text(&t.content));
    let total = feed.entries.len();
    let mut out = Vec::new();
    if total == 0 {
        out.push(Err(DocumentError::new(name, "feed has no items")));
    }
    for (i, entry) in feed
        .entries
        .into_iter()
        .take(limits.max_feed_items)
        .enumerate()
    {
        let link = entry.links.first().map(|l| l.href.clone());
        // feed-rs invents an id (a hash) for RSS items without a guid; the
        // format wants the link then, so only trust ids the feed really has.
        let id_is_real = !entry.id.is_empty() && raw.contains(entry.id.as_str());
        let item_name = if id_is_real {
            entry.id.clone()
        } else if let Some(link) = &link {
            link.clone()
        } else {
            format!("{name}#item{}", i + 1)
        };
        let title = entry
            .title
            .as_ref()
            .map(|t| html_fragment_text(&t.content))
            .filter(|t| !t.is_empty());
        let body = entry
            .content
            .as_ref()
            .and_then(|c| c.body.clone())
            .or_else(|| entry.summary.as_ref().map(|s| s.content.clone()))
            .map(|b| html_fragment_text(&b))
            .unwrap_or_default();
        let mut text = String::new();
        if let Some(t) = &title {
            text.push_str(t);
        }
        if !body.is_empty() {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&body);
        }
        if text.trim().is_empty() {
            out.push(Err(DocumentError::new(
                &item_name,
                format!("feed item {} of {name} has neither title nor text", i + 1),
            )));
            continue;
        }
        let published = entry.published.or(entry.updated);
        let mut item_warnings = warnings.clone();
        if published.is_none() {
            item_warnings.push("no publication date; relative dates are left unresolved".into());
        }
        out.push(Ok(Document {
            name: item_name,
            title,
            published,
            reference_date: published.map(|p| p.date_naive()),
            text,
            media_type: media_type.into(),
            source_url: link,
            feed: feed_title.clone(),
            warnings: item_warnings,
        }));
    }
    if total > limits.max_feed_items {
        out.push(Err(DocumentError::new(
            name,
            format!(
                "feed has {total} items; only the first {} were read",
                limits.max_feed_items
            ),
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, bytes: &[u8]) -> Result<Document, DocumentError> {
        read_documents(name, bytes, None, &Limits::default())
            .into_iter()
            .next()
            .unwrap()
    }

    #[test]
    fn text_with_date_marker_and_boilerplate() {
        let raw = "date 2025-05-02 Sign up for our newsletter today.\nLeaders meet in Doha\n\nBy Jane Roe\n\nThe talks began on Friday.\nThank you for signing up for this newsletter.\n";
        let doc = one("/tmp/a/b/x.txt", raw.as_bytes()).unwrap();
        assert_eq!(doc.name, "x.txt");
        assert_eq!(doc.reference_date, NaiveDate::from_ymd_opt(2025, 5, 2));
        assert_eq!(doc.title.as_deref(), Some("Leaders meet in Doha"));
        assert!(!doc.text.contains("newsletter"), "{}", doc.text);
        assert!(doc.text.contains("The talks began on Friday."));
        assert!(!doc.text.starts_with("date"));
    }

    #[test]
    fn html_keeps_article_and_drops_furniture() {
        let raw = r#"<html><head><title>T</title><meta property="article:published_time" content="2025-07-01T10:00:00Z"><script>var x = "talks";</script></head>
        <body><nav>Home World</nav><div class="promo">Sign up now</div><article><h1>Envoys meet</h1><p>Envoys met in Doha &amp; agreed.</p></article><footer>Privacy</footer></body></html>"#;
        let doc = one("p.html", raw.as_bytes()).unwrap();
        assert_eq!(doc.reference_date, NaiveDate::from_ymd_opt(2025, 7, 1));
        assert_eq!(doc.text, "Envoys meet\n\nEnvoys met in Doha & agreed.");
        assert_eq!(doc.media_type, "text/html");
    }

    #[test]
    fn html_time_element_dates_page() {
        let raw = r#"<html><body><article><p><time datetime="2025-02-03">Feb 3</time></p><p>Text here.</p></article></body></html>"#;
        let doc = one("p.html", raw.as_bytes()).unwrap();
        assert_eq!(doc.reference_date, NaiveDate::from_ymd_opt(2025, 2, 3));
    }

    #[test]
    fn rss_items_become_documents() {
        let raw = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>
        <item><title>A</title><guid isPermaLink="false">g-1</guid><pubDate>Sun, 11 May 2025 01:15:00 +0000</pubDate><description>&lt;p&gt;Body &lt;b&gt;one&lt;/b&gt;&lt;/p&gt;</description></item>
        <item><title>B</title><link>https://x.example/b</link><pubDate>Mon, 12 May 2025 01:15:00 +0000</pubDate><description>Body two</description></item>
        </channel></rss>"#;
        let docs: Vec<_> = read_documents("f.xml", raw.as_bytes(), None, &Limits::default());
        assert_eq!(docs.len(), 2);
        let a = docs[0].as_ref().unwrap();
        assert_eq!(a.name, "g-1");
        assert_eq!(a.text, "A\n\nBody one");
        assert_eq!(a.reference_date, NaiveDate::from_ymd_opt(2025, 5, 11));
        let b = docs[1].as_ref().unwrap();
        assert_eq!(b.name, "https://x.example/b");
    }

    #[test]
    fn atom_entries_are_named_by_id() {
        let raw = r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>F</title><id>urn:f</id><updated>2025-01-01T00:00:00Z</updated>
        <entry><title>Hello</title><id>urn:uuid:1</id><updated>2025-01-02T00:00:00Z</updated><published>2025-01-02T00:00:00Z</published><content type="html">&lt;p&gt;Talks.&lt;/p&gt;</content></entry></feed>"#;
        let docs = read_documents("a.atom", raw.as_bytes(), None, &Limits::default());
        let d = docs[0].as_ref().unwrap();
        assert_eq!(d.name, "urn:uuid:1");
        assert_eq!(d.media_type, "application/atom+xml");
        assert_eq!(d.reference_date, NaiveDate::from_ymd_opt(2025, 1, 2));
    }
}
