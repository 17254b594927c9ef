"""nbgrader for real: our step writes nbgrader-ready source notebooks, nbgrader's own commands do the rest.

The unit tests run everywhere; the two that run nbgrader are skipped when it is not installed
(``pip install -e '.[grading]'``; CI installs it).
"""
import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vaelib.cli import main
from vaelib.course.coursework import (CourseworkError, make_nbgrader_course, make_nbgrader_notebook,
                               make_student_versions)

from .conftest import needs_mnist

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
needs_nbgrader = pytest.mark.skipif(importlib.util.find_spec("nbgrader") is None,
                                    reason="nbgrader is not installed (pip install -e '.[grading]'); CI installs it")


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _nbg(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def _without_hidden_tests(text):
    """What nbgrader's ClearHiddenTests leaves of a cell: the lines outside the hidden regions."""
    kept, hidden = [], False
    for line in text.split("\n"):
        if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
            hidden = "BEGIN" in line
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


def _nb(*cells):
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(source, cell_id="c1"):
    return {"cell_type": "code", "execution_count": 3, "id": cell_id, "metadata": {}, "source": source,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "✓ check_gaussian_kl: correct\n"}]}


EXERCISE = ("from vaelib.course.checks import check_gaussian_kl, check_kl_diag\n\n\n"
            "def kl(mu, logvar):\n    ### BEGIN SOLUTION\n    return 0.5 * mu\n    ### END SOLUTION\n\n\n"
            "check_gaussian_kl(kl)\n\ncheck_kl_diag(kl)")


def test_an_exercise_cell_becomes_an_answer_and_one_locked_test_per_check():
    written = {"cell_type": "markdown", "id": "m1", "metadata": {},
               "source": "**Why?**\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"}
    plain = _code("x = 1", "c0")
    source, counts = make_nbgrader_notebook(_nb(plain, _code(EXERCISE), written))
    assert counts == {"answers": 1, "tests": 2, "written": 1, "points": 3}
    kept, answer, test1, test2, text = source["cells"]
    assert kept is plain  # untouched cells are kept as they were, without nbgrader metadata
    assert _nbg(answer) == {"grade": False, "grade_id": "answer-1", "locked": False, "schema_version": 3,
                            "solution": True, "task": False}
    assert _src(answer).endswith("### END SOLUTION") and answer["outputs"] == []
    for test, check in ((test1, "check_gaussian_kl"), (test2, "check_kl_diag")):
        assert _nbg(test) == {"grade": True, "grade_id": check, "locked": True, "points": 1, "schema_version": 3,
                              "solution": False, "task": False}
        assert test["id"] == f"c1-{check}" and test["outputs"] == []
        # the learner sees only the call; nbgrader grades with the hidden part, which makes the check strict
        assert _without_hidden_tests(_src(test)) == f"{check}(kl)"
        assert 'os.environ["VAELIB_CHECKS_STRICT"] = "1"' in _src(test)
        assert f"from vaelib.course.checks import {check}" in _src(test)
        assert _src(test).index("VAELIB_CHECKS_STRICT") < _src(test).index(f"{check}(kl)")
    assert _nbg(text) == {"grade": True, "grade_id": "written-1", "locked": False, "points": 1,
                          "schema_version": 3, "solution": True, "task": False}
    assert _src(text) == written["source"]


@pytest.mark.parametrize("source, message", [
    ("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\ncheck_gaussian_kl(f)\nprint(1)",
     "before the end of the cell"),
    ("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\ncheck_gaussian_kl(f)\nx = 1\n"
     "check_kl_diag(f)", "before the end of the cell"),
    ("### BEGIN SOLUTION\nf = 1\n### END SOLUTION\ncheck_gaussian_kl(f)\n# done\ncheck_kl_diag(f)",
     "only blank lines"),
    ("### BEGIN SOLUTION\nf = 1\n### END SOLUTION\ncheck_gaussian_kl(f)  # ok\n# done", "a comment follows"),
    ("### BEGIN SOLUTION\nf = 1\n", "never closed"),
    ("x = 1  # see ### BEGIN SOLUTION below", "nbgrader would read"),
    ("# ### BEGIN HIDDEN TESTS", "nbgrader would read"),
])
def test_ungradable_cells_are_refused_with_the_place_to_fix(source, message):
    with pytest.raises(CourseworkError, match=message):
        make_nbgrader_notebook(_nb(_code(source)), "03_kl.ipynb")


def test_nbgrader_course_of_the_notebooks(tmp_path, capsys):
    course = tmp_path / "course"
    assert main(["coursework", str(NOTEBOOKS), "--nbgrader", str(course)]) == 0
    assert "nbgrader generate_assignment" in capsys.readouterr().out
    solved = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.relative_to(course).as_posix() for p in course.rglob("*") if p.is_file()) == sorted(
        [f"source/{p.stem}/{p.name}" for p in solved] + ["nbgrader_config.py"])  # no .py twins: they hold solutions
    for path in solved:
        cells = json.loads(path.read_text())["cells"]
        source = json.loads((course / "source" / path.stem / path.name).read_text())["cells"]
        calls = sum(len(re.findall(r"^check_\w+\(", _src(c), flags=re.M)) for c in cells if c["cell_type"] == "code")
        tests = [c for c in source if _nbg(c).get("grade") and not _nbg(c)["solution"]]
        assert len(tests) == calls > 0, path.name  # every check call of the notebook is graded
        assert all(_nbg(c).get("solution") for c in source if "### BEGIN SOLUTION" in _src(c)), path.name
        assert all(not _nbg(c) for c in source if "SOLUTION" not in _src(c) and c not in tests), path.name
        ids = [c["id"] for c in source]
        assert len(set(ids)) == len(ids)
    config = (course / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text(config + "# mine\n")
    assert main(["coursework", str(NOTEBOOKS), "--nbgrader", str(course)]) == 0
    assert (course / "nbgrader_config.py").read_text().endswith("# mine\n")  # the instructor's edits are kept
    assert main(["coursework", str(NOTEBOOKS), "--nbgrader", str(NOTEBOOKS / "course")]) == 2
    assert "inside" in capsys.readouterr().err and not (NOTEBOOKS / "course").exists()
    with pytest.raises(SystemExit, match="2"):
        main(["coursework", str(NOTEBOOKS), "--out", str(tmp_path / "s"), "--nbgrader", str(course)])
    assert "not allowed with" in capsys.readouterr().err


def test_a_rerun_keeps_an_instructors_edits_and_lists_them_until_overwrite(tmp_path, capsys):
    src, course = tmp_path / "notebooks", tmp_path / "course"
    src.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        (src / name).write_text(json.dumps(_nb(_code(EXERCISE))))
    assert main(["coursework", str(src), "--nbgrader", str(course)]) == 0
    assert "wrote 2 nbgrader source notebooks" in capsys.readouterr().out
    source, config = course / "source" / "01_a" / "01_a.ipynb", course / "nbgrader_config.py"
    notebook = json.loads(source.read_text())
    notebook["cells"][1]["metadata"]["nbgrader"]["points"] = 5  # the instructor weighs a check more
    edited = json.dumps(notebook)
    source.write_text(edited)
    config.write_text(config.read_text() + "c.Execute.timeout = 60\n")
    edited_config = config.read_text()

    assert main(["coursework", str(src), "--nbgrader", str(course)]) == 0
    out = capsys.readouterr().out
    assert source.read_text() == edited and config.read_text() == edited_config  # nothing lost
    kept = [line for line in out.splitlines() if line.startswith("kept ")]
    assert len(kept) == 2 and str(source) in kept[0] and "--overwrite replaces it" in kept[0]
    assert str(config) in kept[1] and "never replaced" in kept[1]
    assert "wrote 0 nbgrader source notebooks" in out and "1 unchanged, 1 kept" in out

    assert main(["coursework", str(src), "--nbgrader", str(course), "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert _nbg(json.loads(source.read_text())["cells"][1])["points"] == 1 and f"replaced {source}" in out
    assert config.read_text() == edited_config  # the config is the instructor's: even --overwrite keeps it
    assert "wrote 1 nbgrader source notebook to" in out and "1 unchanged, 0 kept" in out

    config.unlink()
    assert main(["coursework", str(src), "--nbgrader", str(course)]) == 0
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith("kept ")]
    assert "wrote 0 nbgrader source notebooks" in out and "2 unchanged, 0 kept" in out
    assert f"{config}: written" in out


@needs_nbgrader
def test_nbgrader_student_versions_equal_vaelib_coursework(tmp_path):
    """nbgrader's generate_assignment, with the config our step writes, on every notebook: the same cells
    get the same stubs as in `python -m vaelib coursework`. Differences by design: each exercise cell is
    split before its check calls (joined with blank lines they give vaelib's cell), and nbgrader clears
    every output and adds its metadata (checksums, locks), which are not compared."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    course = tmp_path / "course"
    make_nbgrader_course(NOTEBOOKS, course)
    students = make_student_versions(NOTEBOOKS, tmp_path / "student")
    api = NbGraderAPI(config=PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config())
    assert Path(api.coursedir.root) == course.resolve()
    for student, _, _ in students:
        if student.suffix != ".ipynb":
            continue
        result = api.generate_assignment(student.stem)
        assert result["success"], result.get("error")
        released = json.loads((course / "release" / student.stem / student.name).read_text())["cells"]
        assert not [c for c in released if "HIDDEN TESTS" in _src(c) or "SOLUTION" in _src(c)]
        assert not [c for c in released if c.get("outputs")]
        cells = iter(released)
        for expected in json.loads(student.read_text())["cells"]:
            cell = next(cells)
            assert cell["cell_type"] == expected["cell_type"], student.name
            parts = [_src(cell)]
            if "nbgrader" in cell["metadata"] and cell["cell_type"] == "code" and _src(cell) != _src(expected):
                while len(parts) < 3 and not re.fullmatch(r"\n+".join(map(re.escape, parts)), _src(expected)):
                    test = next(cells)
                    assert _nbg(test)["grade"] and _nbg(test)["locked"] and not _nbg(test)["solution"]
                    parts.append(_src(test))
            assert re.fullmatch(r"\n+".join(map(re.escape, parts)), _src(expected)), (student.name, parts)
        assert next(cells, None) is None, student.name


def _submission(release, source, wrong=None):
    """The released notebook with every stub filled with the reference answer (marker lines dropped),
    as a learner would hand it in; ``wrong=(check, old, new)`` edits the answer that ``check`` tests."""
    cells = source["cells"]
    answers = {_nbg(c)["grade_id"]: _src(c) for c in cells if _nbg(c).get("solution")}
    if wrong:
        tested = next(i for i, c in enumerate(cells) if _nbg(c).get("grade_id") == wrong[0])
        answer = _nbg(cells[tested - 1])["grade_id"]
        assert answers[answer].count(wrong[1]) == 1
        answers[answer] = answers[answer].replace(*wrong[1:])
    notebook = json.loads(json.dumps(release))
    for cell in notebook["cells"]:
        if _nbg(cell).get("solution"):
            cell["source"] = "".join(line for line in answers[_nbg(cell)["grade_id"]].splitlines(keepends=True)
                                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
    return notebook


def _nbgrader(course, *args):
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@needs_nbgrader
@needs_mnist
def test_nbgrader_autograde_full_marks_for_the_reference_and_a_wrong_answer_loses_its_points(tmp_path):
    """The instructor commands of notebooks/README.md on notebook 03 (3 checks, 1 written answer), for two
    submissions: alice hands in the reference answers, bob the same with the sign of one KL flipped."""
    from nbgrader.api import Gradebook

    course, name = tmp_path / "course", "03_kl_divergence"
    assert main(["coursework", str(NOTEBOOKS), "--nbgrader", str(course)]) == 0
    _nbgrader(course, "generate_assignment", name)
    release = json.loads((course / "release" / name / f"{name}.ipynb").read_text())
    source = json.loads((course / "source" / name / f"{name}.ipynb").read_text())
    flip = ("check_kl_diag", "return 0.5 * (logvar_p - logvar_q", "return -0.5 * (logvar_p - logvar_q")
    for student, wrong in (("alice", None), ("bob", flip)):
        folder = course / "submitted" / student / name
        folder.mkdir(parents=True)
        (folder / f"{name}.ipynb").write_text(json.dumps(_submission(release, source, wrong)))
    _nbgrader(course, "autograde", name)
    _nbgrader(course, "generate_feedback", name)
    _nbgrader(course, "export")

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grades = {student: {g.name: (g.auto_score, g.max_score, g.needs_manual_grade)
                            for g in gb.find_submission_notebook(name, name, student).grades}
                  for student in ("alice", "bob")}
    checks = {"check_kl_diag", "check_best_reverse_fit", "check_kl_to_mixture_mc"}
    assert grades["alice"] == {**{c: (1.0, 1.0, False) for c in checks}, "written-1": (None, 1.0, True)}
    assert grades["bob"] == {**grades["alice"], "check_kl_diag": (0.0, 1.0, False)}

    with open(course / "grades.csv", newline="") as f:
        rows = [(row["student_id"], row["score"], row["max_score"]) for row in csv.DictReader(f)]
    assert sorted(rows) == [("alice", "3.0", "4.0"), ("bob", "2.0", "4.0")]  # until the written answer is graded

    feedback = {student: (course / "feedback" / student / name / f"{name}.html").read_text(encoding="utf-8")
                for student in ("alice", "bob")}
    hint = "check_kl_diag: the sign is flipped. Hint: a KL divergence is never negative"
    assert hint in feedback["bob"] and "✗" in feedback["bob"]
    assert "the sign is flipped" not in feedback["alice"] and "✗" not in feedback["alice"]
    assert "✓ check_kl_diag" in feedback["alice"]
