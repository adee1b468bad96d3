//! The subscription filter language.
//!
//! Subscribers say what they follow in a small expression language:
//!
//! ```text
//! type = ceasefire_* and party = RUS
//! (party in (UKR, RUS) or mediator = TUR) and not status = planned
//! venue = "Sharm el-Sheikh" and scope = energy_infrastructure
//! ```
//!
//! Grammar (keywords and field names are case-insensitive):
//!
//! ```text
//! expr       := and_expr ( "or" and_expr )*
//! and_expr   := unary ( "and" unary )*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := field ( "=" | "!=" ) value | field "in" "(" value ( "," value )* ")"
//! value      := word | "quoted string"        -- `*` and `?` are globs
//! ```
//!
//! Fields: `type`, `party`, `mediator`, `actor` (party or mediator), `entity`
//! (participant or actor entity id), `venue` (city), `country` (venue
//! country), `scope`, `status`, `modality`, `document` (the id or the name of
//! a document that reports the event: `document = doc-1f0c…` or
//! `document = "my-article.txt"`: what came from my article?). A field with several values
//! (parties, scope, ...) matches when any value matches; `!=` matches when none
//! does. Values compare case-insensitively. The empty filter matches everything.

use crate::pb::{EventStatus, Modality, Scope, TalksEvent, TalksEventType};

/// A parsed filter, ready to match events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    source: String,
    expr: Option<Expr>,
}

/// A filter that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at column {column}: {message}\n  {filter}\n  {caret:>width$}", caret = "^", width = .column)]
pub struct FilterError {
    /// The filter text.
    pub filter: String,
    /// 1-based column of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Type,
    Party,
    Mediator,
    Actor,
    Entity,
    Venue,
    Country,
    Scope,
    Status,
    Modality,
    Document,
}

impl Field {
    const NAMES: &'static str =
        "type, party, mediator, actor, entity, venue, country, scope, status, modality, document";

    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "type" => Field::Type,
            "party" | "parties" => Field::Party,
            "mediator" | "mediators" => Field::Mediator,
            "actor" | "actors" => Field::Actor,
            "entity" | "participant" => Field::Entity,
            "venue" | "city" => Field::Venue,
            "country" => Field::Country,
            "scope" => Field::Scope,
            "status" => Field::Status,
            "modality" => Field::Modality,
            "document" | "doc" | "source" => Field::Document,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: Field,
        negated: bool,
        patterns: Vec<String>,
    },
}

impl Filter {
    /// Parses a filter; the empty string matches everything.
    pub fn parse(source: &str) -> Result<Self, FilterError> {
        if source.len() > MAX_FILTER_BYTES {
            return Err(FilterError {
                filter: source.chars().take(64).collect::<String>() + "…",
                column: 1,
                message: format!(
                    "filter is {} bytes long; the limit is {MAX_FILTER_BYTES}",
                    source.len()
                ),
            });
        }
        let tokens = tokenize(source)?;
        if tokens.is_empty() {
            return Ok(Self {
                source: source.to_owned(),
                expr: None,
            });
        }
        let mut parser = Parser {
            source,
            tokens,
            pos: 0,
            depth: 0,
        };
        let expr = parser.expr()?;
        if let Some(token) = parser.peek() {
            return Err(parser.error_at(token.column, format!("unexpected {}", token.kind)));
        }
        Ok(Self {
            source: source.to_owned(),
            expr: Some(expr),
        })
    }

    /// The text the filter was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether an event matches.
    pub fn matches(&self, event: &TalksEvent) -> bool {
        self.expr.as_ref().is_none_or(|e| eval(e, event))
    }
}

fn eval(expr: &Expr, event: &TalksEvent) -> bool {
    match expr {
        Expr::Or(items) => items.iter().any(|e| eval(e, event)),
        Expr::And(items) => items.iter().all(|e| eval(e, event)),
        Expr::Not(inner) => !eval(inner, event),
        Expr::Cmp {
            field,
            negated,
            patterns,
        } => {
            let values = field_values(*field, event);
            let any = values
                .iter()
                .any(|v| patterns.iter().any(|p| glob_match(p, v)));
            any != *negated
        }
    }
}

fn field_values(field: Field, event: &TalksEvent) -> Vec<String> {
    let codes = |actors: &[crate::pb::Actor]| -> Vec<String> {
        actors.iter().map(|a| a.code.to_ascii_lowercase()).collect()
    };
    match field {
        Field::Type => vec![type_name(event.r#type())],
        Field::Party => codes(&event.parties),
        Field::Mediator => codes(&event.mediators),
        Field::Actor => {
            let mut all = codes(&event.parties);
            all.extend(codes(&event.mediators));
            all
        }
        Field::Entity => event
            .participants
            .iter()
            .map(|p| p.entity_id.to_ascii_lowercase())
            .chain(
                event
                    .parties
                    .iter()
                    .chain(&event.mediators)
                    .map(|a| a.entity_id.to_ascii_lowercase()),
            )
            .filter(|id| !id.is_empty())
            .collect(),
        Field::Venue => event
            .venue
            .iter()
            .map(|v| v.city.to_lowercase())
            .filter(|c| !c.is_empty())
            .collect(),
        Field::Country => event
            .venue
            .iter()
            .map(|v| v.country.to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect(),
        Field::Scope => event.scope().map(scope_name).collect(),
        Field::Status => vec![status_name(event.status())],
        Field::Modality => vec![modality_name(event.modality())],
        Field::Document => event
            .evidence
            .iter()
            .flat_map(|e| [e.document_id.to_lowercase(), e.document_name.to_lowercase()])
            .filter(|d| !d.is_empty())
            .collect(),
    }
}

/// snake_case name of an event type, as in the evaluation format.
pub fn type_name(t: TalksEventType) -> String {
    strip_prefix(t.as_str_name(), "TALKS_EVENT_TYPE_")
}

/// snake_case name of a status.
pub fn status_name(s: EventStatus) -> String {
    strip_prefix(s.as_str_name(), "EVENT_STATUS_")
}

/// snake_case name of a scope.
pub fn scope_name(s: Scope) -> String {
    strip_prefix(s.as_str_name(), "SCOPE_")
}

/// snake_case name of a modality.
pub fn modality_name(m: Modality) -> String {
    strip_prefix(m.as_str_name(), "MODALITY_")
}

fn strip_prefix(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

/// Case-insensitive glob with `*` (any run) and `?` (one character).
fn glob_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Word(String),
    Quoted(String),
    Eq,
    Ne,
    LParen,
    RParen,
    Comma,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Word(w) => write!(f, "'{w}'"),
            Kind::Quoted(q) => write!(f, "\"{q}\""),
            Kind::Eq => write!(f, "'='"),
            Kind::Ne => write!(f, "'!='"),
            Kind::LParen => write!(f, "'('"),
            Kind::RParen => write!(f, "')'"),
            Kind::Comma => write!(f, "','"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    column: usize,
}

fn tokenize(source: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| FilterError {
        filter: source.to_owned(),
        column,
        message,
    };
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token {
                    kind: Kind::LParen,
                    column,
                });
                i += 1;
            }
            ')' => {
                tokens.push(Token {
                    kind: Kind::RParen,
                    column,
                });
                i += 1;
            }
            ',' => {
                tokens.push(Token {
                    kind: Kind::Comma,
                    column,
                });
                i += 1;
            }
            '=' => {
                tokens.push(Token {
                    kind: Kind::Eq,
                    column,
                });
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token {
                    kind: Kind::Ne,
                    column,
                });
                i += 2;
            }
            '"' | '\'' => {
                let quote = c;
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != quote {
                    j += 1;
                }
                if j == chars.len() {
                    return Err(err(column, "unterminated quoted value".into()));
                }
                tokens.push(Token {
                    kind: Kind::Quoted(chars[start..j].iter().collect()),
                    column,
                });
                i = j + 1;
            }
            c if is_word_char(c) => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token {
                    kind: Kind::Word(chars[start..i].iter().collect()),
                    column,
                });
            }
            other => return Err(err(column, format!("unexpected character {other:?}"))),
        }
    }
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '*' | '?' | '.' | ':' | '/')
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    /// Current nesting of `not` and parentheses, bounded by [`MAX_NESTING`].
    depth: usize,
}

/// Deepest nesting of `not` and parentheses accepted. The parser and the
/// matcher recurse once per level, so an unbounded filter (thousands of `(`)
/// would overflow a worker thread's stack and take the service down.
pub const MAX_NESTING: usize = 32;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn end_column(&self) -> usize {
        self.source.chars().count() + 1
    }

    fn error_at(&self, column: usize, message: String) -> FilterError {
        FilterError {
            filter: self.source.to_owned(),
            column,
            message,
        }
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: Kind::Word(w), .. }) if w.eq_ignore_ascii_case(word))
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.and_expr()?];
        while self.keyword("or") {
            self.pos += 1;
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary()?];
        while self.keyword("and") {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let column = self.peek().map_or(self.source.len() + 1, |t| t.column);
            return Err(self.error_at(
                column,
                format!("filter nests deeper than {MAX_NESTING} levels of `not` and parentheses"),
            ));
        }
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        match self.peek().cloned() {
            Some(Token {
                kind: Kind::LParen,
                column,
            }) => {
                self.pos += 1;
                let inner = self.expr()?;
                match self.peek() {
                    Some(Token {
                        kind: Kind::RParen, ..
                    }) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some(t) => Err(self.error_at(
                        t.column,
                        format!(
                            "expected ')' to close the '(' at column {column}, found {}",
                            t.kind
                        ),
                    )),
                    None => Err(self.error_at(
                        self.end_column(),
                        format!("missing ')' for the '(' at column {column}"),
                    )),
                }
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let (field, column) = match self.peek().cloned() {
            Some(Token {
                kind: Kind::Word(w),
                column,
            }) => match Field::parse(&w) {
                Some(f) => (f, column),
                None => {
                    return Err(self.error_at(
                        column,
                        format!("unknown field '{w}'; expected one of {}", Field::NAMES),
                    ));
                }
            },
            Some(t) => {
                return Err(
                    self.error_at(t.column, format!("expected a field name, found {}", t.kind))
                );
            }
            None => {
                return Err(self.error_at(
                    self.end_column(),
                    "expected a field name, found the end".into(),
                ));
            }
        };
        self.pos += 1;
        let op = self.peek().cloned();
        let (negated, patterns) = match op {
            Some(Token { kind: Kind::Eq, .. }) => {
                self.pos += 1;
                (false, vec![self.value()?])
            }
            Some(Token { kind: Kind::Ne, .. }) => {
                self.pos += 1;
                (true, vec![self.value()?])
            }
            Some(Token {
                kind: Kind::Word(w),
                column: in_col,
            }) if w.eq_ignore_ascii_case("in") => {
                self.pos += 1;
                match self.peek() {
                    Some(Token {
                        kind: Kind::LParen, ..
                    }) => self.pos += 1,
                    _ => return Err(self.error_at(in_col, "expected '(' after 'in'".into())),
                }
                let mut values = vec![self.value()?];
                loop {
                    match self.peek().cloned() {
                        Some(Token {
                            kind: Kind::Comma, ..
                        }) => {
                            self.pos += 1;
                            values.push(self.value()?);
                        }
                        Some(Token {
                            kind: Kind::RParen, ..
                        }) => {
                            self.pos += 1;
                            break;
                        }
                        Some(t) => {
                            return Err(self.error_at(
                                t.column,
                                format!("expected ',' or ')', found {}", t.kind),
                            ));
                        }
                        None => {
                            return Err(self.error_at(
                                self.end_column(),
                                "missing ')' after the 'in' list".into(),
                            ));
                        }
                    }
                }
                (false, values)
            }
            Some(t) => {
                return Err(self.error_at(
                    t.column,
                    format!(
                        "expected '=', '!=' or 'in' after the field at column {column}, found {}",
                        t.kind
                    ),
                ));
            }
            None => {
                return Err(self.error_at(
                    self.end_column(),
                    "expected '=', '!=' or 'in', found the end".into(),
                ));
            }
        };
        Ok(Expr::Cmp {
            field,
            negated,
            patterns,
        })
    }

    fn value(&mut self) -> Result<String, FilterError> {
        match self.peek().cloned() {
            Some(Token {
                kind: Kind::Word(w) | Kind::Quoted(w),
                ..
            }) => {
                self.pos += 1;
                Ok(w)
            }
            Some(t) => Err(self.error_at(t.column, format!("expected a value, found {}", t.kind))),
            None => Err(self.error_at(self.end_column(), "expected a value, found the end".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{Actor, Venue};

    fn event(t: TalksEventType, parties: &[&str], mediators: &[&str]) -> TalksEvent {
        let actor = |c: &&str| Actor {
            code: c.to_string(),
            ..Default::default()
        };
        TalksEvent {
            event_id: "evt-1".into(),
            r#type: t as i32,
            status: EventStatus::Held as i32,
            parties: parties.iter().map(actor).collect(),
            mediators: mediators.iter().map(actor).collect(),
            venue: Some(Venue {
                city: "Sharm el-Sheikh".into(),
                country: "EGY".into(),
                ..Default::default()
            }),
            scope: vec![Scope::Humanitarian as i32],
            ..Default::default()
        }
    }

    #[test]
    fn globs_and_parties() {
        let f = Filter::parse("type = ceasefire_* and party = RUS").unwrap();
        assert!(f.matches(&event(TalksEventType::CeasefireAgreed, &["RUS"], &[])));
        assert!(!f.matches(&event(TalksEventType::TalksHeld, &["RUS"], &[])));
        assert!(!f.matches(&event(TalksEventType::CeasefireAgreed, &["UKR"], &[])));
    }

    #[test]
    fn in_lists_not_and_quoted_values() {
        let f = Filter::parse(r#"(party in (ukr, rus) or mediator = TUR) and not status = planned and venue = "sharm el-sheikh""#).unwrap();
        assert!(f.matches(&event(TalksEventType::TalksHeld, &["ISR"], &["TUR"])));
        assert!(!f.matches(&event(TalksEventType::TalksHeld, &["ISR"], &["QAT"])));
    }

    #[test]
    fn deep_nesting_and_huge_filters_are_refused_not_overflowed() {
        let deep = format!(
            "{}type = talks_held{}",
            "(".repeat(20_000),
            ")".repeat(20_000)
        );
        let err = Filter::parse(&deep).unwrap_err();
        assert!(err.message.contains("limit"), "{err}");
        let deep_not = format!("{}type = talks_held", "not ".repeat(MAX_NESTING + 1));
        let err = Filter::parse(&deep_not).unwrap_err();
        assert!(err.message.contains("nests deeper"), "{err}");
        let ok = format!("{}type = talks_held", "not ".repeat(MAX_NESTING - 1));
        assert!(Filter::parse(&ok).is_ok());
    }

    #[test]
    fn document_matches_a_source_by_id_or_name() {
        let mut reported = event(TalksEventType::TalksHeld, &["UKR"], &[]);
        reported.evidence = vec![crate::pb::Evidence {
            document_id: "doc-1f0c".into(),
            document_name: "My Article.txt".into(),
            ..Default::default()
        }];
        for filter in [
            "document = doc-1f0c",
            r#"document = "my article.txt""#,
            "document = doc-*",
            "source = \"*.txt\"",
        ] {
            assert!(
                Filter::parse(filter).unwrap().matches(&reported),
                "{filter}"
            );
        }
        assert!(
            !Filter::parse("document = doc-2")
                .unwrap()
                .matches(&reported)
        );
        assert!(
            !Filter::parse("document = doc-1f0c")
                .unwrap()
                .matches(&event(TalksEventType::TalksHeld, &["UKR"], &[]))
        );
    }

    #[test]
    fn not_equal_means_no_value_matches() {
        let f = Filter::parse("party != RUS").unwrap();
        assert!(f.matches(&event(TalksEventType::TalksHeld, &["UKR", "USA"], &[])));
        assert!(!f.matches(&event(TalksEventType::TalksHeld, &["UKR", "RUS"], &[])));
    }

    #[test]
    fn empty_filter_matches_all_and_scope_country_work() {
        assert!(
            Filter::parse("  ")
                .unwrap()
                .matches(&event(TalksEventType::TalksHeld, &[], &[]))
        );
        let f = Filter::parse("scope = humanitarian and country = egy").unwrap();
        assert!(f.matches(&event(TalksEventType::TalksHeld, &[], &[])));
    }

    #[test]
    fn errors_name_the_column_and_problem() {
        let cases = [
            ("typo = x", 1, "unknown field 'typo'"),
            ("type = ", 8, "expected a value"),
            ("type = x and", 13, "expected a field name"),
            ("(type = x", 10, "missing ')'"),
            ("type ~ x", 6, "unexpected character"),
            ("party in UKR", 7, "expected '(' after 'in'"),
            ("type = \"x", 8, "unterminated"),
            ("type = x party = y", 10, "unexpected 'party'"),
        ];
        for (text, column, message) in cases {
            let err = Filter::parse(text).unwrap_err();
            assert_eq!(err.column, column, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn glob_semantics() {
        assert!(glob_match("ceasefire_*", "ceasefire_agreed"));
        assert!(glob_match("*", ""));
        assert!(glob_match("t?lks_held", "talks_held"));
        assert!(!glob_match("talks", "talks_held"));
        assert!(glob_match("*held", "talks_held"));
    }

    proptest::proptest! {
        /// A filter and its negation never agree on an event.
        #[test]
        fn negation_is_complement(code in "[A-Z]{3}", other in "[A-Z]{3}") {
            let e = event(TalksEventType::TalksHeld, &[&code], &[]);
            let f = Filter::parse(&format!("party = {other}")).unwrap();
            let g = Filter::parse(&format!("not party = {other}")).unwrap();
            proptest::prop_assert_ne!(f.matches(&e), g.matches(&e));
        }

        /// Parsing never panics on arbitrary input.
        #[test]
        fn parse_never_panics(text in ".{0,60}") {
            let _ = Filter::parse(&text);
        }
    }
}
