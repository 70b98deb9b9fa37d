//! kubectl's JSONPath template dialect (`-o jsonpath=...`, `--sort-by`, `custom-columns`), over
//! a `serde_json::Value`. No maintained crate implements this dialect (the Rust JSONPath crates
//! follow RFC 9535: no `{}` template text, no `{range}`...`{end}`, no kubectl output rules), so
//! this mirrors client-go `util/jsonpath` (parser.go `Parser`, jsonpath.go `JSONPath`) with
//! missing keys allowed, as `kubectl get` runs it (`--allow-missing-template-keys=true`).
//! Map keys come out sorted (Go's `json.Marshal` order; Go's wildcard order is random).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

/// One step of a path inside `{...}` (client-go parser.go node types).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Field(String),
    Array([Param; 3]),
    Filter {
        left: Vec<Node>,
        right: Vec<Node>,
        op: String,
    },
    Int(i64),
    Float(f64),
    Bool(bool),
    Wildcard,
    Recursive,
    Union(Vec<Vec<Node>>),
    Identifier(String),
}

/// A slice bound (`ParamsEntry`): `known` false means "not given".
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Param {
    value: i64,
    known: bool,
    derived: bool,
}

/// A piece of the template: literal text, an action, or a `{range}`...`{end}` block.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Text(String),
    Action(Vec<Node>),
    Range(Vec<Node>, Vec<Segment>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

type Vals<'a> = Vec<Cow<'a, Value>>;

impl Template {
    /// Parses a template such as `{range .nodes[*]}{.name}{"\n"}{end}`.
    pub fn parse(text: &str) -> Result<Template, String> {
        let root = parse_template(text)?;
        let mut it = root.into_iter();
        let segments = nest(&mut it, false)?;
        Ok(Template { segments })
    }

    /// kubectl's relaxed path for `--sort-by` and `custom-columns` (get.go
    /// `RelaxedJSONPathExpression`): `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all mean `{.a.b}`.
    pub fn parse_relaxed(path: &str) -> Result<Template, String> {
        if path.is_empty() {
            return Template::parse(path);
        }
        let inner = path
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(path);
        let inner = inner.strip_prefix('.').unwrap_or(inner);
        if inner.is_empty() || inner.contains(['{', '}']) {
            return Err(
                "unexpected path string, expected a 'name1.name2' or '.name1.name2' or \
                 '{name1.name2}' or '{.name1.name2}'"
                    .into(),
            );
        }
        Template::parse(&format!("{{.{inner}}}"))
    }

    /// The values of each action, in order (client-go `FindResults`).
    pub fn find<'a>(&self, data: &'a Value) -> Result<Vec<Vals<'a>>, String> {
        let mut out = Vec::new();
        find_segments(&self.segments, data, &mut out)?;
        Ok(out)
    }

    /// The template's text output (client-go `Execute` and `PrintResults`): within one action
    /// results are separated by a space, strings print raw, maps and lists as compact JSON.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let mut s = String::new();
        for group in self.find(data)? {
            let n = group.len();
            for (i, v) in group.iter().enumerate() {
                s.push_str(&to_text(v));
                if i + 1 != n {
                    s.push(' ');
                }
            }
        }
        Ok(s)
    }

    /// `-o jsonpath-as-json`: each action's results as a JSON array (`EnableJSONOutput`).
    pub fn render_json(&self, data: &Value) -> Result<String, String> {
        let mut s = String::new();
        for group in self.find(data)? {
            let arr = Value::Array(group.into_iter().map(Cow::into_owned).collect());
            s.push_str(&go_json(&arr, true));
            s.push('\n');
        }
        Ok(s)
    }
}

fn find_segments<'a>(
    segs: &[Segment],
    data: &'a Value,
    out: &mut Vec<Vals<'a>>,
) -> Result<(), String> {
    for seg in segs {
        match seg {
            Segment::Text(t) => out.push(vec![Cow::Owned(Value::String(t.clone()))]),
            Segment::Action(nodes) => out.push(eval_list(vec![Cow::Borrowed(data)], nodes)?),
            Segment::Range(nodes, body) => {
                for item in eval_list(vec![Cow::Borrowed(data)], nodes)? {
                    match item {
                        Cow::Borrowed(v) => find_segments(body, v, out)?,
                        Cow::Owned(v) => {
                            let mut inner = Vec::new();
                            find_segments(body, &v, &mut inner)?;
                            for group in inner {
                                out.push(
                                    group
                                        .into_iter()
                                        .map(|c| Cow::Owned(c.into_owned()))
                                        .collect(),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Turns the flat list of texts and actions into segments, nesting `{range}`...`{end}`.
fn nest(it: &mut std::vec::IntoIter<RawSeg>, in_range: bool) -> Result<Vec<Segment>, String> {
    let mut segs = Vec::new();
    while let Some(raw) = it.next() {
        match raw {
            RawSeg::Text(t) => segs.push(Segment::Text(t)),
            RawSeg::Action(nodes) => match nodes.first() {
                Some(Node::Identifier(id)) if id == "range" => {
                    let body = nest(it, true)?;
                    segs.push(Segment::Range(nodes[1..].to_vec(), body));
                }
                Some(Node::Identifier(id)) if id == "end" => {
                    if !in_range {
                        return Err("not in range, nothing to end".into());
                    }
                    return Ok(segs);
                }
                _ => segs.push(Segment::Action(nodes)),
            },
        }
    }
    Ok(segs)
}

enum RawSeg {
    Text(String),
    Action(Vec<Node>),
}

// ---- parsing (mirrors client-go parser.go) ----

fn parse_template(text: &str) -> Result<Vec<RawSeg>, String> {
    let mut segs = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            segs.push(RawSeg::Text(rest[..open].to_string()));
        }
        let mut p = ActionParser {
            input: &rest[open + 1..],
            pos: 0,
        };
        let nodes = p.parse_inside()?;
        rest = &p.input[p.pos..];
        segs.push(RawSeg::Action(nodes));
    }
    if !rest.is_empty() {
        segs.push(RawSeg::Text(rest.to_string()));
    }
    Ok(segs)
}

/// Parses one action's contents up to its closing `}` (parseInsideAction).
fn parse_action(text: &str) -> Result<Vec<Node>, String> {
    let wrapped = format!("{text}}}");
    let mut p = ActionParser {
        input: &wrapped,
        pos: 0,
    };
    p.parse_inside()
}

struct ActionParser<'s> {
    input: &'s str,
    pos: usize,
}

fn is_terminator(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
        ),
    }
}

impl ActionParser<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn parse_inside(&mut self) -> Result<Vec<Node>, String> {
        let mut cur = Vec::new();
        loop {
            let rest = self.rest();
            if rest.starts_with('}') {
                self.pos += 1;
                return Ok(cur);
            }
            if rest.starts_with("[?(") {
                self.parse_filter(&mut cur)?;
                continue;
            }
            if rest.starts_with("..") {
                if cur.last() == Some(&Node::Recursive) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                cur.push(Node::Recursive);
                if self.peek().is_some_and(|c| c == '_' || c.is_alphanumeric()) {
                    self.parse_field(&mut cur);
                }
                continue;
            }
            match self.next() {
                None | Some('\r') | Some('\n') => return Err("unclosed action".into()),
                Some(' ') | Some('@') | Some('$') => {}
                Some('[') => self.parse_array(&mut cur)?,
                Some(q @ ('"' | '\'')) => self.parse_quote(&mut cur, q)?,
                Some('.') => self.parse_field(&mut cur),
                Some(c) if c == '+' || c == '-' || c.is_ascii_digit() => {
                    self.pos -= c.len_utf8();
                    self.parse_number(&mut cur)?;
                }
                Some(c) if c == '_' || c.is_alphanumeric() => {
                    self.pos -= c.len_utf8();
                    let start = self.pos;
                    while !is_terminator(self.peek()) {
                        self.next();
                    }
                    let word = &self.input[start..self.pos];
                    cur.push(match word {
                        "true" => Node::Bool(true),
                        "false" => Node::Bool(false),
                        w => Node::Identifier(w.to_string()),
                    });
                }
                Some(c) => {
                    return Err(format!(
                        "unrecognized character in action: U+{:04X} '{c}'",
                        c as u32
                    ))
                }
            }
        }
    }

    fn parse_field(&mut self, cur: &mut Vec<Node>) {
        let start = self.pos;
        loop {
            match self.peek() {
                Some('\\') => {
                    self.next();
                    self.next();
                }
                c if is_terminator(c) => break,
                _ => {
                    self.next();
                }
            }
        }
        let value = &self.input[start..self.pos];
        if value == "*" {
            cur.push(Node::Wildcard);
        } else {
            cur.push(Node::Field(value.replace('\\', "")));
        }
    }

    fn parse_number(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.next();
        }
        while self.peek().is_some_and(|c| c == '.' || c.is_ascii_digit()) {
            self.next();
        }
        let text = &self.input[start..self.pos];
        if let Ok(i) = text.parse::<i64>() {
            cur.push(Node::Int(i));
        } else if let Ok(f) = text.parse::<f64>() {
            cur.push(Node::Float(f));
        } else {
            return Err(format!("cannot parse number {text}"));
        }
        Ok(())
    }

    fn parse_quote(&mut self, cur: &mut Vec<Node>, quote: char) -> Result<(), String> {
        let start = self.pos;
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == quote && self.input.as_bytes()[self.pos - 2] != b'\\' => break,
                _ => {}
            }
        }
        let body = &self.input[start..self.pos - 1];
        cur.push(Node::Text(unquote(body, quote)?));
        Ok(())
    }

    fn parse_array(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        let start = self.pos;
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                _ => {}
            }
        }
        let mut text = &self.input[start..self.pos - 1];
        if text == "*" {
            text = ":";
        }
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let union = parts
                .iter()
                .map(|s| parse_action(&format!("[{}]", s.trim_matches(' '))))
                .collect::<Result<Vec<_>, _>>()?;
            cur.push(Node::Union(union));
            return Ok(());
        }
        if let Some(key) = text
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .filter(|k| !k.contains('\''))
        {
            cur.extend(parse_action(&format!(".{key}"))?);
            return Ok(());
        }
        cur.push(Node::Array(parse_slice(text)?));
        Ok(())
    }

    fn parse_filter(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        self.pos += 3;
        let start = self.pos;
        let (mut begin, mut end) = (false, false);
        let mut pair = '"';
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated filter".into()),
                Some(q @ ('"' | '\'')) => {
                    if !begin {
                        begin = true;
                        pair = q;
                        continue;
                    }
                    if self.input.as_bytes()[self.pos - 2] != b'\\' && q == pair {
                        end = true;
                    }
                }
                Some(')') if begin == end => break,
                _ => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        let text = &self.input[start..self.pos - 2];
        // `^([^!<>=]+)([!<>=~]+)(.+?)$`
        let is_op = |c: char| matches!(c, '!' | '<' | '>' | '=' | '~');
        let split = text.find(['!', '<', '>', '=']).filter(|&i| i > 0);
        match split {
            Some(i) => {
                let op_len = text[i..].chars().take_while(|&c| is_op(c)).count();
                let (left, op, right) = (&text[..i], &text[i..i + op_len], &text[i + op_len..]);
                if right.is_empty() {
                    return Err(format!("invalid filter {text}"));
                }
                cur.push(Node::Filter {
                    left: parse_action(left)?,
                    right: parse_action(right)?,
                    op: op.to_string(),
                });
            }
            None => cur.push(Node::Filter {
                left: parse_action(text)?,
                right: Vec::new(),
                op: "exists".into(),
            }),
        }
        Ok(())
    }
}

/// `[start:end:step]` (parser.go `sliceOperatorRex` and its params).
fn parse_slice(text: &str) -> Result<[Param; 3], String> {
    let invalid = || format!("invalid array index {text}");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(invalid());
    }
    let is_num = |s: &str| {
        let d = s.strip_prefix('-').unwrap_or(s);
        d.chars().all(|c| c.is_ascii_digit())
    };
    if !parts.iter().all(|p| is_num(p)) {
        return Err(invalid());
    }
    let mut params = [Param::default(); 3];
    for i in 0..3 {
        match parts.get(i) {
            Some(s) if !s.is_empty() => {
                let value = s
                    .parse::<i64>()
                    .map_err(|_| format!("array index {s} is not a number"))?;
                params[i] = Param {
                    value,
                    known: true,
                    derived: false,
                };
            }
            Some(_) => {}
            None if i == 1 => {
                params[1] = Param {
                    value: params[0].value + 1,
                    known: true,
                    derived: true,
                };
            }
            None => {}
        }
    }
    Ok(params)
}

/// Go's `strconv.Unquote` escapes, for either quote (parser.go `UnquoteExtend`).
fn unquote(body: &str, quote: char) -> Result<String, String> {
    let bad = || format!("unquote string {quote}{body}{quote} error invalid syntax");
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' | '\'' if e == quote => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.by_ref().take(n).collect();
                let code = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
                out.push(char::from_u32(code).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

// ---- evaluation (mirrors client-go jsonpath.go) ----

fn eval_list<'a>(mut cur: Vals<'a>, nodes: &[Node]) -> Result<Vals<'a>, String> {
    for node in nodes {
        cur = walk(cur, node)?;
    }
    Ok(cur)
}

fn child<'a>(
    parent: &Cow<'a, Value>,
    get: impl Fn(&Value) -> Option<&Value>,
) -> Option<Cow<'a, Value>> {
    match parent {
        Cow::Borrowed(v) => get(v).map(Cow::Borrowed),
        Cow::Owned(v) => get(v).map(|c| Cow::Owned(c.clone())),
    }
}

fn children<'a>(v: &Cow<'a, Value>) -> Vals<'a> {
    let n = match v.as_ref() {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        Value::String(s) => {
            return s.bytes().map(|b| Cow::Owned(Value::from(b))).collect();
        }
        _ => 0,
    };
    (0..n)
        .filter_map(|i| {
            child(v, |x| match x {
                Value::Object(m) => m.values().nth(i),
                Value::Array(a) => a.get(i),
                _ => None,
            })
        })
        .collect()
}

fn walk<'a>(input: Vals<'a>, node: &Node) -> Result<Vals<'a>, String> {
    Ok(match node {
        Node::Text(t) => vec![Cow::Owned(Value::String(t.clone()))],
        Node::Int(i) => input.iter().map(|_| Cow::Owned(Value::from(*i))).collect(),
        Node::Float(f) => input.iter().map(|_| Cow::Owned(Value::from(*f))).collect(),
        Node::Bool(b) => input.iter().map(|_| Cow::Owned(Value::Bool(*b))).collect(),
        Node::Identifier(id) => return Err(format!("unrecognized identifier {id}")),
        // Missing keys are allowed: an absent field yields nothing.
        Node::Field(name) => input
            .iter()
            .filter_map(|v| child(v, |x| x.as_object().and_then(|m| m.get(name.as_str()))))
            .collect(),
        Node::Wildcard => input
            .iter()
            .filter(|v| !v.is_null())
            .flat_map(children)
            .collect(),
        Node::Recursive => {
            let mut out = Vec::new();
            recursive(input, &mut out);
            out
        }
        Node::Union(lists) => {
            let mut out = Vec::new();
            for l in lists {
                out.extend(eval_list(input.clone(), l)?);
            }
            out
        }
        Node::Array(params) => {
            let mut out = Vec::new();
            for v in input.iter().filter(|v| !v.is_null()) {
                match slice(v, *params)? {
                    Some(items) => out.extend(items),
                    // evalArray returns as soon as one input selects nothing (an empty list
                    // for `[*]`): the inputs after it are dropped. kubectl prints that, so
                    // this does too (`{.nodes[*].reasons[*].code}` stops at the first node
                    // without reasons).
                    None => break,
                }
            }
            out
        }
        Node::Filter { left, right, op } => {
            let mut out = Vec::new();
            for v in &input {
                let Some(len) = v.as_array().map(Vec::len) else {
                    return Err(format!(
                        "{} is not array or slice and cannot be filtered",
                        go_fmt(v)
                    ));
                };
                for i in 0..len {
                    let item = child(v, |x| x.get(i)).expect("index in bounds");
                    if filter_passes(&item, left, right, op)? {
                        out.push(item);
                    }
                }
            }
            out
        }
    })
}

fn recursive<'a>(input: Vals<'a>, out: &mut Vals<'a>) {
    for v in input {
        if v.is_null() {
            continue;
        }
        let kids = children(&v);
        if !kids.is_empty() {
            out.push(v);
            recursive(kids, out);
        }
    }
}

/// The selected items, or `None` when the range is empty (see the caller).
fn slice<'a>(v: &Cow<'a, Value>, mut p: [Param; 3]) -> Result<Option<Vals<'a>>, String> {
    let Some(len) = v.as_array().map(|a| a.len() as i64) else {
        return Err(format!("{} is not array or slice", go_type(v)));
    };
    if !p[0].known {
        p[0].value = 0;
    }
    if p[0].value < 0 {
        p[0].value += len;
    }
    if !p[1].known {
        p[1].value = len;
    }
    if p[1].value < 0 || (p[1].value == 0 && p[1].derived) {
        p[1].value += len;
    }
    if p[1].value == p[0].value {
        return Ok(None);
    }
    if p[0].value >= len || p[0].value < 0 {
        return Err(format!(
            "array index out of bounds: index {}, length {len}",
            p[0].value
        ));
    }
    if p[1].value > len || p[1].value < 0 {
        return Err(format!(
            "array index out of bounds: index {}, length {len}",
            p[1].value - 1
        ));
    }
    if p[0].value > p[1].value {
        return Err(format!(
            "starting index {} is greater than ending index {}",
            p[0].value, p[1].value
        ));
    }
    let step = if p[2].known {
        if p[2].value <= 0 {
            return Err("step must be > 0".into());
        }
        p[2].value as usize
    } else {
        1
    };
    Ok(Some(
        (p[0].value as usize..p[1].value as usize)
            .step_by(step)
            .filter_map(|i| child(v, |x| x.get(i)))
            .collect(),
    ))
}

fn filter_passes(item: &Value, left: &[Node], right: &[Node], op: &str) -> Result<bool, String> {
    let lefts = eval_list(vec![Cow::Borrowed(item)], left)?;
    if op == "exists" {
        return Ok(!lefts.is_empty());
    }
    let l = match lefts.as_slice() {
        [] => return Ok(false),
        [one] => one,
        _ => return Err("can only compare one element at a time".into()),
    };
    let rights = eval_list(vec![Cow::Borrowed(item)], right)?;
    let r = match rights.as_slice() {
        [] => return Ok(false),
        [one] => one,
        _ => return Err("can only compare one element at a time".into()),
    };
    let ord = || compare(l, r);
    Ok(match op {
        "==" => equal(l, r)?,
        "!=" => !equal(l, r)?,
        "<" => ord()? == Ordering::Less,
        ">" => ord()? == Ordering::Greater,
        "<=" => ord()? != Ordering::Greater,
        ">=" => ord()? != Ordering::Less,
        _ => return Err(format!("unrecognized filter operator {op}")),
    })
}

/// The basic kinds Go's text/template compares (funcs.go `basicKind`).
#[derive(PartialEq)]
enum Basic<'v> {
    Int(i64),
    Float(f64),
    Str(&'v str),
    Bool(bool),
}

fn basic(v: &Value) -> Option<Basic<'_>> {
    match v {
        Value::Bool(b) => Some(Basic::Bool(*b)),
        Value::String(s) => Some(Basic::Str(s)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Basic::Int(i),
            None => Basic::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        _ => None,
    }
}

/// text/template `eq`: values of different kinds do not compare.
fn equal(l: &Value, r: &Value) -> Result<bool, String> {
    match (basic(l), basic(r)) {
        (Some(a), Some(b)) => {
            if std::mem::discriminant(&a) != std::mem::discriminant(&b) {
                return Err("incompatible types for comparison".into());
            }
            Ok(a == b)
        }
        _ => Err("invalid type for comparison".into()),
    }
}

/// text/template `lt`: ints, floats and strings of the same kind.
fn compare(l: &Value, r: &Value) -> Result<Ordering, String> {
    match (basic(l), basic(r)) {
        (Some(Basic::Int(a)), Some(Basic::Int(b))) => Ok(a.cmp(&b)),
        (Some(Basic::Float(a)), Some(Basic::Float(b))) => a
            .partial_cmp(&b)
            .ok_or_else(|| "invalid type for comparison".into()),
        (Some(Basic::Str(a)), Some(Basic::Str(b))) => Ok(a.cmp(b)),
        (Some(Basic::Bool(_)), Some(Basic::Bool(_))) | (None, _) | (_, None) => {
            Err("invalid type for comparison".into())
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

// ---- output (mirrors Go's formatting of the values kubectl holds) ----

/// One result as `PrintResults` prints it: maps and lists as JSON, the rest as `fmt.Fprint`.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Object(_) | Value::Array(_) => go_json(v, false),
        _ => go_fmt(v),
    }
}

/// `fmt.Sprint` / `%v` of a decoded JSON value (custom-columns cells use this).
pub fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Go's `%v` for a float64: shortest representation, exponent form from 1e21.
fn go_float(f: f64) -> String {
    if f.is_finite() && (f == 0.0 || (f.abs() >= 1e-4 && f.abs() < 1e21)) {
        let s = format!("{f}");
        return s;
    }
    let s = format!("{f:e}");
    // Rust "1e21" -> Go "1e+21"; "1.5e-7" -> "1.5e-07".
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map[string]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::Array(_) => "[]interface {}",
        Value::Null => "<nil>",
    }
}

/// Go's `json.Marshal` (sorted keys, `<`, `>`, `&` escaped) or `MarshalIndent` with 4 spaces.
fn go_json(v: &Value, indent: bool) -> String {
    let s = if indent {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        serde::Serialize::serialize(v, &mut ser).expect("a Value serializes");
        String::from_utf8(buf).expect("JSON is UTF-8")
    } else {
        v.to_string()
    };
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// kubectl's `--sort-by` order (sorter.go `isLess`): numbers by value, strings in natural
/// order (`sortorder.NaturalLess`: digit runs compare as numbers), absent values first.
pub fn sort_order(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => match (a, b) {
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Value::String(x), Value::String(y)) => natural_cmp(x, y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            _ => go_fmt(a).cmp(&go_fmt(b)),
        },
    }
}

/// Natural order: runs of digits compare by value ("node-2" < "node-10").
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = trim_zeros(dx);
                let ty = trim_zeros(dy);
                let ord = tx.len().cmp(&ty.len()).then(tx.cmp(ty)).then(nx.cmp(&ny));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "kind": "Explanation",
            "nodes": [
                {"name": "n1", "state": "Pending", "pod": {"restarts": 2}, "reasons": [{"code": "A"}, {"code": "B"}]},
                {"name": "n2", "state": "Running", "pod": null, "reasons": []},
                {"name": "n10", "state": "Pending", "reasons": [{"code": "C"}]}
            ],
            "summary": {"states": {"Pending": 2, "Running": 1}, "shown": 3}
        })
    }

    fn run(t: &str) -> String {
        Template::parse(t).unwrap().render(&doc()).unwrap()
    }

    #[test]
    fn filters_ranges_and_lists() {
        assert_eq!(run(r#"{.nodes[?(@.state=="Pending")].name}"#), "n1 n10");
        assert_eq!(
            run(r#"{range .nodes[*]}{.name}{"\t"}{.state}{"\n"}{end}"#),
            "n1\tPending\nn2\tRunning\nn10\tPending\n"
        );
        assert_eq!(run("{.nodes[0].reasons[*].code}"), "A B");
        assert_eq!(run("{.nodes[-1:].name}"), "n10");
        assert_eq!(run("{.nodes[0:2].name}"), "n1 n2");
        assert_eq!(run("{.summary.states}"), r#"{"Pending":2,"Running":1}"#);
        assert_eq!(run("{.nodes[?(@.pod.restarts>1)].name}"), "n1");
        assert_eq!(run("{.nodes[?(@.pod)].name}"), "n1 n2");
        assert_eq!(run("{..code}"), "A B C");
        assert_eq!(
            run("{.nodes[*]['name','state']}"),
            "n1 n2 n10 Pending Running Pending"
        );
        assert_eq!(run("{.missing.key}"), "");
        assert_eq!(run("x={.summary.shown}"), "x=3");
    }

    #[test]
    fn errors_are_messages() {
        assert!(Template::parse("{.a").is_err());
        assert!(Template::parse("{end}").is_err());
        assert!(Template::parse("{.a[x]}").is_err());
        let t = Template::parse("{.summary[0]}").unwrap();
        assert_eq!(
            t.render(&doc()).unwrap_err(),
            "map[string]interface {} is not array or slice"
        );
        let t = Template::parse("{.nodes[7]}").unwrap();
        assert!(t.render(&doc()).unwrap_err().contains("out of bounds"));
    }

    #[test]
    fn relaxed_paths_and_sorting() {
        for p in [
            "nodes[0].name",
            ".nodes[0].name",
            "{.nodes[0].name}",
            "{nodes[0].name}",
        ] {
            assert_eq!(
                Template::parse_relaxed(p).unwrap().render(&doc()).unwrap(),
                "n1"
            );
        }
        assert!(Template::parse_relaxed("{.a}{.b}").is_err());
        assert_eq!(natural_cmp("node-2", "node-10"), Ordering::Less);
        assert_eq!(natural_cmp("a", "b"), Ordering::Less);
        assert_eq!(sort_order(None, Some(&json!(1))), Ordering::Less);
        assert_eq!(go_fmt(&json!({"a": [1, "x"]})), "map[a:[1 x]]");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.5), "0.5");
    }
}
