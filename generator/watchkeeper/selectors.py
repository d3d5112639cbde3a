"""Service selectors: label matchers with Prometheus' operators, checked as Prometheus would.

A spec writes a selector as a mapping (``{job: checkout, route: {not_regex: "/healthz"}}``)
or as PromQL matchers (``'{job=~"a|b", route!~"/metrics|/healthz"}'``). Regexes are
compiled by RE2 (google-re2), the syntax Prometheus' Go regexp implements, so what
Python's `re` would accept and Prometheus would not (lookarounds, backreferences,
possessive repeats, ``\\Z``) is an error here rather than at rule-load time. Prometheus
anchors every regex, so matching here is a full match too.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # the stdlib's regex parser (public as sre_parse until 3.11)
from typing import Any

import re2
from watchkeeper.model import Matcher, Selector

OPS = {"regex": "=~", "not_regex": "!~", "not": "!=", "equal": "="}
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
_MATCHER = re.compile(rf"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*({_STRING})\s*(,|$)")
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors become spec messages, not lines on stderr


def compile_re2(pattern: str) -> Any:
    """The anchored RE2 program of a Prometheus regex; ValueError naming what RE2 rejects."""
    try:
        return re2.compile(f"^(?:{pattern})$", _OPTIONS)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) \
            else str(error)
        raise ValueError(f"{pattern!r} is not a regular expression Prometheus (RE2) accepts: "
                         f"{reason}") from None


def parse(value: object) -> Selector:
    """A Selector from the spec's mapping or PromQL form; ValueError saying what is wrong."""
    if isinstance(value, str):
        matchers = _parse_promql(value)
    elif isinstance(value, dict):
        matchers = [_from_mapping(name, item) for name, item in value.items()]
    else:
        raise ValueError("a selector is a mapping such as {job: checkout} or PromQL matchers "
                         "such as '{job=~\"a|b\"}'")
    if not matchers:
        raise ValueError("a selector needs at least one matcher")
    for matcher in matchers:
        if not _LABEL.match(matcher.name) or matcher.name.startswith("__"):
            raise ValueError(f"{matcher.name!r} is not a valid Prometheus label name")
        if matcher.op in ("=~", "!~"):
            compile_re2(matcher.value)
    if all(_matches(m, "") for m in matchers):
        raise ValueError("every matcher also matches series without the label; Prometheus "
                         "needs at least one that does not (such as job=\"x\" or job=~\".+\")")
    return Selector(tuple(matchers), _example(matchers))


def _from_mapping(name: str, item: object) -> Matcher:
    if isinstance(item, str):
        return Matcher(name, "=", item)
    if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in OPS:
        [(kind, value)] = item.items()
        if isinstance(value, str):
            return Matcher(name, OPS[kind], value)
    raise ValueError(f"label {name!r}: expected a value, or one of "
                     + ", ".join(f"{{{kind}: ...}}" for kind in OPS))


def _parse_promql(text: str) -> list[Matcher]:
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers, position = [], 0
    while position < len(body.rstrip()):
        match = _MATCHER.match(body, position)
        if match is None:
            raise ValueError(f"cannot read PromQL matchers at {body[position:]!r}; expected "
                             'label="value", label!="value", label=~"regex" or label!~"regex"')
        name, op, quoted, _ = match.groups()
        matchers.append(Matcher(name, op, _unquote(quoted)))
        position = match.end()
    return matchers


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1])


def _matches(matcher: Matcher, value: str) -> bool:
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    found = compile_re2(matcher.value).search(value) is not None
    return found if matcher.op == "=~" else not found


def _example(matchers: list[Matcher]) -> dict[str, str]:
    """Label values satisfying every matcher: a label only excluded is left out (absent
    labels read as ""), a regex gets the simplest string it matches."""
    example: dict[str, str] = {}
    for name in dict.fromkeys(m.name for m in matchers):
        own = [m for m in matchers if m.name == name]
        candidates = [m.value for m in own if m.op == "="]
        candidates += [_sample(m.value) for m in own if m.op == "=~"]
        candidates = [c for c in candidates if c is not None] or [""]
        value = next((c for c in candidates if all(_matches(m, c) for m in own)), None)
        if value is None:
            raise ValueError(f"no value of label {name!r} satisfies all of its matchers, or "
                             "none could be derived for the generated tests; use a simpler "
                             "regex (such as alternatives of words)")
        if value:
            example[name] = value
    return example


# RE2 classes Python's parser lacks, as Python equivalents (only to derive a sample value;
# the sample is then checked with RE2 itself).
_RE2_ONLY = {"[:alpha:]": "a-zA-Z", "[:digit:]": "0-9", "[:alnum:]": "a-zA-Z0-9",
             "[:lower:]": "a-z", "[:upper:]": "A-Z", "[:word:]": "\\w", "[:space:]": "\\s",
             "[:xdigit:]": "0-9a-fA-F", "\\pL": "a", "\\p{L}": "a", "\\pN": "0",
             "\\p{N}": "0"}


def _sample(pattern: str) -> str | None:
    """The simplest string `pattern` matches (first alternative, fewest repeats), or None
    where Python's parser cannot read the pattern."""
    for re2_only, python in _RE2_ONLY.items():
        pattern = pattern.replace(re2_only, python)
    try:
        return _generate(sre_parse.parse(pattern))
    except (re.error, ValueError, KeyError):
        return None


def _generate(parsed: Any) -> str:
    out = []
    for op, arg in parsed:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_first_in(arg))
        elif name == "BRANCH":
            out.append(_generate(arg[1][0]))
        elif name == "SUBPATTERN":
            out.append(_generate(arg[-1]))
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, _, item = arg
            out.append(_generate(item) * low)
        elif name == "AT":
            continue
        else:
            raise ValueError(name)
    return "".join(out)


def _first_in(items: Any) -> str:
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name == "RANGE":
            return chr(arg[0])
        if name == "CATEGORY":
            return {"CATEGORY_DIGIT": "0", "CATEGORY_WORD": "a",
                    "CATEGORY_SPACE": " "}[str(arg)]
        if name == "NEGATE":
            raise ValueError(name)
    raise ValueError("IN")
