"""The documentation's examples run: every ```python block of the docs, and the README's session.

Each document runs in a fresh working directory (so relative paths such as data/msm.duckdb land
in tmp_path); its blocks run in order in one namespace, as a reader would paste them. A block
preceded by an HTML comment ``<!-- not-run: reason -->`` is skipped, and the reason is visible.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?P<skip><!-- not-run:[^>]*-->\s*)?```(?P<lang>python|bash)\n(?P<code>.*?)```", re.DOTALL)
DOCS = sorted(p for p in (ROOT / "docs").rglob("*.md"))
MSM = shutil.which("msm", path=str(Path(sys.executable).parent)) or "msm"


def _blocks(path: Path, lang: str) -> list[str]:
    return [m["code"] for m in BLOCK.finditer(path.read_text()) if m["lang"] == lang and not m["skip"]]


@pytest.mark.parametrize("doc", [p for p in DOCS if _blocks(p, "python")], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MSM_DB", raising=False)
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for i, code in enumerate(_blocks(doc, "python"), start=1):
        try:
            exec(compile(code, f"{doc.name}:block{i}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{doc.relative_to(ROOT)} python block {i} failed: {type(exc).__name__}: {exc}")


def test_readme_first_session_runs(tmp_path: Path) -> None:
    """The README's shell session, then its Python snippet, against a fresh database."""
    readme = ROOT / "README.md"
    (script,) = [b for b in _blocks(readme, "bash") if "msm --db" in b]
    script = script.replace(".venv/bin/msm", MSM)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MSM_DB", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert '"unique_identifier": "BTC"' in done.stdout and "CRYPTO-EW" in done.stdout
    (python,) = _blocks(readme, "python")
    namespace: dict[str, object] = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(python, "README.md:python", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert namespace["snap"].positions.height == 2  # type: ignore[attr-defined]
