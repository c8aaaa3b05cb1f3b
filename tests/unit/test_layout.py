"""The layout keeps its promises: pointers resolve, layers import downwards, one version.

* No file in the repository cites the founders' notes (they are not part of the product).
* Every markdown link, backticked repo path, ``dsi <subcommand>``, ``file.md, "Section"``
  pointer and dotted ``dsi_core.x.y`` name in the docs and the code resolves to something that
  exists.
* The import rule of docs/architecture.md: the trusted core imports no backend, model, lab,
  kit, torch or transformers; backends, models and the testing kit import only what the rule
  allows; ``import dsi_core`` does not load torch.
* ``dsi_core.__version__`` is the installed distribution's version.

Each check collects every offender and reports them all at once.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import dsi_core

THIS = Path(__file__).resolve()
ROOT = THIS.parents[2]
FOUNDERS_NOTES = "DESIGN" + ".md"  # spelt in two pieces so this file does not cite it
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".sh", ".yml", ".yaml", ".ini", ""}
CORE = ("config", "events", "coordinator", "sampling", "errors")
CORE_MODULES = tuple(f"dsi_core.{m}" for m in CORE)


@cache
def repo_files() -> tuple[Path, ...]:
    """Tracked files plus untracked ones git does not ignore (.venv, caches are ignored)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = (ROOT / p for p in out.decode().split("\0") if p)
    return tuple(p for p in paths if p.is_file() and ".venv" not in p.parts)


def text_files() -> list[Path]:
    return [p for p in repo_files() if p.suffix in TEXT_SUFFIXES]


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "proofs" / "README.md", *sorted(ROOT.glob("docs/*.md"))]


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


# ----------------------------------------------------------------------------- pointers


def test_nothing_cites_the_founders_notes():
    offenders = [rel(p) for p in repo_files() if FOUNDERS_NOTES.encode() in p.read_bytes()]
    assert not offenders, f"{FOUNDERS_NOTES} is not in the repository; cited by {offenders}"


MD_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
PATH_LIKE = re.compile(r"^[\w.\-/]+$")
REPO_DIRS = ("dsi_core", "tests", "proofs", "docs", "scripts")
PACKAGE_DIRS = ("backends", "models", "testing", "experiments")  # named relative to dsi_core/
EXTENSIONS = (".py", ".md", ".png", ".csv", ".toml", ".sh", ".txt", ".json")


def _exists(token: str, md: Path) -> bool:
    token = token.rstrip("/")
    candidates = [md.parent / token, ROOT / token, ROOT / "dsi_core" / token]
    return any(c.exists() for c in candidates)


FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def prose(text: str) -> str:
    """Markdown without fenced blocks and code spans (where brackets are maths, not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def test_markdown_links_resolve():
    bad = []
    for md in doc_files():
        for target in MD_LINK.findall(prose(md.read_text())):
            if re.match(r"^(https?:|mailto:|#)", target):
                continue
            path = target.split("#", 1)[0]
            if path and not (md.parent / path).exists():
                bad.append(f"{rel(md)}: ({target})")
    assert not bad, "links to missing files:\n" + "\n".join(bad)


def _path_tokens(text: str) -> list[str]:
    out = []
    for span in CODE_SPAN.findall(text):
        for token in span.split():
            token = token.strip(",;:()")
            if not PATH_LIKE.match(token) or token.startswith(("-", ".", "~")):
                continue
            head = token.split("/", 1)[0]
            if ("/" in token and head in REPO_DIRS + PACKAGE_DIRS) or token.endswith(EXTENSIONS):
                out.append(token)
    return out


def test_backticked_repo_paths_exist():
    """`dsi_core/x.py`, `backends/worker.py`, `tests/unit/y.py`: checked. A bare `name.json`
    is too ambiguous (a model's file, an output) and is not."""
    bad = []
    for md in doc_files():
        for token in _path_tokens(md.read_text()):
            if "/" not in token or "*" in token:
                continue
            if not _exists(token, md):
                bad.append(f"{rel(md)}: `{token}`")
    assert not bad, "backticked paths that do not exist:\n" + "\n".join(bad)


def _cli_commands() -> set[str]:
    from dsi_core.cli import COMMANDS

    return set(COMMANDS)


DSI_COMMAND = re.compile(r"(?<![\w./-])dsi ([a-z][a-z-]+)(?![=\w-])")  # not "dsi k=1"


def _strings(path: Path) -> str:
    """A Python file's string constants (docstrings, help texts, messages), one per line."""
    tree = ast.parse(path.read_text())
    return "\n".join(
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def test_every_dsi_subcommand_named_in_docs_and_code_exists():
    commands = _cli_commands()
    bad = []
    for p in text_files():
        if p.suffix not in (".md", ".py", ".sh"):
            continue
        text = _strings(p) if p.suffix == ".py" else p.read_text(errors="replace")
        for m in DSI_COMMAND.finditer(text):
            if m.group(1) not in commands:
                bad.append(f"{rel(p)}: dsi {m.group(1)}")
    assert not bad, f"unknown subcommands (known: {sorted(commands)}):\n" + "\n".join(bad)


SECTION_POINTER = re.compile(r"((?:[\w.\-]+/)*[\w.\-]+\.md|README),? \(?\"([^\"\n]+)\"")


def _headings(md: Path) -> list[str]:
    return [
        line.lstrip("#").strip().lower()
        for line in md.read_text().splitlines()
        if line.startswith("#")
    ]


def test_section_pointers_name_existing_headings():
    """``docs/results.md, "Drafters"`` and ``README, "Tests"`` must name a real heading."""
    bad = []
    for p in text_files():
        if p.suffix not in (".md", ".py") or p == THIS:
            continue
        for m in SECTION_POINTER.finditer(p.read_text(errors="replace")):
            name, section = m.group(1), m.group(2)
            if name == "README":
                name = "README.md"
            targets = [p.parent / name, ROOT / name]
            md = next((t for t in targets if t.is_file()), None)
            if md is None:
                bad.append(f"{rel(p)}: {name} does not exist")
            elif not any(section.lower() in h for h in _headings(md)):
                bad.append(f'{rel(p)}: {name} has no section "{section}"')
    assert not bad, "\n".join(bad)


DOTTED = re.compile(r"\bdsi_core(?:\.[A-Za-z_]\w*)+")


@cache
def _top_level_names(module_file: Path) -> frozenset[str]:
    tree = ast.parse(module_file.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(names)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    base = ROOT
    for i, part in enumerate(parts):
        pkg, mod = base / part, base / f"{part}.py"
        if pkg.is_dir() and (pkg / "__init__.py").exists():
            base = pkg
            continue
        if mod.is_file():
            base = mod
            if i + 1 == len(parts):
                return True
            return parts[i + 1] in _top_level_names(mod)
        # an attribute of the package reached so far
        return base.is_dir() and part in _top_level_names(base / "__init__.py")
    return True


def test_dotted_dsi_core_names_resolve():
    """``dsi_core.exact`` (moved) or ``dsi_core.models.toy`` (moved) anywhere is a dead pointer."""
    bad = []
    for p in text_files():
        if p.suffix not in (".md", ".py", ".toml") or p == THIS:
            continue
        for dotted in set(DOTTED.findall(p.read_text(errors="replace"))):
            if not _resolves(dotted.rstrip(".")):
                bad.append(f"{rel(p)}: {dotted}")
    assert not bad, "dotted names that resolve to nothing:\n" + "\n".join(sorted(bad))


SLASHED = re.compile(
    r"(?<![\w/.])(?:dsi_core|docs|proofs|tests|scripts)/[\w/.-]*?\.(?:py|md|png|csv|sh|json|toml)\b"
)


def test_repo_paths_named_anywhere_exist():
    """``dsi_core/simulate.py`` in a docstring, ``docs/x.md`` in a help text: must exist."""
    bad = []
    for p in text_files():
        if p == THIS:
            continue
        for path in set(SLASHED.findall(p.read_text(errors="replace"))):
            if not (ROOT / path).exists():
                bad.append(f"{rel(p)}: {path}")
    assert not bad, "paths that do not exist:\n" + "\n".join(sorted(bad))


def test_architecture_lists_every_module():
    """docs/architecture.md has one line per module: a new module needs its line."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [
        rel(f)
        for f in sorted((ROOT / "dsi_core").rglob("*.py"))
        if f.name != "__init__.py" and not re.search(rf"^\s+{re.escape(f.name)}\s", text, re.M)
    ]
    assert not missing, f"modules without a line in docs/architecture.md: {missing}"


# ----------------------------------------------------------------------------- imports


def _imports(path: Path, module_level: bool = False) -> set[str]:
    """Every module a file imports: at any depth (function-local imports included), or only
    those run on import of the module (``module_level``)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree)
    if module_level:
        nodes = (
            n
            for top in tree.body
            if not isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            for n in ast.walk(top)
        )
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # from pkg import submodule
    return out


def _violations(files: list[Path], allowed) -> list[str]:  # noqa: ANN001
    bad = []
    for f in files:
        for mod in sorted(_imports(f)):
            if not allowed(mod):
                bad.append(f"{rel(f)} imports {mod}")
    return bad


def _startswith(mod: str, *prefixes: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


FORBIDDEN_IN_CORE = (
    "dsi_core.backends",
    "dsi_core.models",
    "dsi_core.experiments",
    "dsi_core.testing",
    "dsi_core.api",
    "dsi_core.cli",
    "torch",
    "transformers",
    "proofs",
)


def test_core_imports_nothing_above_it():
    files = [ROOT / "dsi_core" / f"{m}.py" for m in (*CORE, "checker")]
    files = [f for f in files if f.exists() or f.stem in CORE]
    bad = _violations(files, lambda mod: not _startswith(mod, *FORBIDDEN_IN_CORE))
    assert not bad, "the trusted core must not import upwards:\n" + "\n".join(bad)


def _dsi_allowed(mod: str, *allowed: str) -> bool:
    """Outside dsi_core anything goes; inside, only the listed modules and packages."""
    if not _startswith(mod, "dsi_core"):
        return not _startswith(mod, "proofs")
    return mod == "dsi_core" or _startswith(mod, *allowed)


def test_backends_import_only_the_core_and_the_protocols():
    files = sorted((ROOT / "dsi_core" / "backends").glob("*.py"))
    bad = _violations(
        files,
        lambda m: _dsi_allowed(m, *CORE_MODULES, "dsi_core.backends", "dsi_core.models.base"),
    )
    assert not bad, "\n".join(bad)


def test_models_import_no_backend_lab_or_kit():
    files = sorted((ROOT / "dsi_core" / "models").glob("*.py"))
    bad = _violations(files, lambda m: _dsi_allowed(m, *CORE_MODULES, "dsi_core.models"))
    assert not bad, "\n".join(bad)


def test_testing_kit_imports_the_core_and_the_simulator_only():
    files = sorted((ROOT / "dsi_core" / "testing").glob("*.py"))
    allowed = (*CORE_MODULES, "dsi_core.testing", "dsi_core.backends.simulated")
    bad = _violations(files, lambda m: _dsi_allowed(m, *allowed, "dsi_core.models.base"))
    # torch only inside the functions that need it (adapters to torch samplers)
    for f in files:
        bad += [
            f"{rel(f)} imports {m} on import"
            for m in sorted(_imports(f, module_level=True))
            if _startswith(m, "torch", "transformers")
        ]
    assert not bad, "\n".join(bad)


def test_proofs_import_only_the_core_and_the_kit():
    """The theorems are about the core; witnesses are re-checked through the testing kit."""
    files = sorted((ROOT / "proofs").glob("*.py"))
    bad = [
        f"{rel(f)} imports {m}"
        for f in files
        for m in sorted(_imports(f))
        if _startswith(m, "dsi_core")
        and not (m == "dsi_core" or _startswith(m, *CORE_MODULES, "dsi_core.testing"))
    ]
    assert not bad, "\n".join(bad)


def test_import_dsi_core_does_not_load_torch():
    code = "import dsi_core, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_one_version():
    assert importlib.metadata.version("dsi-core") == dsi_core.__version__
