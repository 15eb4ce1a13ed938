"""The documented examples still do what they say: docstring examples (doctest) and the README's
Python blocks."""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import io
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

import nanogan

ROOT = Path(__file__).resolve().parents[1]


def modules_with_examples() -> list[str]:
    """Every nanogan module whose source carries a ``>>>`` example."""
    names = []
    for info in pkgutil.walk_packages(nanogan.__path__, "nanogan."):
        spec = importlib.util.find_spec(info.name)
        origin = spec.origin if spec else None
        if origin and origin.endswith(".py") and ">>>" in Path(origin).read_text("utf-8"):
            names.append(info.name)
    return sorted(names)


MODULES = modules_with_examples()


def test_some_module_has_examples():
    assert "nanogan.gradcheck" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             raise_on_error=False, verbose=False, report=False)
    assert result.attempted > 0, f"{name}: the '>>>' examples were not found by doctest"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_backprop_block_runs_and_leaves_d_untouched():
    block = next(b for b in readme_python_blocks() if "g_loss" in b)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    G, D = ns["G"], ns["D"]
    assert ns["fake"].shape == (64, 784) and ns["s_fake"].shape == (64, 1)
    assert ns["ds"].shape == (64, 1) and ns["dfake"].shape == (64, 784)
    assert all(not g.any() for g in D.grads.values()), "D.grads were touched"
    assert all(g.any() for g in G.grads.values()), "a G gradient is missing"


def test_readme_gradcheck_block_prints_what_it_says():
    block = next(b for b in readme_python_blocks() if "gradcheck(" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {})
    printed = ast.literal_eval(out.getvalue().strip())
    comment = re.search(r"# (\{.*?\})", block).group(1)
    claimed = {k: float(v) for k, v in re.findall(r"'(\w+)': ([0-9.e+-]+)", comment)}
    assert set(printed) == set(claimed)
    for k, v in printed.items():
        assert v < 1e-8, (k, v)
        # the same order of magnitude as the README's figure (BLAS may round differently)
        assert abs(np.log10(v) - np.log10(claimed[k])) < 1.5, (k, v, claimed[k])
