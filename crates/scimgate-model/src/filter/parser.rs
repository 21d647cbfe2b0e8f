//! Recursive-descent parser for the filter grammar: `or` binds loosest, then `and`, then
//! `not`; nesting depth is capped so that no input can recurse without bound.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::lexer::{Spanned, Token, tokenize};
use super::{Comparand, CompareOp, Filter};
use crate::casefold::fold_case;
use crate::error::ScimError;
use crate::path::{AttrPath, resolve_attribute};
use crate::resource_type::ResourceType;
use crate::schema::{AttrType, AttributeDef};

/// Longest filter accepted, in bytes, before any parsing work is done.
pub const MAX_FILTER_LEN: usize = 4096;
/// Most comparisons (`pr` or `op value`) one filter may join with `and`/`or`. An `and` or
/// `or` chain is a tree as deep as it is long, so this also bounds every walk over it.
pub const MAX_FILTER_TERMS: usize = 100;
/// Deepest nesting of parentheses, `not` and value paths accepted by default.
pub const DEFAULT_MAX_DEPTH: usize = 16;

pub fn parse(rt: ResourceType, input: &str) -> Result<Filter, ScimError> {
    parse_with_depth(rt, input, DEFAULT_MAX_DEPTH)
}

/// How forgiving the parser is: its depth limit and the IdP dialect rules for filters.
#[derive(Debug, Clone, Copy)]
pub struct FilterOptions {
    pub max_depth: usize,
    /// `active eq "True"`: a boolean sent as a string (dialect rule `string_booleans`).
    pub string_booleans: bool,
    /// Entra's `emails[type eq "work"].value eq "x"` (dialect rule `entra_filter_paths`).
    pub entra_value_paths: bool,
    /// `userName eq bjensen`: an unquoted word as a string. Off unless configured.
    pub unquoted_values: bool,
}

impl Default for FilterOptions {
    fn default() -> Self {
        FilterOptions {
            max_depth: DEFAULT_MAX_DEPTH,
            string_booleans: false,
            entra_value_paths: false,
            unquoted_values: false,
        }
    }
}

pub fn parse_with_depth(
    rt: ResourceType,
    input: &str,
    max_depth: usize,
) -> Result<Filter, ScimError> {
    parse_with(
        rt,
        input,
        &FilterOptions {
            max_depth,
            ..FilterOptions::default()
        },
    )
}

pub fn parse_with(
    rt: ResourceType,
    input: &str,
    options: &FilterOptions,
) -> Result<Filter, ScimError> {
    parse_bounded(rt, input, options, None, &mut Vec::new())
}

/// [`parse_with`], noting in `rewrites` each dialect rule that changed what the filter
/// means (so that the caller can log it, as it does for resources).
pub fn parse_noting(
    rt: ResourceType,
    input: &str,
    options: &FilterOptions,
    rewrites: &mut crate::dialect::Rewrites,
) -> Result<Filter, ScimError> {
    parse_bounded(rt, input, options, None, rewrites)
}

/// Parses the filter inside `attr[...]` of a PATCH path: its paths name sub-attributes of
/// `attr`, which must be complex. The same length, term and depth limits apply as to a
/// query's filter.
pub fn parse_element_filter(
    rt: ResourceType,
    attr: AttrPath,
    input: &str,
    max_depth: usize,
) -> Result<Filter, ScimError> {
    let options = FilterOptions {
        max_depth,
        ..FilterOptions::default()
    };
    parse_bounded(rt, input, &options, Some(attr), &mut Vec::new())
}

/// Every filter goes through here: its length and its number of terms are checked before a
/// tree is built, so that no tree (and no recursive walk over it: evaluation, SQL, clone,
/// drop) is deeper than about `2 × MAX_FILTER_TERMS + max_depth` levels.
fn parse_bounded(
    rt: ResourceType,
    input: &str,
    options: &FilterOptions,
    el: Element,
    rewrites: &mut crate::dialect::Rewrites,
) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "filter is {} bytes long; the limit is {MAX_FILTER_LEN}",
            input.len()
        )));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(ScimError::invalid_filter("filter is empty"));
    }
    let joins = tokens
        .iter()
        .filter(|t| matches!(t.token, Token::Word(w) if w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or")))
        .count();
    if joins >= MAX_FILTER_TERMS {
        return Err(ScimError::invalid_filter(format!(
            "filter joins {} terms with 'and'/'or'; the limit is {MAX_FILTER_TERMS}",
            joins + 1
        )));
    }
    let mut p = Parser {
        rt,
        tokens,
        next: 0,
        max_depth: options.max_depth,
        end: input.len() + 1,
        options: *options,
        rewrites: Vec::new(),
    };
    // Inside `attr[...]` the brackets are the first level, as they are in a query filter.
    let filter = p.or(usize::from(el.is_some()), el)?;
    rewrites.append(&mut p.rewrites);
    match p.peek() {
        None => Ok(filter),
        Some(t) => Err(p.error_at(
            t.pos,
            format!("unexpected {} after a complete filter", describe(&t.token)),
        )),
    }
}

struct Parser<'a> {
    rt: ResourceType,
    tokens: Vec<Spanned<'a>>,
    next: usize,
    max_depth: usize,
    end: usize,
    options: FilterOptions,
    /// Dialect rules that changed the meaning of what was parsed.
    rewrites: crate::dialect::Rewrites,
}

/// Inside `attr[...]`, paths name sub-attributes of `attr`.
type Element = Option<AttrPath>;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Spanned<'a>> {
        self.tokens.get(self.next).cloned()
    }

    fn take(&mut self) -> Option<Spanned<'a>> {
        let t = self.peek();
        self.next += 1;
        t
    }

    fn error_at(&self, pos: usize, what: String) -> ScimError {
        ScimError::invalid_filter(format!("{what} (at position {pos})"))
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Word(w), .. }) if w.eq_ignore_ascii_case(keyword))
    }

    fn or(&mut self, depth: usize, el: Element) -> Result<Filter, ScimError> {
        let mut left = self.and(depth, el)?;
        while self.peek_keyword("or") {
            self.take();
            let right = self.and(depth, el)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize, el: Element) -> Result<Filter, ScimError> {
        let mut left = self.unary(depth, el)?;
        while self.peek_keyword("and") {
            self.take();
            let right = self.unary(depth, el)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize, el: Element) -> Result<Filter, ScimError> {
        let Some(t) = self.take() else {
            return Err(self.error_at(
                self.end,
                "filter ends where an expression was expected".into(),
            ));
        };
        // The top level is depth 0: `max_depth` levels of parentheses, `not` and value
        // filters are allowed, one more is refused.
        if depth > self.max_depth {
            return Err(self.error_at(
                t.pos,
                format!(
                    "filter nests deeper than {} level{}",
                    self.max_depth,
                    if self.max_depth == 1 { "" } else { "s" }
                ),
            ));
        }
        match t.token {
            Token::Word(w) if w.eq_ignore_ascii_case("not") => {
                self.expect(Token::Open, "'(' after 'not'")?;
                let inner = self.or(depth + 1, el)?;
                self.expect(Token::Close, "')'")?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Token::Open => {
                let inner = self.or(depth + 1, el)?;
                self.expect(Token::Close, "')'")?;
                Ok(inner)
            }
            Token::Word(w) if is_keyword(w) => Err(self.error_at(
                t.pos,
                format!("expected an attribute name, found the keyword '{w}'"),
            )),
            Token::Word(w) => self.attribute_expression(w, t.pos, depth, el),
            other => Err(self.error_at(
                t.pos,
                format!("expected an attribute name, found {}", describe(&other)),
            )),
        }
    }

    fn expect(&mut self, wanted: Token<'static>, what: &str) -> Result<(), ScimError> {
        match self.take() {
            Some(t) if t.token == wanted => Ok(()),
            Some(t) => Err(self.error_at(
                t.pos,
                format!("expected {what}, found {}", describe(&t.token)),
            )),
            None => Err(self.error_at(
                self.end,
                format!("expected {what} before the end of the filter"),
            )),
        }
    }

    fn attribute_expression(
        &mut self,
        name: &str,
        pos: usize,
        depth: usize,
        el: Element,
    ) -> Result<Filter, ScimError> {
        let path = self.resolve(name, pos, el)?;
        if matches!(
            self.peek(),
            Some(Spanned {
                token: Token::OpenBracket,
                ..
            })
        ) {
            let open = self.take().map_or(pos, |t| t.pos);
            if el.is_some() {
                return Err(self.error_at(open, "value paths cannot nest".into()));
            }
            if path.sub.is_some() || path.attr.ty != AttrType::Complex {
                return Err(self.error_at(
                    pos,
                    format!("'{name}' is not a complex attribute; '[' needs one"),
                ));
            }
            let mut inner = self.or(depth + 1, Some(path))?;
            self.expect(Token::CloseBracket, "']'")?;
            // Entra: `emails[type eq "work"].value eq "x"` means one email of type work
            // whose value is x.
            if let Some(Spanned {
                token: Token::Word(w),
                pos: sub_pos,
            }) = self.peek()
                && let Some(sub) = w.strip_prefix('.')
                && self.options.entra_value_paths
            {
                self.rewrites.push("entra_filter_paths");
                self.take();
                let sub_path = self.resolve(sub, sub_pos, Some(path))?;
                let extra = self.comparison(sub, sub_path, sub_pos)?;
                inner = Filter::And(Box::new(inner), Box::new(extra));
            }
            return Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(inner),
            });
        }
        self.comparison(name, path, pos)
    }

    /// `op value` or `pr` after an attribute path.
    fn comparison(&mut self, name: &str, path: AttrPath, pos: usize) -> Result<Filter, ScimError> {
        let Some(op_token) = self.take() else {
            return Err(self.error_at(self.end, format!("expected an operator after '{name}'")));
        };
        let Token::Word(op_word) = op_token.token else {
            return Err(self.error_at(op_token.pos, format!("expected an operator after '{name}'")));
        };
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::from_keyword(op_word)
            .ok_or_else(|| self.error_at(op_token.pos, format!("unknown operator '{op_word}'")))?;
        let Some(value_token) = self.take() else {
            return Err(self.error_at(self.end, format!("expected a value after '{op_word}'")));
        };
        let path = value_leaf(path).ok_or_else(|| {
            self.error_at(
                pos,
                format!("'{name}' is complex; compare one of its sub-attributes"),
            )
        })?;
        let value = comparand(&path, op, &value_token, &self.options, &mut self.rewrites)
            .map_err(|what| self.error_at(value_token.pos, what))?;
        Ok(Filter::Compare { path, op, value })
    }

    /// Resolves an attribute of the filter. One never returned (a password, an operator's
    /// `returned: never` or `writeOnly` attribute) cannot be compared: its value could be
    /// found out one guess at a time.
    fn resolve(&self, name: &str, pos: usize, el: Element) -> Result<AttrPath, ScimError> {
        let path = self.resolve_path(name, pos, el)?;
        if path.attr.returned == crate::schema::Returned::Never
            || path.leaf().returned == crate::schema::Returned::Never
        {
            return Err(self.error_at(
                pos,
                format!(
                    "'{}' cannot be used in a filter: it is never returned",
                    path.canonical()
                ),
            ));
        }
        Ok(path)
    }

    fn resolve_path(&self, name: &str, pos: usize, el: Element) -> Result<AttrPath, ScimError> {
        match el {
            None => resolve_attribute(self.rt, name).map_err(|e| self.error_at(pos, e)),
            Some(parent) => {
                let sub = parent.attr.sub_attribute(name).ok_or_else(|| {
                    self.error_at(
                        pos,
                        format!("'{}' has no sub-attribute '{name}'", parent.attr.name),
                    )
                })?;
                Ok(AttrPath {
                    sub: Some(sub),
                    ..parent
                })
            }
        }
    }
}

/// A comparison with a complex attribute means its `value` sub-attribute.
fn value_leaf(path: AttrPath) -> Option<AttrPath> {
    if path.sub.is_some() || path.attr.ty != AttrType::Complex {
        return Some(path);
    }
    let value = path.attr.sub_attribute("value")?;
    Some(AttrPath {
        sub: Some(value),
        ..path
    })
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not", "pr"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
        || CompareOp::from_keyword(w).is_some()
}

fn describe(t: &Token<'_>) -> String {
    match t {
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::OpenBracket => "'['".into(),
        Token::CloseBracket => "']'".into(),
        Token::Str(s) => format!("the string \"{s}\""),
        Token::Word(w) => format!("'{w}'"),
    }
}

/// Types the literal by the attribute: a string attribute takes a string, a boolean takes
/// `true`/`false`, numbers take numbers, dateTimes take RFC 3339 strings.
fn comparand(
    path: &AttrPath,
    op: CompareOp,
    token: &Spanned<'_>,
    options: &FilterOptions,
    rewrites: &mut crate::dialect::Rewrites,
) -> Result<Comparand, String> {
    let def: &AttributeDef = path.leaf();
    let name = path.canonical();
    let literal = match &token.token {
        Token::Str(s) => Literal::Text(s.clone()),
        Token::Word(w) if w.eq_ignore_ascii_case("null") => Literal::Null,
        Token::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
        Token::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
        Token::Word(w) => match serde_json::from_str::<serde_json::Number>(w) {
            Ok(n) => Literal::Number(n.as_f64().unwrap_or(f64::NAN)),
            Err(_) if options.unquoted_values => {
                rewrites.push("unquoted_filter_values");
                Literal::Text((*w).to_owned())
            }
            Err(_) => {
                return Err(format!(
                    "expected a value (string, number, true, false or null), found '{w}'"
                ));
            }
        },
        other => return Err(format!("expected a value, found {}", describe(other))),
    };
    if let Literal::Null = literal {
        return match op {
            CompareOp::Eq | CompareOp::Ne => Ok(Comparand::Null),
            _ => Err(format!(
                "null can only be compared with 'eq' or 'ne', not '{}'",
                op.keyword()
            )),
        };
    }
    let ordering = matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    );
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    match (def.ty, literal) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, Literal::Text(s)) => {
            // No stored value holds one (validation refuses them), and SQL would cut the
            // comparison short at a NUL: refused here too, named.
            if let Some((at, c)) = crate::validate::forbidden_control(&s) {
                return Err(format!(
                    "the value compared with '{name}' contains the control character U+{:04X} at position {at}",
                    u32::from(c)
                ));
            }
            if def.ty == AttrType::Binary && (ordering || substring) {
                return Err(format!(
                    "binary attribute '{name}' only takes 'eq' and 'ne'"
                ));
            }
            let key = if def.case_exact {
                s.clone()
            } else {
                fold_case(&s)
            };
            Ok(Comparand::Text { key, sent: s })
        }
        (AttrType::Boolean, Literal::Bool(b)) if !ordering && !substring => Ok(Comparand::Bool(b)),
        (AttrType::Boolean, Literal::Text(s))
            if options.string_booleans
                && !ordering
                && !substring
                && crate::dialect::string_boolean(&s).is_some() =>
        {
            rewrites.push("string_booleans");
            Ok(Comparand::Bool(
                crate::dialect::string_boolean(&s).unwrap_or_default(),
            ))
        }
        (AttrType::Boolean, Literal::Bool(_)) => Err(format!(
            "boolean attribute '{name}' cannot be compared with '{}'",
            op.keyword()
        )),
        (AttrType::Integer | AttrType::Decimal, Literal::Number(n))
            if !substring && n.is_finite() =>
        {
            Ok(Comparand::Number(n))
        }
        (AttrType::Integer | AttrType::Decimal, Literal::Number(_)) => Err(format!(
            "number attribute '{name}' cannot be compared with '{}'",
            op.keyword()
        )),
        (AttrType::DateTime, Literal::Text(s)) if !substring => OffsetDateTime::parse(&s, &Rfc3339)
            .map(|t| Comparand::Instant(t.unix_timestamp_nanos()))
            .map_err(|_| format!("'{name}' is a dateTime; '{s}' is not an RFC 3339 dateTime")),
        (AttrType::DateTime, Literal::Text(_)) => Err(format!(
            "dateTime attribute '{name}' cannot be compared with '{}'",
            op.keyword()
        )),
        (ty, literal) => Err(format!(
            "'{name}' is {} and cannot be compared with {}",
            crate::schema::attr_type_name(ty),
            literal.kind()
        )),
    }
}

enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Literal {
    fn kind(&self) -> &'static str {
        match self {
            Literal::Null => "null",
            Literal::Bool(_) => "a boolean",
            Literal::Number(_) => "a number",
            Literal::Text(_) => "a string",
        }
    }
}
