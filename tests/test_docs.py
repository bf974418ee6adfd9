"""The documentation works: its code runs, and its API reference is whole.

Every ```python block of README.md and of docs/**/*.md runs on its own, as
a reader would paste it: in a fresh namespace, in an empty working
directory (blocks may write files), on the backend of this run
(`KERAS_BACKEND`), with the suite's fixtures and warnings as errors. A block
that is not Python, or is not meant to run, takes another fence language
(```text, ```bash).

The blocks are collected here, with the parser pytest-markdown-docs uses
(markdown-it-py), rather than by that plugin: it collects Markdown only
when pytest is given `--markdown-docs` and the files (a change to the
pytest options in pyproject.toml), then also reads every module's
docstrings for code, and runs each block in pytest's own working
directory, so that the files a block saves would land in the repository.
Its per-block options (`notest`, `fixture:...`) go after the language in
the fence, which mkdocs' superfences then no longer renders as code.

The API reference has one page per public symbol under docs/api/, each a
mkdocstrings `::: keras_seqext...` directive. The public symbols are the
names in `__all__` of `keras_seqext` and of its public modules.
"""

import importlib.util
import inspect
import pathlib
import re

import markdown_it
import pytest

import keras_seqext

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
DOCUMENTS = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
RUNNABLE = "python"
# Other names of Python that would render as Python but not run here.
PYTHON_ALIASES = {"py", "py3", "python3", "pycon", "ipython"}
# The packages of an extra that every block of a document needs: an install
# of the sdist for one backend may lack them; `make test` installs them.
DOCUMENT_NEEDS = {"docs/guides/deployment.md": ("onnx", "onnxruntime")}
FENCE = re.compile(r"^\s*(```|~~~)")
DIRECTIVE = re.compile(r"^::: +(\S+)\s*$", re.MULTILINE)
PUBLIC_MODULES = [
    keras_seqext,
    keras_seqext.callbacks,
    keras_seqext.datasets,
    keras_seqext.decoding,
    keras_seqext.layers,
    keras_seqext.metrics,
    keras_seqext.plotting,
]


def _relative(path):
    return path.relative_to(ROOT).as_posix()


def _fences(path):
    """The fenced code blocks of a Markdown file: (language, first line of
    code, counted from 1, code)."""
    tokens = markdown_it.MarkdownIt("commonmark").parse(path.read_text())
    for token in tokens:
        if token.type == "fence":
            language = token.info.split()[0] if token.info.strip() else ""
            yield language, token.map[0] + 2, token.content


def _code_blocks():
    blocks = []
    for path in DOCUMENTS:
        for language, line, code in _fences(path):
            if language == RUNNABLE:
                block_id = f"{_relative(path)}:{line}"
                blocks.append(pytest.param(path, line, code, id=block_id))
    return blocks


@pytest.mark.parametrize(("path", "line", "code"), _code_blocks())
def test_code_block_runs(path, line, code, tmp_path, monkeypatch):
    needs = DOCUMENT_NEEDS.get(_relative(path), ())
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: the `export` extra")
    monkeypatch.chdir(tmp_path)
    # Blank lines first, so that a traceback points at the Markdown line.
    source = "\n" * (line - 1) + code
    exec(compile(source, str(path), "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("path", DOCUMENTS, ids=_relative)
def test_no_python_block_is_skipped(path):
    """Every Python block is found, and is a `python` block, so runs."""
    fences = list(_fences(path))
    aliases = [
        (line, lang) for lang, line, _ in fences if lang in PYTHON_ALIASES
    ]
    assert not aliases, f"use ```python (runs) or ```text: {aliases}"
    # Each fence the parser found has an opening and a closing line; a
    # fence it missed (indented into a code block, say) would not run.
    fence_lines = sum(
        1 for text in path.read_text().splitlines() if FENCE.match(text)
    )
    assert fence_lines == 2 * len(fences), (
        f"{fence_lines} fence lines for {len(fences)} fenced blocks"
    )


def _public_symbols():
    """Each public dotted name, with its object."""
    symbols = {}
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            symbols[f"{module.__name__}.{name}"] = getattr(module, name)
    return symbols


def _identity(path, obj):
    """What makes two public names one symbol: the same object for modules,
    classes and functions; the same name for constants, since equal
    numbers may be one object."""
    if inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isfunction(obj):
        return id(obj)
    return path


def _api_pages():
    """Each API page, with the names its `:::` directives document."""
    return {
        _relative(page): DIRECTIVE.findall(page.read_text())
        for page in sorted(API.rglob("*.md"))
    }


def test_top_level_names_are_all_in_all():
    names = {name for name in vars(keras_seqext) if not name.startswith("_")}
    assert names == set(keras_seqext.__all__)


def test_every_api_page_documents_one_public_symbol():
    symbols = _public_symbols()
    for page, names in _api_pages().items():
        if page == "docs/api/index.md":
            assert names == [], "the index lists the pages, it has none"
            continue
        assert len(names) == 1, f"{page} documents {names}, not one symbol"
        assert names[0] in symbols, f"{page}: {names[0]} is not public"


def test_every_public_symbol_has_an_api_page():
    symbols = _public_symbols()
    documented = {
        _identity(name, symbols[name])
        for names in _api_pages().values()
        for name in names
        if name in symbols
    }
    missing = [
        name
        for name, obj in symbols.items()
        if _identity(name, obj) not in documented
    ]
    assert not missing, f"no page under docs/api/ for {missing}"


def test_every_symbol_has_one_page():
    symbols = _public_symbols()
    pages_of = {}
    for page, names in _api_pages().items():
        for name in names:
            if name in symbols:
                key = _identity(name, symbols[name])
                pages_of.setdefault(key, []).append(page)
    repeated = [pages for pages in pages_of.values() if len(pages) > 1]
    assert not repeated, f"one symbol, several pages: {repeated}"
