"""The domain is pure: no trio, apsw, click, sockets, clock, randomness or files.

Checked twice: importing it in a fresh interpreter loads none of the runtime's
libraries, and the domain's own source neither imports nor calls the clock, randomness
or I/O (stdlib modules may import `time` or `random` for themselves, so the second
check reads the source). The fresh interpreter loads ``thengine`` as a bare namespace
package: ``thengine/__init__.py`` exports `open_engine`, so a plain ``import
thengine.domain`` runs the runtime's imports before the domain's.
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import pytest

import thengine.domain

DOMAIN = pathlib.Path(thengine.domain.__file__).parent
MODULES = sorted(p.stem for p in DOMAIN.glob("*.py") if p.stem != "__init__")
#: Libraries of the runtime, storage and interfaces; the domain must load none of them.
RUNTIME_LIBRARIES = ("trio", "apsw", "click", "websockets", "sqlite3", "socket", "asyncio",
                     "prometheus_client", "thengine.runtime",
                     "thengine.storage", "thengine.server", "thengine.cli")
#: Modules the domain's source may not import: clock, randomness, I/O, concurrency.
FORBIDDEN_IMPORTS = {"time", "random", "secrets", "uuid", "os", "io", "socket", "sqlite3",
                     "asyncio", "threading", "subprocess", "pathlib", "shutil", "logging",
                     "trio", "apsw", "click", "websockets", "tempfile", "select", "signal"}
#: Calls that read the clock, draw randomness or do I/O.
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter",
                   "random", "randint", "urandom", "open", "print", "input", "sleep",
                   "fromtimestamp", "getenv"}


def loaded_after_import(code: str) -> list[str]:
    """The modules loaded in a fresh interpreter after running `code`."""
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=DOMAIN.parent.parent)
    return json.loads(out.stdout)


def runtime_libraries(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == lib or m.startswith(lib + ".") for lib in RUNTIME_LIBRARIES)]


def test_the_domain_modules_are_all_checked():
    assert set(MODULES) >= {"commands", "definition", "events", "rules", "state", "views"}


def bare_package_import(module: str) -> str:
    """Code importing `module` with ``thengine`` as a bare namespace: only the domain's own
    imports run, whatever the package's ``__init__`` exports (it exports the engine too)."""
    return (
        "import sys, types\n"
        "package = types.ModuleType('thengine')\n"
        f"package.__path__ = [{str(DOMAIN.parent)!r}]\n"
        "sys.modules['thengine'] = package\n"
        f"import {module}\n"
    )


def test_importing_thengine_domain_loads_no_runtime_library():
    loaded = loaded_after_import(bare_package_import("thengine.domain"))
    assert "thengine.domain" in loaded
    assert runtime_libraries(loaded) == []


@pytest.mark.parametrize("module", MODULES)
def test_the_domain_module_loads_no_runtime_library(module):
    loaded = loaded_after_import(bare_package_import(f"thengine.domain.{module}"))
    assert f"thengine.domain.{module}" in loaded
    assert runtime_libraries(loaded) == []


def test_the_bare_import_check_would_catch_a_runtime_import():
    loaded = loaded_after_import(bare_package_import("thengine.domain") + "import trio\n")
    assert "trio" in runtime_libraries(loaded)


def source_tree(module: str) -> ast.Module:
    return ast.parse((DOMAIN / f"{module}.py").read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", ["__init__", *MODULES])
def test_the_domain_source_imports_no_clock_randomness_or_io(module):
    imported = set()
    for node in ast.walk(source_tree(module)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
            if node.module == "datetime":
                assert not {a.name for a in node.names} - {"datetime", "timedelta", "timezone"}
    assert imported & FORBIDDEN_IMPORTS == set()
    assert imported <= {"__future__", "attrs", "thengine", "typing", "collections", "math", "re",
                        "json", "unicodedata", "reprlib", "tomllib", "datetime", "bisect",
                        "dataclasses", "enum", "functools", "itertools", "operator",
                        "base64", "hashlib", "hmac"}  # (codes: pure functions of a key)


@pytest.mark.parametrize("module", ["__init__", *MODULES])
def test_the_domain_source_calls_no_clock_randomness_or_io(module):
    calls = []
    for node in ast.walk(source_tree(module)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in FORBIDDEN_CALLS:
                calls.append(f"line {node.lineno}: {ast.unparse(func)}()")
    assert calls == []


def test_the_source_check_would_catch_a_clock_read():
    tree = ast.parse("import time\nfrom datetime import datetime\nx = datetime.now()\ny = time.time()")
    names = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert set(names) <= FORBIDDEN_CALLS and names
