"""The reading path stays short and plain.

The files a learner reads in order (README, "Reading order") hold the math; speed lives in
``nanogan/fast`` and ``nanogan/_kernels``. Like tinygrad's line count on its core, this test keeps
a budget on the code lines of those files (lines that are not blank, not comments and not
docstrings) and keeps the fast path's machinery out of them.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The reading path, in reading order.
READING_PATH = [
    "nanogan/layers/base.py", "nanogan/layers/dense.py", "nanogan/layers/activations.py",
    "nanogan/layers/container.py", "nanogan/losses.py", "nanogan/gan.py",
]

#: Code lines allowed on the whole path (670 after the hardening merge, its checks in checks.py).
BUDGET = 700

#: Names that belong to the fast path, not to the reading path.
FAST_PATH_NAMES = ("matmul", "_forward_act", "_backward_act", "_fusable", "_threads",
                   "blas_threads", "bias_leaky_relu", "batchnorm_leaky_relu")


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not inside a docstring."""
    tree = ast.parse(source)
    doc_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        for line in range(tok.start[0], tok.end[0] + 1):
            if line not in doc_lines:
                code.add(line)
    return len(code)


def test_code_lines_counts_only_code():
    src = '"""doc\n\nmore"""\n\n# comment\nx = 1  # trailing\n\n\ndef f():\n    """d"""\n' \
          '    return (x +\n            1)\n'
    assert code_lines(src) == 4


def test_reading_path_line_budget():
    counts = {p: code_lines((ROOT / p).read_text()) for p in READING_PATH}
    total = sum(counts.values())
    assert total <= BUDGET, (f"the reading path has {total} code lines, over its budget of "
                             f"{BUDGET}: {counts}. Move speed into nanogan/fast, or split a file.")


def test_reading_path_has_no_fast_path_machinery():
    for p in READING_PATH:
        names = {n.id for n in ast.walk(ast.parse((ROOT / p).read_text()))
                 if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(ast.parse((ROOT / p).read_text()))
                  if isinstance(n, ast.Attribute)}
        names |= {a.name for n in ast.walk(ast.parse((ROOT / p).read_text()))
                  if isinstance(n, ast.ImportFrom) for a in n.names}
        found = sorted(names & set(FAST_PATH_NAMES))
        assert not found, f"{p} uses the fast path's {found}; it belongs in nanogan/fast"


def test_readme_gives_the_reading_order_on_its_first_screen():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:40])
    order = ["examples/minimal_gan.py", "docs/backprop-through-gans.md", *READING_PATH]
    positions = [first_screen.find(f"]({name})") for name in order]  # the links, in order
    assert all(p >= 0 for p in positions), dict(zip(order, positions))
    assert positions == sorted(positions), "the README lists the reading path out of order"
    for path in ("examples/minimal_gan.py", "docs/backprop-through-gans.md", *READING_PATH):
        assert (ROOT / path).exists(), path
