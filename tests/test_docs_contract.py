"""The documentation keeps saying what ADR 0027 requires, and stays true to the code.

- every page and skill the ADR (and issue 9) requires exists and says what it must;
- no doc, skill, example, notebook, page text or docstring presents ``asset_identifier`` as a
  target-position field, except where it explains the migration from the old contract or the
  error that refuses it;
- every relative link in README.md, docs/ and .agents/ resolves (files and ``#anchors``);
- docs/cli.md documents every ``msm`` command with every option (walked from the real parser),
  and every ``msm`` line in a shell example parses;
- every ``tests/...py::name`` a page cites exists;
- the skills' code blocks run against a fresh database; the browser tutorial names only labels the
  app shows, and its form steps work in the app (AppTest).

tests/test_docs.py runs the ```python blocks of docs/*.md and the README session; this module
does not repeat them.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import tokenize
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from test_docs import BLOCK

import msm
import msm_portfolios
from msm_cli.main import build_parser
from msm_cli.main import main as msm_main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKILLS = ROOT / ".agents" / "skills"
ACCOUNT_SKILL = SKILLS / "ms_markets" / "accounts" / "account_workflow" / "SKILL.md"
PORTFOLIO_SKILL = SKILLS / "ms_markets" / "portfolios" / "portfolio_workflow" / "SKILL.md"
ADR_PAGE = DOCS / "adr" / "0027-account-target-position-portfolio-exposure.md"
ACCOUNTS_PAGE = DOCS / "knowledge" / "msm" / "accounts" / "index.md"
PORTFOLIOS_PAGE = DOCS / "knowledge" / "msm_portfolios" / "portfolios" / "index.md"
BROWSER_TUTORIAL = sorted(p for p in (DOCS / "tutorial").glob("0*-browser-*.md"))
MARKDOWN = sorted([ROOT / "README.md", *DOCS.rglob("*.md"), *ROOT.joinpath(".agents").rglob("*.md")])
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose(text: str) -> str:
    """Markdown without its fenced code blocks and inline code spans (where links are not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _fences(text: str, lang: str) -> list[str]:
    return [m["code"] for m in BLOCK.finditer(text) if m["lang"] == lang and not m["skip"]]


# -- 1. the required pages exist and say what the ADR requires ----------------------------------------
REQUIRED = [
    "docs/index.md",
    "docs/adr/0027-account-target-position-portfolio-exposure.md",
    "docs/knowledge/msm/accounts/index.md",
    "docs/knowledge/msm_portfolios/portfolios/index.md",
    "docs/tutorial/01-first-target-set.md",
    "docs/notebook.md",
    "docs/app.md",
    "docs/cli.md",
    ".agents/skills/ms_markets/accounts/account_workflow/SKILL.md",
    ".agents/skills/ms_markets/portfolios/portfolio_workflow/SKILL.md",
]


@pytest.mark.parametrize("path", REQUIRED)
def test_required_page_exists(path: str) -> None:
    assert (ROOT / path).is_file(), f"{path} is required (ADR 0027 / issue 9)"


def test_skills_live_only_where_the_adr_names_them() -> None:
    skills = sorted(_rel(p) for p in SKILLS.rglob("SKILL.md"))
    assert skills == [_rel(ACCOUNT_SKILL), _rel(PORTFOLIO_SKILL)], skills
    for path in (ROOT / p for p in skills):
        head = re.match(
            r"---\nname: (?P<name>\S+)\ndescription: (?P<description>.+?)\n---\n", path.read_text(), re.DOTALL
        )
        assert head, f"{_rel(path)} needs front matter with name and description"


def _diagrams(text: str) -> list[str]:
    """Fenced blocks that are not code: the ASCII diagrams."""
    return [m.group(0) for m in FENCE.finditer(text) if not re.match(r"```(python|bash|text)\b", m.group(0))]


# (page, phrases every one of which must be in it; a phrase is a regex, matched case-insensitively on
# the text with its line breaks and emphasis folded into single spaces)
SAYS = {
    "accounts page": (
        ACCOUNTS_PAGE,
        [
            r"account identity",
            r"account groups",
            r"allocation models",
            r"target allocations",
            r"position sets",
            r"portfolio-aware target exposure storage",
            r"exactly one of these two shapes",
            r"there is no asset_identifier",
            r"never expanded when stored",
            r"expansion into asset exposure happens only on request",
        ],
    ),
    "portfolios page": (
        PORTFOLIOS_PAGE,
        [
            r"portfolio target row carries the portfolio's uid",
            r"portfolio_uid",
            r"target_uid",
            r"it is mandate exposure",
            r"not a custody holding",
            r"not a portfolio index",
            r"never turned into an asset",
            r"never expanded when stored",
            r"only when a workflow asks",
        ],
    ),
    "ADR page": (
        ADR_PAGE,
        [
            r"status: accepted and implemented",
            r"metatable",
            r"datanode storage",
            r"alembic",
            r"numbered sql migrations",
            r"msm_portfolios",
            r"mandate exposure",
            r"not a custody holding",
            r"expanded into asset exposure only when a workflow asks",
            r"where each success criterion is checked",
        ],
    ),
    "docs index": (DOCS / "index.md", [r"make run", r"make test", r"who it is for", r"map of the documentation"]),
    "scripting tutorial": (
        DOCS / "tutorial" / "01-first-target-set.md",
        [r"\"asset_uid\": btc\[\"uid\"\]", r"\"portfolio_uid\": sleeve\[\"uid\"\]"],
    ),
    "browser tutorial, builder": (
        DOCS / "tutorial" / "05-browser-build-a-target-set.md",
        [
            r"one asset target and one portfolio target",
            r"btc — bitcoin · asset",
            r"crypto-majors-ew — crypto majors equal weight · portfolio",
            r"save snapshot",
            r"tests/test_browser\.py",
        ],
    ),
}
RULES = [  # what each skill must state (ADR 0027 and issue 9)
    r"exactly one concrete target",
    r"target_uid.{0,20}equals",
    r"exactly one finite exposure",
    r"utc",
    r"never asset_identifier",
    r"never a portfolio asset|not a portfolio asset",
    r"not a portfolio index|never a portfolio index",
    r"expand only on request",
    r"msm_portfolios",
    r"how to check your work",
    r"tests/test_",
    r"target set builder",
    r"look-through",
    r"msm targets",
]


def _folded(path: Path) -> str:
    text = path.read_text().replace("**", "").replace("`", "")
    return re.sub(r"\s+", " ", text).lower()


@pytest.mark.parametrize("name", list(SAYS))
def test_required_pages_say_what_the_adr_requires(name: str) -> None:
    path, phrases = SAYS[name]
    text = _folded(path)
    missing = [p for p in phrases if not re.search(p, text)]
    assert not missing, f"{_rel(path)} no longer says: {missing}"


@pytest.mark.parametrize("page", [ACCOUNTS_PAGE, PORTFOLIOS_PAGE], ids=["accounts", "portfolios"])
def test_target_position_diagrams_show_the_portfolio_aware_columns(page: Path) -> None:
    diagrams = [d for d in _diagrams(page.read_text()) if "target_positions" in d]
    assert diagrams, f"{_rel(page)} has no diagram of target_positions"
    for diagram in diagrams:
        for column in ("target_type", "target_uid", "asset_uid", "portfolio_uid"):
            assert column in diagram, f"a target_positions diagram of {_rel(page)} lacks {column}"
        assert "asset_identifier" not in diagram


@pytest.mark.parametrize("skill", [ACCOUNT_SKILL, PORTFOLIO_SKILL], ids=["account", "portfolio"])
def test_skills_state_the_rules_and_the_workflow(skill: Path) -> None:
    text = _folded(skill)
    missing = [r for r in RULES if not re.search(r, text)]
    assert not missing, f"{_rel(skill)} no longer states: {missing}"


def test_docs_index_maps_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if p != DOCS / "index.md"]
    unmapped = [p for p in pages if p not in index]
    assert not unmapped, f"docs/index.md does not name: {unmapped}"
    for skill in (ACCOUNT_SKILL, PORTFOLIO_SKILL):
        assert _rel(skill) in index


def test_browser_tutorial_covers_the_whole_path() -> None:
    text = " ".join(_folded(p) for p in BROWSER_TUTORIAL)
    for step in (
        "make run",
        "add asset",
        "add portfolio",
        "store composition",
        "add account",
        "add allocation model",
        "add target allocation",
        "save snapshot",
        "replace it",
        "look-through",
        "export",
        "download as zip",
    ):
        assert step in text, f"the browser tutorial no longer covers {step!r}"
    assert (DOCS / "tutorial" / "08-spark.md").is_file()


# -- 2. asset_identifier only where the migration or the refusal is explained ---------------------------
#: words that mark a mention as explaining the old contract, its migration, or the refusal of it
CONTEXT = re.compile(
    r"refus|reject|never|no `?asset_identifier|not `{0,2}asset_identifier|pre-adr|legacy|old contract|the old "
    r"|migrat|convert"
    r"|no longer|before the adr|msm 0001|0001_|gone|removed",
    re.IGNORECASE,
)
SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[A-Z`(*])")


def _md_units(text: str) -> Iterator[str]:
    """Code blocks whole; table rows one by one; other paragraphs sentence by sentence."""
    yield from FENCE.findall(text)
    for paragraph in re.split(r"\n\s*\n", FENCE.sub("\n\n", text)):
        for item in re.split(r"\n(?=\s*(?:[-*|]|\d+\.)\s)", paragraph):
            yield from SENTENCE.split(item)


def _python_units(source: str) -> Iterator[str]:
    """String literals (docstrings sentence by sentence) and comments of a Python source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != "asset_identifier":
            yield from SENTENCE.split(node.value)  # the bare name is code (a key compared or refused), not text
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.string


def misuses(units: Iterator[str]) -> list[str]:
    """The units that mention ``asset_identifier`` without saying it is old, migrated or refused."""
    return [u.strip() for u in units if "asset_identifier" in u and not CONTEXT.search(u)]


def _scanned() -> Iterator[tuple[str, list[str]]]:
    for path in MARKDOWN:
        yield _rel(path), misuses(_md_units(path.read_text()))
    packages = ("msm", "msm_portfolios", "msm_cli", "msm_app", "msm_spark", "examples")
    for path in sorted([ROOT / "app.py", *(p for d in packages for p in (ROOT / d).rglob("*.py"))]):
        yield _rel(path), misuses(_python_units(path.read_text()))
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        found: list[str] = []
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            found += misuses(_md_units(source) if cell["cell_type"] == "markdown" else _python_units(source))
        yield _rel(path), found


def test_asset_identifier_is_never_presented_as_a_target_field() -> None:
    scanned = dict(_scanned())
    assert len(scanned) > 40  # docs, skills, code, notebooks were all found
    bad = {path: found for path, found in scanned.items() if found}
    assert not bad, f"`asset_identifier` presented as a target-position field (say it is refused or migrated): {bad}"


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Target rows have `asset_identifier`, `weight_notional_exposure` and `metadata_json`.", True),
        ("| `asset_identifier` | the asset of the row |", True),
        ("Rows name their asset with asset_identifier. Weights are fractions.", True),
        ("A payload carrying `asset_identifier` is refused with a message naming `asset_uid`.", False),
        ("There is no `asset_identifier`: rows name their target by UUID.", False),
        ("`msm 0001` is the pre-ADR schema (keyed by `asset_identifier`).", False),
        ("The migration converts `asset_identifier` to `asset_uid`.", False),
    ],
)
def test_the_asset_identifier_check_tells_a_field_from_an_explanation(text: str, flagged: bool) -> None:
    assert bool(misuses(_md_units(text))) is flagged


# -- 3. links resolve ----------------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: text as rendered, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = _slug(heading.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _screenshots() -> set[str]:
    """The images tests/test_browser.py saves (``make screenshots`` writes them to docs/img)."""
    source = (ROOT / "tests" / "test_browser.py").read_text()
    names = set(re.findall(r"\"([\w-]+)\.png\"", source)) | set(
        re.findall(r"\(\"[\w/-]*\", \"[^\"]+\", \"([\w-]+)\"\)", source)
    )
    assert "builder" in names and "overview" in names, "tests/test_browser.py changed how it names its screenshots"
    return {f"{n}.png" for n in names}


def _broken_links(path: Path) -> list[str]:
    broken = []
    for match in LINK.finditer(_prose(path.read_text())):
        target = match["target"]
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            generated = resolved.parent == DOCS / "img" and resolved.name in _screenshots()
            if not generated:
                broken.append(target)
            continue
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    return broken


@pytest.mark.parametrize("path", MARKDOWN, ids=_rel)
def test_relative_links_resolve(path: Path) -> None:
    assert _broken_links(path) == [], f"{_rel(path)} links to what does not exist"


def test_the_link_check_finds_a_broken_link_and_anchor(tmp_path: Path) -> None:
    page = DOCS / "index.md"
    assert not _broken_links(page)
    assert "cli.md#no-such-heading" not in _anchors(DOCS / "cli.md")
    assert _slug("Import files (`targets save --file`)") == "import-files-targets-save---file"
    assert (
        _slug("3. Expansion: asset-level exposure, only when asked")
        == "3-expansion-asset-level-exposure-only-when-asked"
    )


# -- 4. the CLI reference matches the parser ----------------------------------------------------------------
def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaves(sub, (*path, name))


COMMANDS = dict(_leaves(build_parser()))


def _synopses() -> dict[tuple[str, ...], str]:
    """The usage lines of docs/cli.md's ```text blocks, by command path (continuation lines joined)."""
    found: dict[tuple[str, ...], str] = {}
    for block in re.findall(r"```text\n(.*?)```", (DOCS / "cli.md").read_text(), re.DOTALL):
        current: tuple[str, ...] | None = None
        for line in block.splitlines():
            if line.startswith("msm "):
                words = line.split()[1:]
                path = tuple(w for w in words[:2] if re.fullmatch(r"[a-z][a-z-]*", w))
                current = next((p for p in (path, path[:1]) if p in COMMANDS), None)
                if current:
                    found[current] = found.get(current, "") + " " + line
            elif current and line[:1].isspace() and line.strip().startswith(("[", "--")):
                found[current] += " " + line
            else:
                current = None
    return found


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_cli_reference_documents_every_command_and_option(command: tuple[str, ...]) -> None:
    synopsis = _synopses().get(command)
    assert synopsis, f"docs/cli.md has no usage line `msm {' '.join(command)} ...`"
    parser = COMMANDS[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or "--db" in action.option_strings:
            continue
        if not action.option_strings:
            assert re.search(rf"\b{action.metavar or action.dest.upper()}\b", synopsis), (
                command,
                action.dest,
                synopsis,
            )
            continue
        for option in action.option_strings:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", synopsis), (
                f"`msm {' '.join(command)}`: {option} is not documented"
            )
        for choice in action.choices or ():
            assert re.search(rf"(?<![\w-]){re.escape(str(choice))}(?![\w-])", synopsis), (
                f"`msm {' '.join(command)} {action.option_strings[0]}`: choice {choice} is not documented"
            )
    known = {o for a in parser._actions for o in a.option_strings}
    stale = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", synopsis)) - known
    assert not stale, f"docs/cli.md documents options `msm {' '.join(command)}` does not have: {sorted(stale)}"


def test_cli_reference_documents_the_global_database_option() -> None:
    text = (DOCS / "cli.md").read_text()
    assert "msm [--db PATH] COMMAND" in text and "`MSM_DB`" in text


def _shell_commands(text: str) -> Iterator[str]:
    """``msm ...`` command lines of the ```bash blocks (heredoc bodies skipped, continuations joined)."""
    for block in _fences(text, "bash"):
        heredoc = None
        for line in block.replace("\\\n", " ").splitlines():
            if heredoc:
                heredoc = None if line.strip() == heredoc else heredoc
                continue
            end = re.search(r"<<-?\s*'?(\w+)'?", line)
            heredoc = end.group(1) if end else None
            stripped = re.sub(r"^\s*(\.venv/bin/)?", "", line)
            if stripped.startswith("msm ") and "# exit 2" not in stripped:
                yield stripped


def _parse(command: str) -> str | None:
    words = shlex.split(command, comments=True)
    for i, word in enumerate(words):
        if word in {">", ">>", "|", "&&", "||", ";", "2>"} or word.startswith((">", "2>")):
            words = words[:i]
            break
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(words[1:])
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "exit"
    return None


@pytest.mark.parametrize("path", [p for p in MARKDOWN if list(_shell_commands(p.read_text()))], ids=_rel)
def test_every_msm_line_of_a_shell_example_parses(path: Path) -> None:
    bad = {c: e for c in _shell_commands(path.read_text()) if (e := _parse(c))}
    assert not bad, f"{_rel(path)}: command lines the parser refuses: {bad}"


# -- 5. cited tests exist ----------------------------------------------------------------------------------
def _test_names(path: Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_cited_tests_exist() -> None:
    cited = {
        (m.group(1), m.group(2)) for p in MARKDOWN for m in re.finditer(r"tests/(test_\w+\.py)::(\w+)", p.read_text())
    }
    assert len(cited) >= 15  # the ADR page's table alone cites more
    missing = sorted(
        f"tests/{f}::{n}"
        for f, n in cited
        if not (ROOT / "tests" / f).is_file() or n not in _test_names(ROOT / "tests" / f)
    )
    assert not missing, f"pages cite tests that do not exist: {missing}"


# -- 6. the skills' examples run ------------------------------------------------------------------------------
@pytest.mark.parametrize("skill", [ACCOUNT_SKILL, PORTFOLIO_SKILL], ids=["account", "portfolio"])
def test_skill_code_blocks_run(skill: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of the skill, in order, in one namespace, in an empty folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MSM_DB", raising=False)
    blocks = _fences(skill.read_text(), "python")
    assert blocks, f"{_rel(skill)} shows no Python"
    namespace: dict[str, object] = {"__name__": "__skill_example__"}
    for i, code in enumerate(blocks, start=1):
        try:
            exec(compile(code, f"{skill.parent.name}/SKILL.md:block{i}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{_rel(skill)} python block {i} failed: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("skill", [ACCOUNT_SKILL, PORTFOLIO_SKILL], ids=["account", "portfolio"])
def test_skill_shell_blocks_run(skill: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line of the skill's ```bash blocks, in order, in an empty folder: ``export`` sets the
    environment, ``msm`` lines run in-process (exit 0, or 1 where the line says ``# exit 1``), any
    other line runs in bash."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MSM_DB", raising=False)
    lines = [line for block in _fences(skill.read_text(), "bash") for line in block.splitlines() if line.strip()]
    assert lines, f"{_rel(skill)} shows no shell session"
    for line in lines:
        words = shlex.split(line, comments=True)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            monkeypatch.setenv(name, value)
        elif words[0] == "msm":
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = msm_main(words[1:])
            assert code == (1 if line.rstrip().endswith("# exit 1") else 0), f"{line}\n{err.getvalue()}"
            assert "Traceback" not in err.getvalue()
        else:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", line],
                cwd=tmp_path,
                env=os.environ.copy(),
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, f"{line}\n{done.stderr}"


# -- 7. the browser tutorial is the app ------------------------------------------------------------------------
def _ui_texts() -> tuple[set[str], list[re.Pattern[str]]]:
    """Every string literal of the app (router, pages, helpers), and each f-string as a pattern."""
    literals: set[str] = set()
    templates: list[re.Pattern[str]] = []
    # the Reference data page's form labels and entity titles come from the entity catalog
    for path in [ROOT / "app.py", *sorted((ROOT / "msm_app").rglob("*.py")), ROOT / "msm" / "catalog.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
            elif isinstance(node, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in node.values]
                if any(len(v.value.strip()) >= 3 for v in node.values if isinstance(v, ast.Constant)):
                    templates.append(re.compile("".join(parts)))
    return literals, templates


def test_browser_tutorial_names_only_labels_the_app_shows() -> None:
    """Every **bold** text of the browser tutorial is a label, option or title of the app."""
    literals, templates = _ui_texts()
    text = "\n".join(_prose(p.read_text()) for p in BROWSER_TUTORIAL)
    labels = {re.sub(r"\s+", " ", m) for m in re.findall(r"\*\*(.+?)\*\*", text, re.DOTALL)}
    assert len(labels) > 50
    unknown = sorted(
        label
        for label in labels
        if not any(label in literal for literal in literals) and not any(t.fullmatch(label) for t in templates)
    )
    assert not unknown, f"the browser tutorial names labels the app does not show: {unknown}"


def test_browser_tutorial_forms_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tutorials 3 to 6 by AppTest on the demo database: the reference-data forms (an asset, a
    portfolio and its composition, an account group, an account, a model, a target allocation), then
    a set with one asset and one portfolio target for that account, saved and looked through.
    (The builder's typing and the overwrite dialog are tests/test_browser.py's steps.)"""
    from app_harness import assert_clean, build_demo, label, open_page

    db = build_demo(tmp_path / "msm.duckdb")
    store = msm.Store(db)
    at = open_page(monkeypatch, db, "reference")

    def submit(button: str, **fields: object) -> None:
        for key, value in fields.items():
            widget = next(
                w
                for kind in ("text_input", "text_area", "selectbox", "checkbox")
                for w in getattr(at, kind)
                if w.key == key
            )
            widget.set_value(value)
        next(b for b in at.button if b.label == button).click().run()
        assert_clean(at)
        assert any(m.value.startswith("Added ") for m in at.success), button
        at.run()  # the page's lists show the new row from the next rerun on (the tutorial says so)

    # Tutorial 3: an asset, a portfolio, its composition
    submit(
        "Add asset",
        ref_add_assets_unique_identifier="ADA",
        ref_add_assets_name="Cardano",
        ref_add_assets_ticker="ADA",
        ref_add_assets_asset_type="crypto",
        ref_add_assets_metadata_json='{"sector": "L1"}',
    )
    submit(
        "Add portfolio",
        ref_add_portfolios_unique_identifier="L1-EW",
        ref_add_portfolios_portfolio_name="Layer 1 Equal Weight",
    )
    at.selectbox(key="ref_comp_portfolio").set_value("L1-EW").run()
    at.date_input(key="ref_comp_date").set_value(date(2026, 6, 1))
    at.time_input(key="ref_comp_time").set_value(time(0, 0))
    at.session_state["ref_comp_grid"] = {
        "edited_rows": {0: {"asset": "ETH", "weight": 0.5}},
        "added_rows": [{"asset": "SOL", "weight": 0.25}, {"asset": "ADA", "weight": 0.25}],
        "deleted_rows": [],
    }
    at.run()
    at.button(key="ref_comp_save").click().run()
    assert_clean(at)
    composition = msm_portfolios.read_composition(store, "L1-EW", as_of="2026-06-01T00:00:00Z")
    stored = dict(zip(composition["asset"], composition["weight"], strict=True))
    assert stored == {"ETH": 0.5, "SOL": 0.25, "ADA": 0.25}
    assert "L1-EW" not in msm.list_assets(store)["unique_identifier"].to_list()

    # Tutorial 4: the account and its mandate
    submit("Add account group", ref_add_account_groups_group_name="Tutorial Accounts")
    submit(
        "Add account",
        ref_add_accounts_unique_identifier="gamma",
        ref_add_accounts_account_name="Account Gamma",
        ref_add_accounts_group="Tutorial Accounts",
    )
    submit(
        "Add allocation model",
        ref_add_allocation_models_allocation_model_name="Tutorial Balanced",
        ref_add_allocation_models_allocation_model_description="60% BTC direct, 40% a Layer 1 sleeve",
    )
    submit(
        "Add target allocation",
        ref_add_allocations_unique_identifier="gamma-target",
        ref_add_allocations_account="gamma",
        ref_add_allocations_model="Tutorial Balanced",
    )
    assert msm.list_allocations(store, account="gamma")["unique_identifier"].to_list() == ["gamma-target"]

    # Tutorial 5 ("your turn"): BTC 0.6 and L1-EW 0.4 for gamma, saved
    when = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)
    at = open_page(monkeypatch, db, "builder")
    at.selectbox(key="builder_account").set_value("gamma")
    at.date_input(key="builder_date").set_value(when.date())
    at.time_input(key="builder_time").set_value(when.time())
    at.run()
    assert at.selectbox(key="builder_allocation").value == "gamma-target"
    rows = [
        {"target": label(store, "BTC", "asset"), "weight_notional_exposure": 0.6},
        {"target": label(store, "L1-EW", "portfolio"), "weight_notional_exposure": 0.4},
    ]
    assert rows[1]["target"] == "L1-EW — Layer 1 Equal Weight · portfolio"
    at.session_state[f"builder_grid_{at.session_state['builder_version']}"] = {
        "edited_rows": dict(enumerate(rows)),
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert_clean(at)
    at.button(key="builder_save").click().run()
    assert_clean(at)
    saved = msm.read_snapshot(store, "gamma", at=when)
    assert saved.positions["target_type"].to_list() == ["asset", "portfolio"] and saved.weight_sum == pytest.approx(1.0)

    # Tutorial 6: its look-through (weights now: the 2026-06-01 composition)
    at = open_page(monkeypatch, db, "lookthrough")
    at.selectbox(key="lookthrough_account").set_value("gamma").run()
    assert_clean(at)
    net = next(d.value for d in at.dataframe if "via_portfolio" in d.value.columns)
    assert dict(zip(net["asset"], net["weight_notional_exposure"], strict=False)) == pytest.approx(
        {"BTC": 0.6, "ETH": 0.2, "SOL": 0.1, "ADA": 0.1}
    )
