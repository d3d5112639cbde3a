"""Just enough PromQL to replay rules over history: a tokenizer, selectors, and the inliner.

History holds the raw series a service exposes, not the recordings its new rules would write,
so every recorded series an alert reads is replaced by the expression that records it. The
substitution keeps Prometheus' semantics exactly for instant selectors:

* a recording ``R`` with expression ``E`` and static labels ``L`` writes ``E`` with
  ``__name__="R"`` and ``L`` set over whatever ``E`` returns, so the inlined form is
  ``label_replace(label_replace((E), "__name__", "R", "", ""), "k", "v", "", "")``;
* a matcher on a static label (or on ``__name__``) is decided here, once: true drops it,
  false drops that recording definition;
* any other matcher filters the result with ``and on(l)``/``unless on(l)`` against a one-element
  vector carrying the wanted value, or, for regular expressions, by marking the matching series
  with ``label_replace`` (anchored, like a matcher) and keeping the marked ones;
* a record name defined by several rules (one per service) selects the union (``or``);
* ``offset`` on a recorded series is pushed into every selector of its expression;
  a range (``R[5m]``) becomes a subquery at the evaluation step, which is what the recorded
  series would have held.

The tokenizer follows Prometheus' lexer for the parts generated rules use: strings in three
quote styles, numbers, durations, identifiers with colons, keywords, comments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "atan2"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
SET_OPERATORS = {"and", "or", "unless"}
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
MARK = "__watchkeeper_backtest_match"

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
                   "y": 31536000}
_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w.]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^=<>(){}\[\],:@])
""", re.VERBOSE)


class PromQLError(ValueError):
    """An expression this module cannot read; the message names the expression."""


@dataclass(frozen=True)
class Token:
    kind: str  # string, duration, number, ident, op
    text: str
    pos: int = 0  # offset in the expression

    @property
    def word(self) -> str:
        return self.text.lower() if self.kind == "ident" else ""


def tokenize(expr: str) -> list[Token]:
    tokens, pos, in_brackets = [], 0, False
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise PromQLError(f"cannot read PromQL at {expr[pos:pos + 20]!r} in {expr!r}")
        if in_brackets and expr[pos] == ":":  # [5m:1m]: a subquery step, not a name
            tokens.append(Token("op", ":", pos))
            pos += 1
            continue
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), pos))
            in_brackets = {"[": True, "]": False}.get(match.group(), in_brackets)
        pos = match.end()
    return tokens


def parse_duration(text: str) -> float:
    """Seconds of a Prometheus duration such as ``1h30m`` or ``250ms``."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise PromQLError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Prometheus' duration syntax; negative offsets keep their sign in front."""
    millis = round(abs(seconds) * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return ("-" if seconds < 0 else "") + "".join(parts)


def unquote(token: Token) -> str:
    text = token.text
    if text[0] == "`":
        return text[1:-1]
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\", '"': '"',
                                       "'": "'"}.get(m[1], "\\" + m[1]), body)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # =, !=, =~, !~
    value: str

    def matches(self, value: str) -> bool:
        """As Prometheus decides it: regular expressions are anchored at both ends."""
        if self.op in ("=", "!="):
            return (value == self.value) == (self.op == "=")
        return bool(re.fullmatch(self.value, value)) == (self.op == "=~")

    def __str__(self) -> str:
        return f"{self.label}{self.op}{quote(self.value)}"


@dataclass
class Selector:
    """``name{matchers}[range:step] offset o`` as read from the token stream."""

    name: str | None
    matchers: list[Matcher]
    range: str | None = None      # text inside [...] (``5m`` or ``5m:1m``)
    offset: float = 0.0
    at: str | None = None         # text after @, kept verbatim
    start: int = 0                # token span [start, end)
    end: int = 0

    def render(self, extra_offset: float = 0.0) -> str:
        matchers = ",".join(map(str, self.matchers))
        text = (self.name or "") + ("{" + matchers + "}" if matchers or not self.name else "")
        if self.range is not None:
            text += f"[{self.range}]"
        offset = self.offset + extra_offset
        if offset:
            text += f" offset {format_duration(offset)}"
        if self.at is not None:
            text += f" @ {self.at}"
        return text

    def equality_matchers(self) -> list[Matcher]:
        return [m for m in self.matchers if m.op == "=" and m.label != "__name__"]


def _skip_parens(tokens: list[Token], index: int) -> int:
    """Index after the parenthesised group starting at ``tokens[index]`` (an opening paren)."""
    depth = 0
    for position in range(index, len(tokens)):
        if tokens[position].text == "(":
            depth += 1
        elif tokens[position].text == ")":
            depth -= 1
            if depth == 0:
                return position + 1
    raise PromQLError("unbalanced parentheses")


def _read_matchers(tokens: list[Token], index: int) -> tuple[list[Matcher], int]:
    """Matchers of ``{...}`` starting at the opening brace; returns them and the index after."""
    matchers, index = [], index + 1
    while tokens[index].text != "}":
        label, op, value = tokens[index:index + 3]
        if label.kind not in ("ident", "string") or op.text not in ("=", "!=", "=~", "!~") \
                or value.kind != "string":
            raise PromQLError(f"cannot read label matcher near {label.text!r}")
        name = unquote(label) if label.kind == "string" else label.text
        matchers.append(Matcher(name, op.text, unquote(value)))
        index += 3
        if tokens[index].text == ",":
            index += 1
    return matchers, index + 1


def _read_modifiers(tokens: list[Token], index: int, selector: Selector) -> int:
    """``[range]``, ``offset d`` and ``@ t`` after a selector, in any order."""
    while index < len(tokens):
        token = tokens[index]
        if token.text == "[" and selector.range is None:
            close = next(i for i in range(index, len(tokens)) if tokens[i].text == "]")
            selector.range = "".join(t.text for t in tokens[index + 1:close])
            index = close + 1
        elif token.word == "offset":
            sign = -1 if tokens[index + 1].text == "-" else 1
            index += 2 if sign < 0 else 1
            selector.offset += sign * parse_duration(tokens[index].text)
            index += 1
        elif token.text == "@":
            end = index + 2
            if tokens[index + 1].word in ("start", "end"):
                end = index + 4
            selector.at = "".join(t.text for t in tokens[index + 1:end])
            index = end
        else:
            break
    return index


def selectors(tokens: list[Token]) -> Iterator[Selector]:
    """Every vector selector of an expression, in order, with its token span."""
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1].text if index + 1 < len(tokens) else ""
        if token.word in GROUPING and following == "(":
            index = _skip_parens(tokens, index + 1)
            continue
        if token.kind == "ident" and (token.word in KEYWORDS or following == "("
                                      or token.word in ("inf", "nan")
                                      or (token.word in AGGREGATIONS
                                          and tokens[index + 1].word in ("by", "without"))):
            index += 1
            continue
        if token.kind == "ident" or token.text == "{":
            start = index
            name = token.text if token.kind == "ident" else None
            if name is not None:
                index += 1
            matchers: list[Matcher] = []
            if index < len(tokens) and tokens[index].text == "{":
                matchers, index = _read_matchers(tokens, index)
            selector = Selector(name, matchers, start=start)
            selector.end = _read_modifiers(tokens, index, selector)
            index = selector.end
            yield selector
            continue
        index += 1


@dataclass(frozen=True)
class Recording:
    """One recording rule: the series name it writes, its expression and static labels."""

    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class Inliner:
    """Rewrites expressions so that they read raw series only.

    ``recordings`` holds every recording rule Prometheus would load (all services), keyed by
    record name; ``step`` is the evaluation interval used for ranges over recorded series.
    ``raw`` collects the raw selectors met, for the missing-data check.
    """

    recordings: dict[str, list[Recording]]
    step: float = 60.0
    raw: dict[str, Selector] = field(default_factory=dict)

    def inline(self, expr: str, offset: float = 0.0, _seen: tuple[str, ...] = ()) -> str:
        tokens = tokenize(expr)
        out, last = [], 0
        for selector in selectors(tokens):
            out.append(_join(tokens[last:selector.start]))
            replacement = self._replace(selector, offset, _seen)
            if replacement.startswith("(") and selector.start and \
                    tokens[selector.start - 1].word in ("group_left", "group_right"):
                # `group_left (x)` would read x as its label list
                replacement = "() " + replacement
            out.append(replacement)
            last = selector.end
        out.append(_join(tokens[last:]))
        text = ""
        for part in filter(None, out):
            glue = not text or text[-1] in "([{" or part[0] in ")]},"
            text += ("" if glue else " ") + part
        return text

    def _replace(self, selector: Selector, offset: float, seen: tuple[str, ...]) -> str:
        definitions = self.recordings.get(selector.name or "")
        if selector.name is None and any(
                m.label == "__name__" and m.matches(name) for m in selector.matchers
                for name in self.recordings):
            raise PromQLError("selecting recorded series by a __name__ matcher is not "
                              "supported; name the recording")
        if not definitions:
            text = selector.render(offset)
            if selector.name:
                self.raw.setdefault(selector.render(), selector)
            return text
        if selector.name in seen:
            raise PromQLError(f"recording {selector.name} refers to itself")
        if selector.at is not None:
            raise PromQLError(f"the @ modifier on recorded series {selector.name} is not "
                              "supported")
        parts = [part for part in (self._definition(d, selector, offset + selector.offset,
                                                    (*seen, d.record))
                                   for d in definitions) if part is not None]
        body = " or ".join(f"({part})" for part in parts) if parts else "vector(0) < 0"
        if selector.range is None:
            return f"({body})"
        window = selector.range.split(":")[0]
        if ":" in selector.range:
            raise PromQLError(f"a subquery over recorded series {selector.name} is not "
                              "supported")
        return f"({body})[{window}:{format_duration(self.step)}]"

    def _definition(self, recording: Recording, selector: Selector, offset: float,
                    seen: tuple[str, ...]) -> str | None:
        static = dict(recording.labels)
        static["__name__"] = recording.record
        dynamic = []
        for matcher in selector.matchers:
            if matcher.label in static:
                if not matcher.matches(static[matcher.label]):
                    return None
            else:
                dynamic.append(matcher)
        text = f"label_replace(({self.inline(recording.expr, offset, seen)}), " \
               f'"__name__", {quote(recording.record)}, "", "")'
        for name, value in recording.labels:
            text = f'label_replace({text}, {quote(name)}, {quote(value)}, "", "")'
        for matcher in dynamic:
            text = _filter(text, matcher)
        return text


def _filter(text: str, matcher: Matcher) -> str:
    """Keep the series of ``text`` whose label satisfies ``matcher``, in plain PromQL."""
    label = matcher.label
    keep = "and" if matcher.op in ("=", "=~") else "unless"
    if matcher.op in ("=", "!="):
        wanted = f'label_replace(vector(1), {quote(label)}, {quote(matcher.value)}, "", "")'
        return f"({text}) {keep} on({label}) {wanted}"
    marked = f'label_replace({text}, "{MARK}", "1", {quote(label)}, {quote(matcher.value)})'
    wanted = f'label_replace(vector(1), "{MARK}", "1", "", "")'
    return f'label_replace(({marked}) {keep} on({MARK}) {wanted}, "{MARK}", "", "", "")'


def _join(tokens: list[Token]) -> str:
    """Tokens back to text: spaces between words, none around brackets and commas."""
    text, previous = "", Token("op", "")
    for token in tokens:
        glue = not text or text[-1] in "([{:" or token.text in ")]},:" or (
            token.text == "(" and previous.kind == "ident" and previous.word not in KEYWORDS)
        text += ("" if glue else " ") + token.text
        previous = token
    return text


@dataclass(frozen=True)
class Split:
    """An alert expression ``signal OP budget ...``: what to draw and where its line goes."""

    signal: str
    op: str
    budget: float


def split_comparison(expr: str) -> Split | None:
    """The comparison with a constant that leads an alert: ``x > 0.05 and on() ...`` → x.

    Only the expression's first operand is searched (before any ``and``/``or``/``unless``,
    looking inside leading parentheses), so guards such as ``and on() count(up) > 0`` are not
    mistaken for the signal. Only a constant budget (a number or arithmetic of numbers) gives a
    line; anything else (absent(), ``> bool``, a budget read from a series) returns None.
    """
    tokens = tokenize(expr)
    leading = next((i for i, t in enumerate(tokens) if t.text != "("), 0)
    depth = 0
    for index, token in enumerate(tokens):
        if token.text in "([{":
            depth += 1
        elif token.text in ")]}":
            depth -= 1
        elif token.word in SET_OPERATORS and depth <= leading:
            return None
        elif token.kind == "op" and token.text in COMPARISONS and depth <= leading:
            rest = index + 1
            if rest < len(tokens) and tokens[rest].word == "bool":
                return None
            end, inner = rest, 0
            while end < len(tokens) and tokens[end].word not in SET_OPERATORS:
                inner += {"(": 1, ")": -1}.get(tokens[end].text, 0)
                if inner < 0:
                    break
                end += 1
            budget = _constant(tokens[rest:end])
            signal = expr[tokens[depth].pos:token.pos].strip() if index > depth else ""
            return Split(signal, token.text, budget) if signal and budget is not None else None
    return None


def factor_budget(expr: str) -> tuple[str, str, float] | None:
    """``S op c [and|unless …]`` → (``S [and|unless …]``, op, c), or None.

    Alerts that differ only in their budget (warning and critical) can then share one query,
    each filtering its values by ``op c`` afterwards. That is exact: a comparison with a
    constant keeps or drops each sample of ``S`` by its value alone, and ``and``/``unless``
    keep or drop left-hand samples by their labels alone (values untouched), so the two
    filters commute; Python's float comparisons are Go's (IEEE 754, NaN included). Anything
    else — an ``or``, ``bool``, a comparison inside parentheses, a budget that is not a
    constant — returns None and is queried as written.
    """
    tokens = tokenize(expr)
    depth = 0
    for index, token in enumerate(tokens):
        if token.text in "([{":
            depth += 1
        elif token.text in ")]}":
            depth -= 1
        elif depth == 0 and token.word in SET_OPERATORS:
            return None
        elif depth == 0 and token.kind == "op" and token.text in COMPARISONS:
            end = index + 1
            while end < len(tokens) and tokens[end].word not in SET_OPERATORS:
                end += 1
            budget = _constant(tokens[index + 1:end])
            if index == 0 or budget is None or _has_top_level_or(tokens[end:]):
                return None
            rest = expr[tokens[end].pos:] if end < len(tokens) else ""
            return f"{expr[:token.pos].rstrip()} {rest}".strip(), token.text, budget
    return None


def _has_top_level_or(tokens: list[Token]) -> bool:
    depth = 0
    for token in tokens:
        depth += {"(": 1, ")": -1}.get(token.text, 0)
        if depth == 0 and token.word == "or":
            return True
    return False


def compare(value: float, op: str, budget: float) -> bool:
    """``value op budget`` as PromQL's filtering comparison decides it."""
    return {">": value > budget, "<": value < budget, ">=": value >= budget,
            "<=": value <= budget, "==": value == budget, "!=": value != budget}[op]


def _constant(tokens: list[Token]) -> float | None:
    """Value of ``0.05``, ``14.4 * 0.001`` or ``(1 - 0.999) * 6``; None when not constant."""
    if not tokens or any(t.kind not in ("number", "op") or
                         (t.kind == "op" and t.text not in "+-*/()") for t in tokens):
        return None
    position = 0

    def expression(parse_term: Callable[[], float], ops: str,
                   apply: Callable[[float, str, float], float]) -> float:
        nonlocal position
        value = parse_term()
        while position < len(tokens) and tokens[position].text in ops:
            op = tokens[position].text
            position += 1
            value = apply(value, op, parse_term())
        return value

    def atom() -> float:
        nonlocal position
        token = tokens[position]
        position += 1
        if token.text == "(":
            value = additive()
            position += 1
            return value
        if token.text == "-":
            return -atom()
        if token.text == "+":
            return atom()
        return float(int(token.text, 16)) if token.text[:2].lower() == "0x" else float(token.text)

    def product() -> float:
        return expression(atom, "*/", lambda a, op, b: a * b if op == "*" else a / b)

    def additive() -> float:
        return expression(product, "+-", lambda a, op, b: a + b if op == "+" else a - b)

    try:
        value = additive()
    except (IndexError, ValueError, ZeroDivisionError):
        return None
    return value if position == len(tokens) else None
