"""The notebooks' structure: paired twins in sync, checked outputs, objectives, exercises.

nbval executes them (pytest's --nbval, set in pyproject.toml); these tests check what execution
alone cannot: that the .py twin is the notebook, and that every notebook is a lesson.
"""
import json
import re
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# the capstone projects' starter notebooks: not lessons, but paired, executed and stored like them
STARTERS = sorted(NOTEBOOKS[0].parent.glob("capstone_part*_starter.ipynb"))
EVERY = NOTEBOOKS + STARTERS


def test_the_series_is_there_numbered_without_gaps_and_in_the_learning_path():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(len(NOTEBOOKS))) and len(NOTEBOOKS) >= 10
    guide = (NOTEBOOKS[0].parent / "README.md").read_text()
    readme = (NOTEBOOKS[0].parent.parent / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"]({path.name})" in guide, f"{path.name} is missing from the learning path of notebooks/README.md"
        assert f"](notebooks/{path.name})" in readme, f"{path.name} is missing from README.md's course table"


# The header keys the course sets (jupytext.toml and the notebooks' metadata). jupytext also writes
# its own version and format stamps there; they change with every jupytext release and say nothing
# about whether the twin is the notebook, so they are not compared.
COURSE_HEADER_KEYS = ("formats", "cell_metadata_filter")


def twin_content(notebook) -> tuple:
    """What a paired twin must share with its notebook: each cell's type and source, and the
    jupytext settings the course chose. Never a tool's version stamp."""
    settings = notebook.metadata.get("jupytext", {})
    return ([(cell.cell_type, cell.source) for cell in notebook.cells],
            {key: settings.get(key) for key in COURSE_HEADER_KEYS})


def twins_agree(ipynb_path: Path, py_text: str) -> bool:
    return twin_content(jupytext.read(ipynb_path)) == twin_content(jupytext.reads(py_text, fmt="py:percent"))


@pytest.mark.parametrize("path", EVERY, ids=lambda p: p.stem)
def test_py_twin_is_in_sync(path):
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin.name} missing: run jupytext --sync {path.name}"
    assert twins_agree(path, twin.read_text()), f"{path.name} and {twin.name} differ: run jupytext --sync"


def test_the_twin_check_ignores_tool_stamps_and_sees_every_cell():
    path = NOTEBOOKS[5]
    text = path.with_suffix(".py").read_text()
    # a twin written by another jupytext release: other version and format stamps
    restamped = re.sub(r"jupytext_version: .*", "jupytext_version: 9.99.0", text)
    restamped = re.sub(r"format_version: .*", "format_version: '9.9'", restamped)
    assert restamped != text and twins_agree(path, restamped)
    # ...but a changed line of code, a changed sentence or a changed course setting is a difference
    assert 'device = "cpu"' in text and not twins_agree(path, text.replace('device = "cpu"', 'device = "cuda"', 1))
    assert not twins_agree(path, text.replace("Learning objectives", "Learning goals", 1))
    assert not twins_agree(path, text.replace("cell_metadata_filter: -all", "cell_metadata_filter: all", 1))


@pytest.mark.parametrize("path", EVERY, ids=lambda p: p.stem)
def test_notebook_is_executed_with_checked_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] is not None for c in code), "commit the notebook executed"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), "re-run the notebook top to bottom (restart and run all)"
    checked = [c for c in code if c["outputs"] and "NBVAL_IGNORE_OUTPUT" not in "".join(c["source"])
               and any("text/plain" in o.get("data", {}) or o.get("output_type") == "stream" for o in c["outputs"])]
    assert len(checked) >= (3 if path in NOTEBOOKS else 1), "cells whose text output nbval compares"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_a_lesson(path):
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells)
    first = "".join(cells[0]["source"]).lower()
    assert "learning objectives" in first and "prerequisites" in first
    assert "key takeaways" in text.lower()
    begins, ends = text.count("### BEGIN SOLUTION"), text.count("### END SOLUTION")
    assert begins == ends and 2 <= begins, "2-4 exercises with reference solutions"
    assert "import vaelib" in text or "from vaelib" in text


# A path of the machine that ran a notebook: /home/..., /tmp/..., C:\Users\... (the learner's
# machine is another one, and the stored outputs are what every reader sees).
MACHINE_PATH = re.compile(r"(?<![\w.~])(?:/(?:work|tmp|home|root|usr|opt|var|mnt|srv|Users|private)/|[A-Z]:\\)\S*")


def stored_texts(cell) -> list[str]:
    """Every text a code cell's stored outputs show: streams, plain text, HTML, tracebacks."""
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            texts.append("".join(output["text"]))
        texts += ["".join(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
        texts += output.get("traceback", [])
    return texts


@pytest.mark.parametrize("path", EVERY, ids=lambda p: p.stem)
def test_stored_outputs_show_no_path_of_the_machine_that_ran_them(path):
    cells = json.loads(path.read_text())["cells"]
    found = [(i, m) for i, cell in enumerate(cells) for text in stored_texts(cell) for m in MACHINE_PATH.findall(text)]
    assert not found, f"cell {found[0][0]} shows {found[0][1]!r}: print paths relative to a folder, or not at all"


def test_the_path_check_sees_the_paths_it_is_for():
    for text in ["/work/main/vaelib/training.py:494: UserWarning", "not found under /home/ana/data/KMNIST/raw",
                 "C:\\Users\\ana\\data", "/tmp/ipykernel_123/456.py:3"]:
        assert MACHINE_PATH.search(text), text
    for text in ["runs/demo/checkpoint_best.pth", "1/2 of the images", "https://arxiv.org/abs/1312.6114", "~/data"]:
        assert not MACHINE_PATH.search(text), text


# vaelib 0.1's names (CHANGELOG.md, "Deprecated"): the notebooks teach the current ones
OLD_NAMES = [r"\.elbo\(", r"\.elbo\b(?!_)", r"vaelib\.elbo\b", r"\bsave_checkpoint\b", r"bounds\.ELBO\b",
             r"\bvaelib\.ELBO\b", r"bounds\.posterior\b", r"\.config\[", r"\.config\.get\(",
             r"\b(train|test|data|dynamic|static|static_test)\.sample\("]


@pytest.mark.parametrize("notebook", EVERY, ids=lambda p: p.stem)
def test_notebooks_use_the_current_names_only(notebook):
    text = notebook.with_suffix(".py").read_text(encoding="utf-8")
    found = [(pattern, line) for line in text.splitlines() for pattern in OLD_NAMES if re.search(pattern, line)]
    assert not found, found


def test_every_twin_has_the_same_header():
    """The same jupytext settings and kernel in every notebook (the tool's version stamp aside)."""
    def header(path):
        text = path.with_suffix(".py").read_text(encoding="utf-8")
        return re.sub(r"\n#\s+jupytext_version:.*", "", text[:text.index("\n# ---\n")])
    headers = {path.stem: header(path) for path in EVERY}
    assert len(set(headers.values())) == 1, headers


def test_each_capstone_has_a_starter_in_the_guide_that_runs_its_check():
    guide = (NOTEBOOKS[0].parent / "README.md").read_text()
    assert [p.name for p in STARTERS] == ["capstone_part1_starter.ipynb", "capstone_part2_starter.ipynb"]
    for path, check in zip(STARTERS, ("check_capstone_report", "check_capstone_gain")):
        assert f"]({path.name})" in guide, f"{path.name} is missing from notebooks/README.md"
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells)
        assert "TODO" in text and f"{check}(" in text
        printed = "".join(t for c in cells if c["cell_type"] == "code" for t in stored_texts(c))
        assert f"✓ {check}:" in printed, f"{path.name}: its stored outputs should show {check} passing"
        assert "learner mode" in printed, f"{path.name}: store the learner-mode outputs"
