"""Student versions of the notebooks, for instructors: solutions out, everything else kept.

The solved notebooks mark each reference solution with nbgrader's markers::

    ### BEGIN SOLUTION
    ...the solution...
    ### END SOLUTION

``make_student_notebook`` replaces every such region: in a code cell by ``# YOUR CODE HERE`` and
``raise NotImplementedError()`` (at the indentation of the BEGIN line), in a markdown cell by
``YOUR ANSWER HERE``. Cells that held a solution lose their outputs and execution count; every
other cell, and the notebook's metadata, is kept as it was.

``make_nbgrader_course`` writes the same notebooks as an nbgrader course instead: ``source/NN_name/``
copies that carry nbgrader's cell metadata (which the notebooks themselves do not have), and an
``nbgrader_config.py`` with vaelib's stubs. nbgrader's own ``generate_assignment`` then writes the
student version, and ``autograde`` scores every vaelib check (see ``make_nbgrader_notebook``).

    python -m vaelib coursework notebooks/ --out student/
    python -m vaelib coursework notebooks/ --nbgrader course/

Nothing in the output folder is lost on a rerun: a file there that differs from what vaelib would
write now (a learner's work in ``student/``, an instructor's edits in ``source/``) is kept as it is,
and reported as ``"kept"``; only ``overwrite=True`` (``--overwrite``) replaces it. A file that
already holds exactly that content is not touched (``"unchanged"``); a ``.py`` twin that differs only
in jupytext's version stamps counts as unchanged. An existing ``nbgrader_config.py`` is never
replaced, not even with ``overwrite=True``.
"""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

from ..files import atomic_write

__all__ = ["CourseworkError", "strip_solutions", "make_student_notebook", "make_student_versions",
           "make_nbgrader_notebook", "make_nbgrader_course", "STATES"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
ANSWER_STUB = "YOUR ANSWER HERE"
_MARKER = re.compile(r"^(\s*)(### (BEGIN|END) SOLUTION)\s*$")


class CourseworkError(ValueError):
    """Unbalanced markers or a bad output folder, with the place to fix."""


def strip_solutions(source: str, cell_type: str, where: str = "cell") -> tuple[str, int]:
    """Replace each solution region of one cell's source; return ``(new_source, regions)``."""
    lines = source.splitlines(keepends=True)
    out, inside, indent, regions = [], False, "", 0
    for number, line in enumerate(lines, 1):
        marker = _MARKER.match(line.rstrip("\n"))
        if marker and marker.group(3) == "BEGIN":
            if inside:
                raise CourseworkError(f"{where}, line {number}: '{BEGIN}' inside an open solution region "
                                      f"(add the missing '{END}' above it)")
            inside, indent, regions = True, marker.group(1), regions + 1
            if cell_type == "code":
                out.append("".join(f"{indent}{stub}\n" for stub in CODE_STUB))
            else:
                out.append(f"{indent}{ANSWER_STUB}\n")
            continue
        if marker and marker.group(3) == "END":
            if not inside:
                raise CourseworkError(f"{where}, line {number}: '{END}' without a '{BEGIN}' before it")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise CourseworkError(f"{where}: '{BEGIN}' is never closed (add '{END}' after the solution)")
    text = "".join(out)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text, regions


def make_student_notebook(notebook: dict, name: str = "notebook") -> tuple[dict, int]:
    """Return ``(student_notebook, regions)`` for a notebook dict (nbformat 4 JSON)."""
    cells, regions = [], 0
    for index, cell in enumerate(notebook.get("cells", [])):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        if BEGIN not in text and END not in text:
            cells.append(cell)
            continue
        new_text, n = strip_solutions(text, cell.get("cell_type", "code"), f"{name}, cell {index + 1}")
        regions += n
        new_cell = dict(cell)
        new_cell["source"] = new_text.splitlines(keepends=True) if isinstance(source, list) else new_text
        if cell.get("cell_type") == "code":
            new_cell["outputs"], new_cell["execution_count"] = [], None
        cells.append(new_cell)
    return {**notebook, "cells": cells}, regions


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def _notebook_text(notebook: dict) -> str:
    # nbformat's own layout (indent 1, sorted keys, UTF-8, final newline): untouched cells stay byte for byte
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


#: The states of a file in what make_student_versions and make_nbgrader_course return.
STATES = ("written", "replaced", "unchanged", "kept")

# jupytext stamps its own release into a twin's header: two installs write different stamps for the
# same notebook, so a stamp alone is no edit of the twin
_STAMP = re.compile(r"^#\s+(jupytext_version|format_version):.*\n", re.M)


def _without_stamps(text: str) -> str:
    """A ``py:percent`` text without the version stamps in its ``# ---`` header (other text unchanged)."""
    if not text.startswith("# ---\n"):
        return text
    end = text.find("\n# ---\n", 5)
    return text if end < 0 else _STAMP.sub("", text[:end + 1]) + text[end + 1:]


def _put(path: Path, text: str, overwrite: bool, same=str.__eq__) -> str:
    """Write ``text`` to ``path`` unless a different file is there (someone's edits) and not ``overwrite``.

    Returns the file's state: ``"written"`` (it was missing), ``"unchanged"`` (``same(old, text)``: not
    touched), ``"replaced"`` (it differed, ``overwrite``) or ``"kept"`` (it differed: left as it was).
    """
    if path.is_dir():
        _write_text(path, text)  # raises atomic_write's IsADirectoryError, which names the path
    try:
        with open(path, encoding="utf-8") as f:  # universal newlines: a line-ending style is no edit
            old = f.read()
    except FileNotFoundError:
        _write_text(path, text)
        return "written"
    except UnicodeDecodeError:  # not UTF-8, so not what vaelib writes: a difference like any other
        old = None
    if old is not None and same(old, text):
        return "unchanged"
    if not overwrite:
        return "kept"
    _write_text(path, text)
    return "replaced"


def _read_notebooks(source_dir, out_dir, pattern: str, name: str, example: str) -> list[tuple[Path, dict]]:
    """The notebooks of ``source_dir`` matching ``pattern``, read and checked, for writing into ``out_dir``."""
    src, out = Path(source_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise CourseworkError(f"{source_dir} is not a folder of notebooks")
    if out.exists() and not out.is_dir():
        raise CourseworkError(f"{name}={out_dir} is a file: name a folder (e.g. {example})")
    if out == src or src in out.parents:
        raise CourseworkError(f"the output folder {out_dir} is inside {source_dir}: choose a folder outside "
                              f"it (e.g. {example}) so the solved notebooks are never overwritten")
    notebooks = sorted(src.glob(pattern))
    if not notebooks:
        raise CourseworkError(f"no notebooks matching {pattern} in {source_dir}")
    read = []
    for path in notebooks:
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CourseworkError(f"{path} is not a readable notebook ({err.msg}, line {err.lineno})") from None
        except UnicodeDecodeError:
            raise CourseworkError(f"{path} is not a readable notebook (not UTF-8 text)") from None
        cells = notebook.get("cells") if isinstance(notebook, dict) else None
        if not isinstance(cells, list) or not all(isinstance(c, dict) and "cell_type" in c for c in cells) \
                or not isinstance(notebook.get("nbformat"), int):
            raise CourseworkError(f"{path} is JSON but not a Jupyter notebook (no nbformat and list of cells): "
                                  f"remove it from {source_dir} or repair it")
        read.append((path, notebook))
    return read


def make_student_versions(source_dir: str | os.PathLike, out_dir: str | os.PathLike,
                          pattern: str = "[0-9][0-9]_*.ipynb", overwrite: bool = False) -> list[tuple[Path, int, str]]:
    """Write a student version of every notebook in ``source_dir`` (and its ``py:percent`` twin) to ``out_dir``.

    Returns ``[(path, solution_regions, state), ...]``, one for each notebook and one for its twin
    after it; ``state`` is one of ``STATES``. A file of ``out_dir`` that differs from its student
    version (a learner's work) is ``"kept"`` as it is unless ``overwrite``. Refuses an ``out_dir``
    inside ``source_dir`` (student files must never mix with, or overwrite, the solved notebooks)
    and unbalanced markers (checked in every notebook before anything is written).
    """
    notebooks = _read_notebooks(source_dir, out_dir, pattern, "out_dir", "student/")
    out = Path(out_dir).resolve()
    try:
        import jupytext
    except ImportError:
        raise CourseworkError("writing the .py twins needs jupytext: pip install jupytext "
                              "(or pip install -e '.[dev]')") from None
    students = [(path, *make_student_notebook(notebook, path.name)) for path, notebook in notebooks]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, notebook, regions in students:
        target = out / path.name
        written.append((target, regions, _put(target, _notebook_text(notebook), overwrite)))
        twin = jupytext.writes(jupytext.reads(json.dumps(notebook), fmt="ipynb"), fmt="py:percent")
        written.append((target.with_suffix(".py"), regions,
                        _put(target.with_suffix(".py"), twin, overwrite,
                             lambda old, new: _without_stamps(old) == _without_stamps(new))))
    return written


# --- nbgrader ------------------------------------------------------------------------------------
#
# nbgrader finds exercises by cell metadata, which the notebooks do not carry: make_nbgrader_notebook
# adds it to a copy. A code cell "def f(...): <solution> ... check_f(f)" becomes two cells, because
# nbgrader scores a cell either as the learner's answer or as a test, never both: the answer (up to the
# solution's end) and one locked "autograder test" cell per trailing check call. Joined with the
# blank lines that separated them, they give the original cell back, so nbgrader's student version
# has the same stubs as make_student_notebook's.

#: Hidden (nbgrader removes it from the student version and restores it when grading) at the top of
#: every test cell: a failed check must raise for the cell to lose its points, and the check called
#: must be vaelib's, whatever the learner's cells did to the name.
GRADING_SETUP = ["### BEGIN HIDDEN TESTS",
                 "import os; os.environ[\"VAELIB_CHECKS_STRICT\"] = \"1\"  # grading: a failed check raises "
                 "AssertionError",
                 "from vaelib.course.checks import {name}",
                 "### END HIDDEN TESTS"]
#: Hidden at the bottom: a statement, so the cell has no Out[] value (nbgrader would read a check's
#: True/False output as a partial score; a raised error is what scores zero).
GRADING_TEARDOWN = ["### BEGIN HIDDEN TESTS",
                    "pass  # no Out[] value: the cell scores full points unless the check raised",
                    "### END HIDDEN TESTS"]

NBGRADER_CONFIG = '''\
"""nbgrader settings for the vaelib course (written by `python -m vaelib coursework --nbgrader`).

nbgrader reads this file when it runs in this folder. Edit it freely: vaelib does not overwrite an
existing nbgrader_config.py.
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821 (defined by nbgrader's config loader)
root = Path(__file__).resolve().parent
c.CourseDirectory.root = str(root)

# The stubs of `python -m vaelib coursework` (and nbgrader's defaults, spelled out).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Notebook cells that train or evaluate take longer than nbgrader's default of 30 s per cell.
c.Execute.timeout = 600

# Grade in the notebooks' fast mode (brief training, fewer samples): the checks test the learner's
# functions on fixed inputs, not the length of a training run. `VAELIB_FAST=0 nbgrader autograde ...`
# grades in full mode. Kernels inherit this process's environment. (Strict checks need no setting:
# every test cell turns them on itself, in its hidden part.)
os.environ.setdefault("VAELIB_FAST", "1")

# The notebooks save figures to ../figures: give each student's autograded folder one.
for submitted in (root / "submitted").glob("*"):
    if submitted.is_dir():
        (root / "autograded" / submitted.name / "figures").mkdir(parents=True, exist_ok=True)
'''


def _check_names() -> set[str]:
    from . import checks  # imports torch: only the nbgrader step needs it
    return set(checks.__all__)


def _check_called(node, names: set[str]) -> str | None:
    """The name of the vaelib check that the statement ``node`` calls on its own, else None."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    func = node.value.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    return name if name in names else None


def _split_checks(text: str, names: set[str], where: str) -> tuple[str, list[tuple[str, str]]]:
    """Split one code cell's source into ``(answer, [(check_name, call_source), ...])``.

    The calls are the top-level check calls that end the cell, after its last solution region; only
    blank lines may separate them from each other and from the answer. ``answer`` is ``""`` when the
    cell holds nothing but the calls, ``text`` unchanged (and no calls) when it ends otherwise.
    """
    lines = text.splitlines(keepends=True)
    markers = [(i, _MARKER.match(line.rstrip("\n"))) for i, line in enumerate(lines)]
    ends = [i for i, marker in markers if marker and marker.group(3) == "END"]
    start = ends[-1] + 1 if ends else 0
    try:
        body = ast.parse("".join(lines[start:])).body
    except SyntaxError:  # IPython magics, or code that is not Python on its own: no test to take out
        return text, []
    trailing = []
    for node in reversed(body):
        name = _check_called(node, names)
        if name is None:
            break
        trailing.insert(0, (name, start + node.lineno - 1, start + node.end_lineno))
    calls, previous = [], None
    for name, first, last in trailing:
        if previous is not None and any(line.strip() for line in lines[previous:first]):
            raise CourseworkError(f"{where}: only blank lines may separate the check calls that end the cell "
                                  f"(line {first + 1}): nbgrader grades each call as a cell of its own")
        calls.append((name, "".join(lines[first:last]).rstrip("\n")))
        previous = last
    if trailing and any(line.strip() for line in lines[previous:]):
        raise CourseworkError(f"{where}: a comment follows the check call that ends the cell: move it above "
                              f"the call or into the next cell")
    answer = "".join(lines[:trailing[0][1]]).rstrip("\n") if trailing else text
    return answer, calls


def _checks_in(text: str, names: set[str]) -> int:
    """How many calls of vaelib checks the student version of ``text`` makes (0 when it is no Python)."""
    try:
        tree = ast.parse(strip_solutions(text, "code")[0])
    except SyntaxError:
        return 0
    return sum(1 for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        getattr(node.func, "id", None) in names or getattr(node.func, "attr", None) in names))


def _as_source(text: str, like) -> list[str] | str:
    return text.splitlines(keepends=True) if isinstance(like, list) else text


def make_nbgrader_notebook(notebook: dict, name: str = "notebook", points: float = 1) -> tuple[dict, dict]:
    """Return ``(source_notebook, counts)``: a copy of a solved notebook with nbgrader's cell metadata.

    - a markdown cell with a solution region (a written answer) becomes a *manually graded answer*
      worth ``points``;
    - a code cell with a solution region becomes an *autograded answer* (no points of its own); when
      it ends with calls of vaelib checks, each call moves to a new *autograder test* cell after it,
      locked and worth ``points``, whose hidden part (``GRADING_SETUP``, ``GRADING_TEARDOWN``) makes
      a failed check raise, so the cell scores 0;
    - every other cell is kept as it was.

    ``counts`` says how many of each there are: ``{"answers", "tests", "written", "points"}``. Grade
    ids are the check's name for tests, ``answer-N`` and ``written-N`` for answers.
    """
    names, cells, used_ids, used_grade_ids = _check_names(), [], set(), set()
    counts = {"answers": 0, "tests": 0, "written": 0, "points": 0}

    def meta(cell, grade_id, solution, grade, locked):
        nbgrader = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                    "solution": solution, "task": False}
        if grade:
            nbgrader["points"] = points
            counts["points"] += points
        return {**cell, "metadata": {**cell.get("metadata", {}), "nbgrader": nbgrader}}

    def unique(wanted, used, limit=64):
        candidate, n = wanted[:limit], 1
        while candidate in used:
            n += 1
            candidate = f"{wanted[:limit - len(str(n)) - 1]}-{n}"
        used.add(candidate)
        return candidate

    for cell in notebook.get("cells", []):
        if "id" in cell:
            used_ids.add(cell["id"])
    for index, cell in enumerate(notebook.get("cells", [])):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        where = f"{name}, cell {index + 1}"
        for number, line in enumerate(text.splitlines(), 1):  # nbgrader takes any such line for a marker
            if ("BEGIN SOLUTION" in line or "END SOLUTION" in line) and not _MARKER.match(line) \
                    or "HIDDEN TESTS" in line:
                raise CourseworkError(f"{where}, line {number}: nbgrader would read {line.strip()!r} as one of "
                                      f"its markers: reword it, or make it a '{BEGIN}' or '{END}' line")
        solved = BEGIN in text or END in text
        if solved:
            strip_solutions(text, cell.get("cell_type", "code"), where)  # refuses unbalanced markers
        if cell.get("cell_type") == "markdown" and solved:
            counts["written"] += 1
            cells.append(meta(cell, unique(f"written-{counts['written']}", used_grade_ids), True, True, False))
            continue
        if cell.get("cell_type") != "code":
            cells.append(cell)
            continue
        answer, calls = _split_checks(text, names, where)
        if _checks_in(text, names) > len(calls):
            raise CourseworkError(f"{where}: a vaelib check is called before the end of the cell; nbgrader can "
                                  f"only grade the check calls that end an exercise's cell: move it there")
        if not solved and not calls:
            cells.append(cell)
            continue
        if answer:
            answer_cell = {**cell, "source": _as_source(answer, source)}
            if calls:  # split cells lose their outputs (the checks' printouts), as solved cells do anyway
                answer_cell["outputs"], answer_cell["execution_count"] = [], None
            if solved:
                counts["answers"] += 1
                answer_cell = meta(answer_cell, unique(f"answer-{counts['answers']}", used_grade_ids),
                                   True, False, False)
            cells.append(answer_cell)
        for check, call in calls:
            counts["tests"] += 1
            test = "\n".join([*(line.replace("{name}", check) for line in GRADING_SETUP), call, *GRADING_TEARDOWN])
            test_cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                         "source": _as_source(test, source)}
            if "id" in cell:
                test_cell = {"id": unique(f"{cell['id']}-{check}", used_ids), **test_cell}
            cells.append(meta(test_cell, unique(check, used_grade_ids), False, True, True))
    return {**notebook, "cells": cells}, counts


def make_nbgrader_course(source_dir: str | os.PathLike, course_dir: str | os.PathLike,
                         pattern: str = "[0-9][0-9]_*.ipynb", points: float = 1,
                         overwrite: bool = False) -> list[tuple[Path, dict | None, str]]:
    """Write an nbgrader course folder: ``COURSE/source/NN_name/NN_name.ipynb`` for each notebook, one
    assignment each, with nbgrader's metadata (``make_nbgrader_notebook``), and ``nbgrader_config.py``
    unless the folder has one. No ``.py`` twins: nbgrader would hand out every other file of
    ``source/NN_name/`` as it is, solutions included.

    Returns ``[(path, counts, state), ...]``, one for each notebook, then ``(config_path, None, state)``;
    ``state`` is one of ``STATES``. A source notebook that differs from vaelib's (an instructor's
    edits) is ``"kept"`` as it is unless ``overwrite``; an existing ``nbgrader_config.py`` that differs
    is always kept (it is there to be edited). Refuses a course folder inside ``source_dir`` and
    unbalanced markers or ungradable check calls (checked in every notebook before anything is written).
    """
    notebooks = _read_notebooks(source_dir, course_dir, pattern, "course_dir", "course/")
    sources = [(path, *make_nbgrader_notebook(notebook, path.name, points)) for path, notebook in notebooks]
    course = Path(course_dir).resolve()
    written = []
    for path, notebook, counts in sources:
        target = course / "source" / path.stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append((target, counts, _put(target, _notebook_text(notebook), overwrite)))
    config = course / "nbgrader_config.py"
    written.append((config, None, _put(config, NBGRADER_CONFIG, overwrite=False)))
    return written


def report_lines(results: list, where) -> list[str]:
    """What :func:`make_student_versions` or :func:`make_nbgrader_course` did (``results``, written to
    ``where``), as lines to print: each notebook written, each file kept or replaced, and a summary."""
    nbgrader = any(isinstance(detail, dict) or detail is None for _, detail, _ in results)
    what = "nbgrader source notebook" if nbgrader else "student file"
    lines = []
    for path, detail, state in results:
        if state == "kept" and detail is None and nbgrader:  # nbgrader_config.py: there to be edited
            lines.append(f"kept {path}: it differs from vaelib's, and is yours to edit: never replaced, not even by "
                         f"overwrite=True (delete it to get vaelib's again)")
        elif state == "kept":
            lines.append(f"kept {path}: it differs from what vaelib writes now (edited?); overwrite=True replaces it")
        elif state == "replaced":
            lines.append(f"replaced {path}: it differed from what vaelib writes now (overwrite=True)")
        elif state == "written" and isinstance(detail, dict):
            lines.append(f"{path}: {detail['tests']} autograded checks, {detail['written']} written answers, "
                         f"{detail['answers']} code answers")
        elif state == "written" and (detail is None or path.suffix == ".ipynb"):  # a .py twin: only its edits are news
            lines.append(f"{path}: " + ("written" if detail is None else
                                        f"{detail} solution region{'s' * (detail != 1)} removed"))
    files = [state for path, detail, state in results if not (nbgrader and detail is None)]
    written, kept = files.count("written") + files.count("replaced"), files.count("kept")
    lines.append(f"wrote {written} {what}{'' if written == 1 else 's'} to {where}, {files.count('unchanged')} "
                 f"unchanged, {kept} kept" + (f" (listed above: nothing was lost; overwrite=True replaces "
                                              f"{'it' if kept == 1 else 'them'})" if kept else ""))
    return lines
