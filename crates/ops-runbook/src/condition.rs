//! The conditions of `when` and `unless`: a small, closed language over earlier steps'
//! results, so a runbook's branches read as the runbook says them and can be checked when the
//! file is loaded.
//!
//! ```text
//! db.status != "ok"
//! disk.obs.disk_used >= 90 and not restart.ok
//! logs.evidence matches "corrupt|invalid page" or incident.runbook == "database-down"
//! upstream.status == "critical"
//! ```
//!
//! A reference is `STEP.FIELD` (`status`, `ok`, `message`, `outcome`, `runbooks`,
//! `evidence`, `exit-code`, `http-status`, `obs.NAME`), `params.NAME`, or `incident.runbook`
//! / `incident.check`. Operators: `==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`, `matches`
//! (a case-insensitive regular expression), `and`, `or`, `not` and parentheses. A value that
//! does not exist (an observation a check did not make) makes every comparison false.

use std::fmt;

use regex::{Regex, RegexBuilder};

/// The fields of a step a condition may read.
pub const STEP_FIELDS: [&str; 8] =
    ["status", "ok", "message", "outcome", "runbooks", "evidence", "exit-code", "http-status"];

/// A parsed condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Both.
    And(Box<Self>, Box<Self>),
    /// Either.
    Or(Box<Self>, Box<Self>),
    /// Not.
    Not(Box<Self>),
    /// `a OP b`.
    Compare(Operand, Op, Operand),
    /// A bare reference: true when it is `true`.
    Truthy(Operand),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`: a list holds the value, or a text holds it (case-insensitive).
    Contains,
    /// `matches`: the text, or any line of a list, matches the regular expression.
    Matches,
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A dotted reference (`db.status`, `disk.obs.disk_used`).
    Ref(Vec<String>),
    /// A string literal.
    Text(String),
    /// A number.
    Number(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A compiled pattern (the right side of `matches`).
    Pattern(Regex),
}

/// A value a reference resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// Lines or names.
    List(Vec<String>),
    /// Not there.
    Missing,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => write!(f, "{s:?}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::List(l) => write!(f, "[{} items]", l.len()),
            Self::Missing => f.write_str("(none)"),
        }
    }
}

/// Resolves references while a condition is evaluated.
pub trait Scope {
    /// The value of `path` (`["db", "status"]`).
    fn value(&self, path: &[String]) -> Value;
}

impl Condition {
    /// Parses `text`.
    ///
    /// # Errors
    /// A message saying what was expected where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, pos: 0 };
        let c = p.or()?;
        if let Some(t) = p.tokens.get(p.pos) {
            return Err(format!("unexpected {t} after a complete condition"));
        }
        Ok(c)
    }

    /// Every reference it reads, for checking them against the runbook's steps and params.
    #[must_use]
    pub fn references(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a [String]>) {
        match self {
            Self::And(a, b) | Self::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
            Self::Not(a) => a.collect(out),
            Self::Compare(l, _, r) => {
                for o in [l, r] {
                    if let Operand::Ref(p) = o {
                        out.push(p);
                    }
                }
            }
            Self::Truthy(Operand::Ref(p)) => out.push(p),
            Self::Truthy(_) => {}
        }
    }

    /// Evaluates against `scope`.
    #[must_use]
    pub fn eval(&self, scope: &dyn Scope) -> bool {
        match self {
            Self::And(a, b) => a.eval(scope) && b.eval(scope),
            Self::Or(a, b) => a.eval(scope) || b.eval(scope),
            Self::Not(a) => !a.eval(scope),
            Self::Truthy(o) => matches!(resolve(o, scope), Value::Bool(true)),
            Self::Compare(l, op, r) => compare(&resolve(l, scope), *op, r, scope),
        }
    }
}

fn resolve(o: &Operand, scope: &dyn Scope) -> Value {
    match o {
        Operand::Ref(p) => scope.value(p),
        Operand::Text(s) => Value::Text(s.clone()),
        Operand::Number(n) => Value::Number(*n),
        Operand::Bool(b) => Value::Bool(*b),
        Operand::Pattern(r) => Value::Text(r.as_str().to_owned()),
    }
}

fn compare(left: &Value, op: Op, right: &Operand, scope: &dyn Scope) -> bool {
    if let (Op::Matches, Operand::Pattern(re)) = (op, right) {
        return match left {
            Value::Text(s) => re.is_match(s),
            Value::List(l) => l.iter().any(|s| re.is_match(s)),
            _ => false,
        };
    }
    let right = resolve(right, scope);
    if matches!(left, Value::Missing) || matches!(right, Value::Missing) {
        return false;
    }
    match op {
        Op::Contains => match (left, &right) {
            (Value::List(l), Value::Text(t)) => l.iter().any(|s| s.eq_ignore_ascii_case(t)),
            (Value::Text(s), Value::Text(t)) => s.to_lowercase().contains(&t.to_lowercase()),
            _ => false,
        },
        Op::Matches => false,
        Op::Eq | Op::Ne => {
            let equal = match (left, &right) {
                (Value::Text(a), Value::Text(b)) => a.eq_ignore_ascii_case(b),
                (Value::Number(a), Value::Number(b)) => (a - b).abs() < f64::EPSILON,
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Number(a), Value::Text(b)) | (Value::Text(b), Value::Number(a)) => {
                    b.parse::<f64>().is_ok_and(|b| (a - b).abs() < f64::EPSILON)
                }
                _ => false,
            };
            equal == (op == Op::Eq)
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let number = |v: &Value| match v {
                Value::Number(n) => Some(*n),
                Value::Text(s) => s.parse::<f64>().ok(),
                _ => None,
            };
            let (Some(a), Some(b)) = (number(left), number(&right)) else { return false };
            match op {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                _ => a >= b,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Text(String),
    Number(f64),
    Op(&'static str),
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ident(s) => write!(f, "`{s}`"),
            Self::Text(s) => write!(f, "{s:?}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Op(o) => write!(f, "`{o}`"),
            Self::Open => f.write_str("`(`"),
            Self::Close => f.write_str("`)`"),
        }
    }
}

/// Conditions are short: a longer text is a mistake, not a runbook.
const MAX_LEN: usize = 2000;

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    if text.len() > MAX_LEN {
        return Err(format!("a condition is at most {MAX_LEN} characters"));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Token::Open);
            i += 1;
        } else if c == ')' {
            out.push(Token::Close);
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a quoted text is not closed".to_owned()),
                    Some('\\') if chars.get(i + 1).is_some() => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Token::Text(s));
        } else if "=!<>".contains(c) {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = match two.as_str() {
                "==" => "==",
                "!=" => "!=",
                "<=" => "<=",
                ">=" => ">=",
                _ if c == '<' => "<",
                _ if c == '>' => ">",
                _ => return Err(format!("unknown operator starting with {c:?}: use == != < <= > >=")),
            };
            i += op.len();
            out.push(Token::Op(op));
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Token::Number(s.parse().map_err(|_| format!("{s} is not a number"))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_-.".contains(chars[i])) {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Ident(s)) if s == w)
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.not()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Condition::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, String> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Condition, String> {
        if self.tokens.get(self.pos) == Some(&Token::Open) {
            self.pos += 1;
            let c = self.or()?;
            if self.tokens.get(self.pos) != Some(&Token::Close) {
                return Err("a `(` is not closed".to_owned());
            }
            self.pos += 1;
            return Ok(c);
        }
        let left = self.operand()?;
        let op = match self.tokens.get(self.pos) {
            Some(Token::Op(o)) => match *o {
                "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            },
            Some(Token::Ident(w)) if w == "contains" => Op::Contains,
            Some(Token::Ident(w)) if w == "matches" => Op::Matches,
            _ => return Ok(Condition::Truthy(left)),
        };
        self.pos += 1;
        let mut right = self.operand()?;
        if op == Op::Matches {
            let Operand::Text(p) = &right else { return Err("`matches` takes a quoted pattern".to_owned()) };
            let re = RegexBuilder::new(p)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("invalid pattern: {e}"))?;
            right = Operand::Pattern(re);
        }
        Ok(Condition::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        let t = self.tokens.get(self.pos).cloned().ok_or("the condition ends where a value was expected")?;
        self.pos += 1;
        Ok(match t {
            Token::Text(s) => Operand::Text(s),
            Token::Number(n) => Operand::Number(n),
            Token::Ident(w) if w == "true" => Operand::Bool(true),
            Token::Ident(w) if w == "false" => Operand::Bool(false),
            Token::Ident(w) if ["and", "or", "not", "contains", "matches"].contains(&w.as_str()) => {
                return Err(format!("`{w}` where a value was expected"));
            }
            Token::Ident(w) => {
                let path: Vec<String> = w.split('.').map(str::to_owned).collect();
                if path.iter().any(String::is_empty) || path.len() < 2 {
                    return Err(format!(
                        "`{w}` is not a reference: write STEP.status, STEP.obs.NAME, params.NAME or incident.runbook"
                    ));
                }
                Operand::Ref(path)
            }
            other => return Err(format!("{other} where a value was expected")),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Map(BTreeMap<String, Value>);

    impl Scope for Map {
        fn value(&self, path: &[String]) -> Value {
            self.0.get(&path.join(".")).cloned().unwrap_or(Value::Missing)
        }
    }

    fn scope() -> Map {
        Map(BTreeMap::from([
            ("db.status".to_owned(), Value::Text("critical".into())),
            ("db.ok".to_owned(), Value::Bool(false)),
            ("disk.obs.disk_used".to_owned(), Value::Number(93.5)),
            ("logs.evidence".to_owned(), Value::List(vec!["FATAL: invalid page in block 4".into()])),
            ("db.runbooks".to_owned(), Value::List(vec!["database-down".into()])),
        ]))
    }

    fn t(text: &str) -> bool {
        Condition::parse(text).unwrap().eval(&scope())
    }

    #[test]
    fn reads_as_the_runbook_says_it() {
        assert!(t("db.status != 'ok'"));
        assert!(t("db.status == \"CRITICAL\""));
        assert!(t("disk.obs.disk_used >= 90 and not db.ok"));
        assert!(!t("disk.obs.disk_used < 90"));
        assert!(t("logs.evidence matches 'corrupt|invalid page'"));
        assert!(t("db.runbooks contains 'database-down'"));
        assert!(t("(db.ok or disk.obs.disk_used > 90) and db.status == 'critical'"));
        // What is not there makes a comparison false, whatever the operator.
        assert!(!t("disk.obs.inodes_used > 1"));
        assert!(!t("disk.obs.inodes_used <= 1"));
        assert!(t("not disk.obs.inodes_used > 1"));
    }

    #[test]
    fn bad_conditions_say_what_is_wrong() {
        for (text, says) in [
            ("db.status = 'ok'", "unknown operator"),
            ("db.status == ", "ends where a value"),
            ("(db.ok", "not closed"),
            ("status == 'ok'", "is not a reference"),
            ("db.ok and", "ends where"),
            ("logs.evidence matches '('", "invalid pattern"),
            ("db.ok db.ok", "unexpected"),
        ] {
            let e = Condition::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let c = Condition::parse("db.status != 'ok' and disk.obs.used > 1").unwrap();
        let refs: Vec<String> = c.references().iter().map(|p| p.join(".")).collect();
        assert_eq!(refs, ["db.status", "disk.obs.used"]);
    }
}
