"""ARCHITECTURE.md's rules, checked on the source: the import direction, pure mappers, backend-specific
SQL only in `dialects.py`, one printer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlmd2kfp"

LAYERS = [
    {"errors"},
    {"records", "bitmap", "batching", "console", "settings", "dialects"},
    {"db", "faults"},
    {"background"},
    {"mappers", "source", "target"},
    {"migrate", "verify", "sample"},
    {"api"},
    {"demo", "window"},
    {"cli"},
    {"__main__"},
]
"""ARCHITECTURE.md's import direction, bottom up: a module imports only from its own layer or below."""
SIDEWAYS = {
    ("verify", "migrate"): {"migrate.gate", "migrate.lock", "migrate.state"},
    ("mappers", "source"): {"source.values", "source.structs"},
    ("source", "mappers"): {"mappers.enums"},
}
"""The imports allowed between two packages of one layer: verify records its result through the gate;
the mappers take MLMD's decoded values; the inventory names KFP's execution types as the mappers do."""


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Package modules `path` imports, anywhere in it (function-level and type-only imports included)."""
    mod = _module(path)
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    if mod == "":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "mlmd2kfp":
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                candidate = base + [alias.name]
                is_module = (PACKAGE.joinpath(*candidate).with_suffix(".py").exists()
                             or PACKAGE.joinpath(*candidate).is_dir())
                found.add(".".join(candidate if is_module else base))
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("mlmd2kfp.")}
    return {f for f in found if f and f != mod}


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    top = module.split(".")[0] or "errors"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_every_module_has_a_layer():
    for module in _graph():
        if module:
            _layer(module)  # raises StopIteration for a module ARCHITECTURE.md does not place


def test_imports_flow_one_way():
    wrong = []
    for module, imports in _graph().items():
        if not module:
            continue
        for target in imports:
            mine, theirs = module.split(".")[0], target.split(".")[0]
            if _layer(target) > _layer(module):
                wrong.append(f"{module} → {target} (upwards)")
            elif _layer(target) == _layer(module) and mine != theirs:
                allowed = SIDEWAYS.get((mine, theirs), set())
                if not any(target == a or target.startswith(a + ".") for a in allowed):
                    wrong.append(f"{module} → {target} (sideways)")
    assert wrong == []


def test_no_import_cycles():
    graph = _graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(" → ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    done: set[str] = set()
    for module in sorted(graph):
        if module and module not in done:
            visit(module, [module])
    # a package's __init__ re-exporting its own modules is not a cycle between modules
    cycles = [c for c in cycles if not re.fullmatch(r"(\w+) → \1\.\w+ → \1", c)]
    assert cycles == []


def test_verify_never_imports_the_mappers():
    offenders = {m for m, imports in _graph().items() if m.startswith("verify")
                 and any(i.startswith("mappers") for i in imports)}
    assert offenders == set()


def test_mappers_are_pure():
    """No database, no I/O: the mappers import only each other, the record types and value decoding."""
    for path in (PACKAGE / "mappers").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        third_party = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                       and not n.level} | {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                                           for a in n.names}
        assert not third_party & {"sqlalchemy", "os", "subprocess", "socket", "pathlib", "ml_metadata"}, path.name
        assert _imports(path) <= {"mappers", "records", "source.values"} | {
            f"mappers.{p.stem}" for p in (PACKAGE / "mappers").glob("*.py")}, path.name


BACKEND = r"""["'](mysql|mariadb|postgres|postgresql|sqlite|pgx)["']"""
BACKEND_BRANCH = re.compile(
    rf"(\.name|backend|drivername|get_backend_name\(\)|kind|\])\s*(==|!=|in)\s*[\(\{{\[]?{BACKEND}"
    rf"|{BACKEND}\s*(==|!=)|\.startswith\({BACKEND}")
BACKEND_SQL = re.compile(r"typeof\(|pg_[a-z_]+\(|setval\(|sqlite_master|PRAGMA |information_schema|SHOW CREATE"
                         r"|GET_LOCK|ON DUPLICATE KEY|ON CONFLICT|json_valid|CONNECTION_ID\(", re.I)
CONNECTION_MODULES = {"dialects.py", "db.py", "settings.py", "source/mlmd_api.py"}
"""Where backend names may be tested: the capabilities themselves, and turning a URL (or the parts of one a
KFP install keeps) into a connection: a driver for SQLAlchemy, a `ConnectionConfig` for ml-metadata."""


def _lines(exempt: set[str]):
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel not in exempt:
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                yield f"{rel}:{n}: {line.strip()}", line


def test_backend_branches_live_in_dialects_only():
    assert [where for where, line in _lines(CONNECTION_MODULES) if BACKEND_BRANCH.search(line)] == []


def _string_literals(path: Path):
    """(line, text) of every string constant in `path` but docstrings (SQL is written in strings)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_backend_specific_sql_lives_in_dialects_only():
    offenders = [f"{path.relative_to(PACKAGE)}:{n}: {value[:80]}" for path in PACKAGE.rglob("*.py")
                 if path.relative_to(PACKAGE).as_posix() not in {"dialects.py", "db.py"}
                 for n, value in _string_literals(path) if BACKEND_SQL.search(value)]
    assert offenders == []


def test_the_patterns_find_what_they_are_meant_to():
    for line in ('if conn.dialect.name == "postgresql":', "elif backend in ('mysql', 'mariadb'):",
                 'if "sqlite" == name:', 'if url.drivername.startswith("postgres"):',
                 'query={"charset": "utf8mb4"} if _DRIVERS[kind] == "mysql" else {}'):
        assert BACKEND_BRANCH.search(line), line
    assert not BACKEND_BRANCH.search("if d.array_parameters:")
    assert BACKEND_SQL.search("SELECT typeof(x)") and BACKEND_SQL.search("PRAGMA cache_size=1")
    assert not BACKEND_SQL.search("SELECT COUNT(*) FROM tasks")


def test_only_console_prints():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "console.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


WORKERS = {"db", "target.schema", "sample", "sample.fast", "migrate.runner", "migrate.plan", "migrate.admin",
           "migrate.datapass", "migrate.writer", "verify", "source.reader"}
"""Modules that do the work: the CLI and the demo reach them only through `mlmd2kfp.api` (renderers of
reports, errors, settings and the console are theirs to use)."""


@pytest.mark.parametrize("caller", ["cli.py", "demo.py", "window.py"])
def test_the_cli_and_the_demo_run_the_commands_through_the_library_surface(caller):
    imports = _imports(PACKAGE / caller)
    assert "api" in imports
    assert not imports & WORKERS, imports & WORKERS


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("mlmd2kfp")):
                offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []


MAX_LINES, MAX_PARAMETERS = 60, 8
"""Issue #28: parts a reader can hold. The CLI's typer commands take one parameter per option."""


def test_every_function_is_short_and_takes_few_parameters():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            named = [*a.posonlyargs, *a.args, *a.kwonlyargs]
            parameters = len(named) + bool(a.vararg) + bool(a.kwarg) - bool(named and named[0].arg in ("self", "cls"))
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            typer_command = rel == "cli.py" and any(
                isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
                for d in node.decorator_list)
            if lines > MAX_LINES or (parameters > MAX_PARAMETERS and not typer_command):
                offenders.append(f"{rel}:{node.lineno} {node.name}: {lines} lines, {parameters} parameters")
    assert offenders == []
