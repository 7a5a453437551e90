"""The API reference renders what the code does: defaults of the documented parameters, no raw Sphinx markup.

mkdocstrings reads the numpydoc sections with griffe; a default shown in a "Parameters" table is the one griffe
attaches to the docstring entry. Grouped entries (``a, b : int``) get the default of the first name that has one,
and ``{"x", "y"}`` choices get the first choice as default, so such entries show wrong defaults; these tests
compare every documented default with the signature.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bayesvol

griffe = pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parents[1]
SPHINX_ROLE = re.compile(r":(?:py:)?(?:math|func|class|meth|mod|attr|exc|data|obj|ref|doc):`|\.\. math::")


@pytest.fixture(scope="module")
def package():
    return griffe.load("bayesvol", docstring_parser="numpy", search_paths=[str(ROOT)])


def _documented_parameters(obj):
    for section in obj.docstring.parse("numpy"):
        if section.kind.value in ("parameters", "other parameters"):
            yield from section.value


def _value(text):
    """A default as written in source or a docstring, as a Python value where it is a literal."""
    try:
        return ast.literal_eval(str(text))
    except (ValueError, SyntaxError):
        return str(text)


def _public_objects(obj, seen):
    for member in obj.members.values():
        if member.is_alias or member.name.startswith("_") or member.path in seen:
            continue
        seen.add(member.path)
        if member.kind.value in ("module", "class"):
            yield from _public_objects(member, seen)
        if member.kind.value in ("function", "class") and member.docstring:
            yield member


@pytest.mark.parametrize("name", ["sample", "fit", "forecast"])
def test_documented_defaults_are_the_signature_defaults(package, name):
    signature = inspect.signature(getattr(bayesvol, name))
    documented = {p.name: p.value for p in _documented_parameters(package[name])}
    checked = 0
    for parameter in signature.parameters.values():
        if parameter.default is inspect.Parameter.empty or parameter.kind is parameter.VAR_KEYWORD:
            continue
        assert parameter.name in documented, f"bayesvol.{name}: {parameter.name} is not documented"
        assert _value(documented[parameter.name]) == parameter.default, (
            f"bayesvol.{name}({parameter.name}=...): the docs show {documented[parameter.name]!r}, "
            f"the signature has {parameter.default!r}")
        checked += 1
    assert checked >= 5


def test_no_public_docstring_shows_a_wrong_default(package):
    wrong = []
    for obj in _public_objects(package, set()):
        try:
            signature = obj.parameters
        except AttributeError:
            continue
        for entry in _documented_parameters(obj):
            if entry.name.startswith("*") or entry.name not in signature:
                continue
            actual = signature[entry.name].default
            if actual is not None and _value(entry.value) != _value(actual):
                wrong.append(f"{obj.path}({entry.name}): docs {entry.value}, signature {actual}")
    assert not wrong, "split grouped entries / avoid {choices} when the default is not the first:\n" + "\n".join(
        wrong)


def test_the_built_site_has_no_sphinx_markup(tmp_path):
    pytest.importorskip("mkdocstrings")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir",
                            str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    pages = list(tmp_path.rglob("*.html"))
    assert any(p.parent.name == "api" for p in pages)
    literal = {str(p.relative_to(tmp_path)): len(SPHINX_ROLE.findall(p.read_text())) for p in pages}
    assert not {page: n for page, n in literal.items() if n}, literal
    api = (tmp_path / "api" / "index.html").read_text()
    # math reaches MathJax through arithmatex, and cross-references resolve to links
    assert api.count('class="arithmatex"') > 50
    assert 'href="#bayesvol.inference.pmmh.sample_pmmh"' in api
