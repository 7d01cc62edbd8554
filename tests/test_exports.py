"""The public API: every exported name resolves, and importing the domain stays pure."""

from __future__ import annotations

import subprocess
import sys

import thengine


def test_every_public_name_resolves():
    for name in thengine.__all__:
        assert getattr(thengine, name) is not None, name


def test_importing_thengine_and_its_domain_does_not_load_the_runtime():
    code = ("import sys, thengine, thengine.domain.rules, thengine.domain.views; "
            "print(sorted(m for m in ('trio', 'apsw', 'click', 'websockets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_engine_loads_on_first_use():
    assert thengine.open_engine.__module__ == "thengine.runtime.engine"
