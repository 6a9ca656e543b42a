"""Runs the Python blocks of a Markdown file, like a doctest session, and checks shown results.

Used by ``tests/test_docs.py`` (every block of ``docs/*.md`` and ``README.md``) and by
``tests/test_wheel.py`` (the README's tour in a fresh venv with the built wheel), so it needs
nothing but the standard library: ``python tests/docs_runner.py README.md`` runs one file.

The rules a page follows:

- Every ```` ```python ```` block runs, in order, in one namespace per file (the working
  directory is the caller's: the tests give each file a fresh temporary one).
- A block right after ``<!-- not run: reason -->`` is skipped. Use it only for a block that needs
  a real third-party service (a processor's API key) or shows a file of another package.
- A block naming a PostgreSQL URL (``"postgresql://..."``) runs only when the caller gives a
  ``postgres`` function; each URL in it is replaced by what that function returns for it (the
  tests: a fresh schema on the test server). Without one it is skipped, and said so.
- A result shown after an expression, as a comment on its last line or on the comment lines
  right below it (``r.amount  # Money('65.81', 'USD'): exact``), or as the output of a
  ``>>>`` line, is checked: the shown text must start with the value's ``repr`` or ``str``
  (whitespace-insensitive, so long strings may wrap), or its longest leading Python expression
  must evaluate equal to the value (``# True, date(2027, 5, 21)``; ``RefundOutcome.QUEUED``);
  a shown string with ``...`` in it (``# '... 51 days ago ...'``) must contain each piece.
  Shown text that is not an expression (``# run it daily``) is prose and only has to run.
- An expression whose shown result starts with an exception's name (``# InvalidTypeError (a
  TypeError): "... @ $.amount"``, ``ConfigurationError: must not ... @ $.minimum``) must raise
  it (or a subclass); the quoted fragments (or the message after ``Name:``) must be in it.
- A comparison shown without a result (``Money.from_minor_units(1999, "USD") == m``) must hold.
- Annotations are not evaluated (as under ``from __future__ import annotations``), so a
  signature written as a stub (``def hook(event: RefundIssued) -> None: ...``) runs.
"""

from __future__ import annotations
import __future__

import ast
import functools
import io
import re
import sys
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not run:\s*((?:(?!-->).)+?)\s*-->\s*\Z", re.S)
POSTGRES_URL = re.compile(r"""(["'])(postgresql(?:\+\w+)?://[^"']*)\1""")
EXCEPTION_NAME = re.compile(r"([A-Z]\w*(?:Error|Exception|Warning))\b")
FLAGS = __future__.annotations.compiler_flag


class DocsError(AssertionError):
    """A block failed, or a result it shows is not what the code gives."""


@dataclass(frozen=True, kw_only=True)
class Block:
    path: Path
    line: int  # the line of the block's first source line in the Markdown file
    source: str
    not_run: str | None  # the reason, from <!-- not run: reason -->

    @property
    def postgres_urls(self) -> list[str]:
        """The PostgreSQL URLs in the block's string literals (not in its comments)."""
        try:
            tokens = tokenize.generate_tokens(io.StringIO(self.source).readline)
            strings = " ".join(t.string for t in tokens if t.type == tokenize.STRING)
        except (tokenize.TokenError, SyntaxError):
            strings = self.source
        return sorted({m.group(2) for m in POSTGRES_URL.finditer(strings)})

    def where(self, offset: int = 0) -> str:
        return f"{self.path.name}:{self.line + offset}"


@dataclass
class Report:
    """What a run did: the checked results and the prose ones (line and shown text), the skipped
    blocks."""

    ran: list[Block] = field(default_factory=list)
    checked: list[tuple[str, str]] = field(default_factory=list)
    prose: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[Block, str]] = field(default_factory=list)


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        not_run = NOT_RUN.search(before)
        found.append(
            Block(
                path=path,
                line=text.count("\n", 0, match.start(1)) + 1,
                source=match.group(1),
                not_run=not_run.group(1) if not_run else None,
            )
        )
    return found


def run_file(
    path: Path,
    *,
    postgres: Callable[[str], str] | None = None,
    namespace: dict[str, Any] | None = None,
) -> Report:
    """Run every block of ``path`` in order in one namespace; raise ``DocsError`` on a failure."""
    ns: dict[str, Any] = {"__name__": "docs_block"} if namespace is None else namespace
    report = Report()
    for block in blocks(path):
        if block.not_run:
            report.skipped.append((block, f"not run: {block.not_run}"))
            continue
        source = block.source
        if block.postgres_urls:
            if postgres is None:
                report.skipped.append((block, "needs PostgreSQL (BILLING_CORE_TEST_POSTGRES_URL)"))
                continue
            for url in block.postgres_urls:
                source = source.replace(url, postgres(url))
        _run_block(block, source, ns, report)
        report.ran.append(block)
    return report


# -- one block ------------------------------------------------------------------------------------
def _run_block(block: Block, source: str, ns: dict[str, Any], report: Report) -> None:
    if any(line.startswith(">>> ") for line in source.splitlines()):
        for offset, code, shown in _session(source):
            _run_statement(block, offset, code, shown, ns, report)
        return
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise DocsError(f"{block.where((error.lineno or 1) - 1)}: {error.msg}") from error
    lines = source.splitlines()
    for i, statement in enumerate(tree.body):
        first, last = statement.lineno - 1, statement.end_lineno or statement.lineno
        stop = tree.body[i + 1].lineno - 1 if i + 1 < len(tree.body) else len(lines)
        code = "\n".join(lines[first:last])
        shown = ""
        if isinstance(statement, ast.Expr):
            shown = _comments(lines[first:last], lines[last:stop])
        _run_statement(block, first, code, shown, ns, report)


def _session(source: str) -> list[tuple[int, str, str]]:
    """A ``>>>`` block as (line offset, code, shown output) per example."""
    examples: list[tuple[int, list[str], list[str]]] = []
    for offset, line in enumerate(source.splitlines()):
        if line.startswith(">>> "):
            examples.append((offset, [line[4:]], []))
        elif line.startswith("... ") and examples and not examples[-1][2]:
            examples[-1][1].append(line[4:])
        elif examples:
            examples[-1][2].append(line)
    return [(offset, "\n".join(code), "\n".join(out)) for offset, code, out in examples]


def _comments(statement: list[str], after: list[str]) -> str:
    """The comment on a statement's last line and the comment lines right below it."""
    texts = []
    tokens = tokenize.generate_tokens(io.StringIO("\n".join(statement) + "\n").readline)
    for token in tokens:
        if token.type == tokenize.COMMENT and token.start[0] == len(statement):
            texts.append(token.string[1:])
    for line in after:
        if not line.lstrip().startswith("#"):
            break
        texts.append(line.lstrip()[1:])
    return "\n".join(texts)


def _run_statement(
    block: Block, offset: int, code: str, shown: str, ns: dict[str, Any], report: Report
) -> None:
    where = block.where(offset)
    tree = ast.parse(code)
    ast.increment_lineno(tree, block.line + offset - 1)
    filename = str(block.path)
    expression = (
        tree.body[0].value if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) else None
    )
    shown = shown.strip()
    raises = EXCEPTION_NAME.match(shown) if expression is not None else None
    try:
        if expression is None:
            exec(compile(tree, filename, "exec", flags=FLAGS, dont_inherit=True), ns)
            return
        value = eval(
            compile(ast.Expression(expression), filename, "eval", flags=FLAGS, dont_inherit=True),
            ns,
        )
    except Exception as error:
        if raises and raises.group(1) in {cls.__name__ for cls in type(error).__mro__}:
            _check_message(where, shown, error)
            report.checked.append((where, shown))
            return
        raise DocsError(f"{where}: {type(error).__name__}: {error}\n{code}") from error
    if raises:
        raise DocsError(f"{where}: shows {raises.group(1)} but gives {value!r}\n{code}")
    if shown:
        if _matches(shown, value, ns, where):
            report.checked.append((where, shown))
        else:
            report.prose.append((where, shown))
    elif isinstance(expression, ast.Compare) and isinstance(expression.ops[0], ast.Eq):
        if value is not True:
            raise DocsError(f"{where}: this comparison does not hold\n{code}")
        report.checked.append((where, code))


def _norm(text: str) -> str:
    return " ".join(text.split())


def _check_message(where: str, shown: str, error: Exception) -> None:
    message = _norm(str(error))
    name = EXCEPTION_NAME.match(shown)
    assert name
    rest = shown[name.end() :]
    if rest.startswith(":"):  # ``Name: message`` as Python prints it
        fragments = [rest[1:].split("#")[0]]
    else:  # ``Name (prose): "... quoted fragments ..."``
        fragments = re.findall(r'"([^"]*)"', rest)
    for fragment in fragments:
        for piece in _norm(fragment).split("..."):
            if piece.strip() and piece.strip() not in message:
                raise DocsError(f"{where}: shows {piece.strip()!r}, the error says {message!r}")


def _matches(shown: str, value: Any, ns: dict[str, Any], where: str) -> bool:
    """True when the shown result is checked and right, False when it is prose; raises if wrong."""
    text = _norm(shown)
    for form in (repr(value), str(value)):
        form = _norm(form)
        if form and text.startswith(form):
            rest = text[len(form) :]
            if not rest or not (rest[0].isalnum() or rest[0] in "._'\""):
                return True
    claim = _claim(text)
    if claim is None:
        return False
    if isinstance(value, str) and claim[0] in "'\"" and "..." in claim:  # '... a fragment ...'
        for piece in claim[1:-1].split("..."):
            if piece.strip() not in _norm(value):
                raise DocsError(f"{where}: shows {piece.strip()!r}, the code gives {value!r}")
        return True
    if isinstance(value, tuple) and not isinstance(ast.parse(claim, mode="eval").body, ast.Tuple):
        raise DocsError(f"{where}: shows {claim} for a tuple, the code gives {value!r}")
    try:
        expected = eval(claim, {**_public_names(), **ns})
        equal = bool(expected == value)
    except Exception as error:
        raise DocsError(f"{where}: cannot check the shown {claim!r}: {error!r}") from error
    if not equal:
        raise DocsError(f"{where}: shows {claim}, the code gives {value!r}")
    return True


def _claim(text: str) -> str | None:
    """The longest leading Python expression of the shown text, if it states a value."""
    cuts = [len(text)] + [i for i in range(len(text) - 1, 0, -1) if text[i] in " :,;#"]
    for cut in cuts:
        candidate = text[:cut].strip().rstrip(",")
        try:
            node = ast.parse(candidate, mode="eval").body
        except SyntaxError:
            continue
        states = (ast.Constant, ast.Attribute, ast.Call)
        if not any(isinstance(n, states) for n in ast.walk(node)):
            return None  # words of prose that happen to parse ("run", "sub-cent", "a, b")
        return candidate
    return None


@functools.cache
def _public_names() -> dict[str, Any]:
    """What a shown ``repr`` may name without importing it: billing_core's public names."""
    import datetime
    import decimal
    import fractions

    import billing_core
    import billing_core.engine

    names: dict[str, Any] = {}
    for module in (billing_core, billing_core.engine):
        names.update({name: getattr(module, name) for name in module.__all__})
    names.update(
        date=datetime.date,
        datetime=datetime,
        Decimal=decimal.Decimal,
        Fraction=fractions.Fraction,
    )
    return names


def main(argv: list[str]) -> int:
    """Run the files named (``-v`` lists the shown results that are prose); a failure raises."""
    for name in [arg for arg in argv if arg != "-v"]:
        report = run_file(Path(name))
        for block, reason in report.skipped:
            print(f"{block.where()}: skipped, {reason}")
        for where, shown in report.prose if "-v" in argv else ():
            print(f"{where}: not checked (prose): {_norm(shown)[:80]}")
        print(f"{name}: {len(report.ran)} blocks ran, {len(report.checked)} results checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
