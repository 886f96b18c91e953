"""Read the sync operation's state machine out of the SQL that moves it.

Every write of `sync_queue.status` is an `UPDATE sync_queue ... SET status = ...` guarded by the
state it leaves (`WHERE status = '...'`, directly or through the CTE it joins), or an
`INSERT INTO sync_queue` that takes the column default. This module finds those statements in a
text (a named query, or a function body from the catalogue) and returns the moves they can make.
A write it cannot read is an error: the rule is to guard every state write so that it can.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

START = "[*]"

_UPDATE = re.compile(r"\bUPDATE\s+(?:public\.)?sync_queue\b(?:\s+(?:AS\s+)?(?!SET\b)(\w+))?", re.I)
_INSERT = re.compile(r"\bINSERT\s+INTO\s+(?:public\.)?sync_queue\s*\(([^)]*)\)", re.I)
_LITERAL = re.compile(r"'([a-z_]+)'")
_WORD = re.compile(r"\b(SET|FROM|WHERE|RETURNING)\b", re.I)


@dataclass(frozen=True, slots=True)
class Move:
    """One state change a statement can make, and where it is written."""

    source: str
    target: str
    origin: str


class UnreadableError(ValueError):
    """A write of sync_queue.status whose states cannot be read from its text."""


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def _depths(text: str) -> list[int]:
    """The parenthesis depth at each character, string literals skipped."""
    depth, out, quoted = 0, [], False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        out.append(depth)
    return out


def _statement(text: str, start: int) -> str:
    """From `start` to the end of the statement: a `;` at its depth, or the CTE's closing ")"."""
    depth = 0
    quoted = False
    for index in range(start, len(text)):
        char = text[index]
        if char == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return text[start:index]
        elif char == ";" and depth == 0:
            return text[start:index]
    return text[start:]


def _top_level(text: str) -> str:
    """`text` with everything inside parentheses blanked, so subqueries do not count."""
    depths = _depths(text)
    return "".join(c if d == 0 and c != ")" else " " for c, d in zip(text, depths, strict=True))


def _clauses(statement: str) -> dict[str, str]:
    """The SET, FROM, WHERE and RETURNING clauses of an UPDATE, at the top level only."""
    flat = _top_level(statement)
    marks = [(m.group(1).upper(), m.start(), m.end()) for m in _WORD.finditer(flat)]
    clauses: dict[str, str] = {}
    for index, (word, _, end) in enumerate(marks):
        stop = marks[index + 1][1] if index + 1 < len(marks) else len(statement)
        clauses.setdefault(word, statement[end:stop])
    return clauses


def _guards(where: str, alias: str | None) -> set[str]:
    """The states a WHERE clause requires of the row: `[alias.]status = 'x'` or `IN (...)`.

    With no alias, any qualifier counts (a CTE picking rows reads one table).
    """
    flat = _top_level(where)
    prefix = rf"(?:{alias}\.)?" if alias else r"(?:\w+\.)?"
    found: set[str] = set()
    for match in re.finditer(rf"(?<![\w.]){prefix}status\s*=\s*'([a-z_]+)'", flat):
        found.add(match.group(1))
    for match in re.finditer(rf"(?<![\w.]){prefix}status\s+IN\s*", flat, re.I):
        found.update(_LITERAL.findall(where[match.end() : where.index(")", match.end())]))
    return found


def _cte_guards(text: str, names: list[str]) -> set[str]:
    """The guards in the WHERE clause of the named CTEs that read sync_queue."""
    found: set[str] = set()
    for name in names:
        match = re.search(rf"\b{name}\s+AS\s*\(", text, re.I)
        if match is None:
            continue
        body = _statement(text, match.end())
        if re.search(r"\bFROM\s+(?:public\.)?sync_queue\b", _top_level(body), re.I):
            found |= _guards(_clauses(body).get("WHERE", ""), None)
    return found


def moves(text: str, origin: str, default: str) -> Iterator[Move]:
    """Every (state before, state after) the statements in `text` can make to a sync_queue row.

    `default` is the column default an INSERT without a status takes.
    """
    text = _strip_comments(text)
    for match in _INSERT.finditer(text):
        columns = [c.strip().lower() for c in match.group(1).split(",")]
        if "status" in columns:
            raise UnreadableError(f"{origin}: an INSERT sets sync_queue.status; read it here")
        yield Move(START, default, origin)
    for match in _UPDATE.finditer(text):
        alias = match.group(1)
        clauses = _clauses(_statement(text, match.end()))
        assignment = re.search(
            r"(?:^|,)\s*status\s*=\s*(.*?)(?:,|$)", _top_level(clauses.get("SET", "")), re.S
        )
        if assignment is None:
            continue  # leaves the state alone
        set_clause = clauses["SET"]
        expression = set_clause[assignment.start(1) : assignment.end(1)]
        targets = set(_LITERAL.findall(expression))
        sources = _guards(clauses.get("WHERE", ""), alias)
        if not sources:
            sources = _cte_guards(text, re.findall(r"\w+", _top_level(clauses.get("FROM", ""))))
        if not targets or not sources:
            raise UnreadableError(
                f"{origin}: an UPDATE of sync_queue.status without a literal new state or a guard "
                f"on the old one (WHERE status = '...'): every state write must name both"
            )
        for source in sorted(sources):
            for target in sorted(targets):
                yield Move(source, target, origin)
