"""The course website's own Sphinx extension (configured in docs/conf.py).

- Navigation: the front page (README.md) gets a hidden toctree, built at read time, so GitHub
  shows README.md unchanged: the guide, then every ``notebooks/NN_*.ipynb`` in numeric order
  (new notebooks appear without editing anything), titled as in the guide's learning-path table,
  then the capstone projects' starter notebooks, then the reference pages.
- API reference: ``docs/api.rst`` gets one ``automodule`` section per public vaelib module, found
  by walking the package, in the order vaelib's own docstring lists them.
- Widgets: an output holding an ipywidgets view cannot run without a kernel. It is replaced by a
  static picture of the widget state stored in the notebook (sliders, buttons, images, HTML) and,
  when it has controls, a note saying how to run it in JupyterLab (a progress bar gets no note).
  The text/plain repr, with the note, is the fallback when no state was stored.
- Notebook Markdown as Jupyter shows it: nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``
  lines would render as headings, so each model answer is folded under "Model answer"; a
  formula spanning lines is joined into one line (see ``_prepare_notebook``).
- Links: after the build every relative ``href``/``src`` of every page must name a file of the
  site (and an ``#anchor`` of another page an id in it); a broken one is a warning, and the build
  runs with ``-W``.
- myst-nb writes notebook outputs to ``<outdir>/../jupyter_execute``; that folder (and its unused
  execution cache) is moved next to the doctrees, so that building into ``_site/`` leaves nothing
  at the repository root.
"""
from __future__ import annotations

import base64
import html
import importlib
import json
import pkgutil
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


# -- navigation --------------------------------------------------------------------------------

def _notebook_docnames(app: Sphinx, pattern: str | None = None) -> list[str]:
    """Every notebook of the learning path (or of ``pattern``), as docnames, in numeric order."""
    srcdir = Path(app.srcdir)
    pattern = pattern or app.config.site_nav_notebooks
    found = [p.relative_to(srcdir).as_posix() for p in srcdir.glob(pattern) if p.is_file()]

    def key(path: str):
        number = re.match(r"(\d+)", Path(path).name)
        return (int(number.group(1)) if number else float("inf"), path)

    return [str(Path(p).with_suffix("").as_posix()) for p in sorted(found, key=key)]


def _guide_titles(app: Sphinx) -> dict[str, str]:
    """Short titles from the guide's table: ``[03 KL divergence](03_kl_divergence.ipynb)``."""
    guide = Path(app.srcdir) / (app.config.site_nav_guide + ".md")
    if not guide.is_file():
        return {}
    folder = Path(app.config.site_nav_guide).parent
    titles = {}
    for title, target in re.findall(r"\[([^\]]+)\]\(([^)#\s]+\.ipynb)\)", guide.read_text("utf-8")):
        titles[(folder / target).with_suffix("").as_posix()] = title
    return titles


def _toctree(caption: str, entries: list[str]) -> str:
    lines = ["", "```{toctree}", ":hidden:", f":caption: {caption}", ""] + entries + ["```", ""]
    return "\n".join(lines)


def _navigation(app: Sphinx) -> str:
    titles = _guide_titles(app)
    notebooks, capstones = ([f"{titles[d]} <{d}>" if d in titles else d for d in _notebook_docnames(app, pattern)]
                            for pattern in (app.config.site_nav_notebooks, app.config.site_nav_capstones))
    return (_toctree("Start here", [app.config.site_nav_guide])
            + _toctree("The learning path", notebooks)
            + (_toctree("Capstone projects", capstones) if capstones else "")
            + _toctree("Reference", list(app.config.site_nav_reference)))


# -- API reference -----------------------------------------------------------------------------

def _public_modules(package_name: str) -> list[str]:
    """The package and its public modules: in the order its docstring names them, each module's
    submodules right after it, the modules it does not name at the end."""
    package = importlib.import_module(package_name)
    names = [package_name]
    for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
        moved = info.name.rpartition(".")[2] in getattr(package, "_MOVED_MODULES", ())  # a stub at an old path
        if not moved and not any(part.startswith("_") for part in info.name.split(".")[1:]):   # no _private, __main__
            names.append(info.name)
    listed = package.__doc__ or ""

    def position(name: str) -> int:
        while name != package_name:
            at = listed.find(f"``{name}``")
            if at >= 0:
                return at
            name = name.rpartition(".")[0]
        return len(listed)

    return sorted(names, key=lambda name: (position(name) if name != package_name else -1, name))


def _api_sections(package_name: str) -> str:
    modules = _public_modules(package_name)
    out = ["", ".. autosummary::", ""] + [f"   {m}" for m in modules[1:]] + [""]
    for name in modules:
        out += ["", name, "-" * len(name), "", f".. automodule:: {name}"]
        if hasattr(importlib.import_module(name), "__path__"):
            # a package: only what it defines itself; what it re-exports is documented where
            # it is defined, in its submodule's section
            out += ["   :ignore-module-all:"]
        out += [""]
    return "\n".join(out)


SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"   # nbgrader's markers


def _prepare_notebook(notebook_json: str) -> str:
    """Markdown cells as Jupyter shows them, for MyST's parser:

    - each model answer folded under "Model answer" (nbgrader's marker lines would be headings);
    - a formula (``$...$`` or ``$$...$$``) that spans lines joined into one line: Jupyter takes
      math out before it parses Markdown, MyST does not, so a continuation line of a formula that
      starts with ``+`` or ``-`` would become a list item and the formula would be lost.
    """
    if SOLUTION_BEGIN not in notebook_json and "$" not in notebook_json:
        return notebook_json
    notebook = json.loads(notebook_json)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        # code fences and inline code are left alone; math is looked for in the rest
        parts = re.split(r"(^\s*```.*?^\s*```|`[^`\n]*`)", text, flags=re.M | re.S)
        for i in range(0, len(parts), 2):
            parts[i] = _MATH.sub(_join_math_lines, parts[i])
        lines = []
        for line in "".join(parts).split("\n"):
            if line.strip() == SOLUTION_BEGIN:
                lines += ["", '<details class="vaelib-solution"><summary>Model answer</summary>', ""]
            elif line.strip() == SOLUTION_END:
                lines += ["", "</details>", ""]
            else:
                lines.append(line)
        cell["source"] = "\n".join(lines)
    return json.dumps(notebook)


_MATH = re.compile(r"(?<!\\)(\$\$.+?\$\$|\$[^$]+?\$)", flags=re.S)


def _join_math_lines(match: re.Match) -> str:
    tex = match.group(0)
    if ("\n" not in tex
            or re.search(r"\n\s*\n", tex)           # a blank line: not one formula
            or re.search(r"(?<!\\)%", tex)):         # a TeX comment would swallow the rest
        return tex
    return " ".join(line.strip() for line in tex.split("\n"))


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if Path(app.env.doc2path(docname)).suffix == ".ipynb":
        source[0] = _prepare_notebook(source[0])
    if docname == app.config.root_doc:
        source[0] += "\n" + _navigation(app)
    elif docname == app.config.site_api_doc:
        source[0] += "\n" + _api_sections(app.config.site_api_package)


# -- widgets -----------------------------------------------------------------------------------

_states: dict[tuple[Path, float], dict] = {}


def _widget_state(notebook: Path) -> dict:
    """The widget state stored in a notebook's metadata ({} when none was saved)."""
    try:
        key = (notebook, notebook.stat().st_mtime)
        if key not in _states:
            metadata = json.loads(notebook.read_text("utf-8")).get("metadata", {})
            _states[key] = metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        return _states[key]
    except (OSError, ValueError):
        return {}


class _StaticWidget:
    """HTML for the stored state of one widget tree (no JavaScript, every control disabled)."""

    CONTROLS = {"FloatSlider", "IntSlider", "FloatLogSlider", "SelectionSlider", "FloatRangeSlider",
                "IntRangeSlider", "ToggleButtons", "Dropdown", "RadioButtons", "Select", "Button",
                "ToggleButton", "Play", "Checkbox", "Text", "Textarea", "IntText", "FloatText",
                "BoundedIntText", "BoundedFloatText"}

    def __init__(self, state: dict):
        self.state = state
        self.interactive = False   # has a control (a progress bar alone has none)

    def model(self, ref) -> dict | None:
        if isinstance(ref, str) and ref.startswith("IPY_MODEL_"):
            ref = ref[len("IPY_MODEL_"):]
        entry = self.state.get(ref)
        if entry is None:
            return None
        values = dict(entry.get("state", {}))
        for buffer in entry.get("buffers", []):   # binary values (an Image's PNG) stored base64
            if buffer.get("path") and buffer.get("encoding") == "base64":
                values[buffer["path"][0]] = ("base64", buffer["data"])
        return {"name": entry.get("model_name", ""), "state": values}

    def render(self, ref) -> str | None:
        model = self.model(ref)
        if model is None:
            return None
        name, s = model["name"], model["state"]
        layout = (self.model(s.get("layout")) or {}).get("state", {})
        if layout.get("display") == "none" or layout.get("visibility") == "hidden":
            return ""
        esc = html.escape
        desc = s.get("description") or ""
        label = f'<span class="vw-desc">{esc(desc)}</span>' if desc else ""
        kind = name[:-len("Model")] if name.endswith("Model") else name
        self.interactive |= kind in self.CONTROLS

        if kind in ("HBox", "VBox", "Box", "GridBox", "Accordion", "Tab", "Stack"):
            inner = "".join(self.render(child) or "" for child in s.get("children", []))
            direction = "vw-vbox" if kind in ("VBox", "Accordion", "Tab", "Stack") else "vw-hbox"
            return f'<div class="vw-box {direction}">{inner}</div>'
        if kind == "Image":
            value = s.get("value")
            if isinstance(value, tuple):
                data = value[1]
            elif isinstance(value, str):
                data = base64.b64encode(value.encode("latin-1")).decode() if value else ""
            else:
                data = ""
            if not data:
                return ""
            size = "".join(f' {k}="{esc(str(s[k]))}"' for k in ("width", "height") if s.get(k))
            fmt = esc(s.get("format") or "png")
            fmt = "svg+xml" if fmt == "svg" else fmt
            return (f'<img class="vw-image" alt="stored widget image"{size} '
                    f'src="data:image/{fmt};base64,{data}">')
        if kind in ("FloatSlider", "IntSlider", "FloatLogSlider", "SelectionSlider",
                    "FloatRangeSlider", "IntRangeSlider"):
            if kind == "SelectionSlider":
                options = s.get("_options_labels", [])
                index = s.get("index", 0) or 0
                lo, hi, step, value = 0, max(len(options) - 1, 0), 1, index
                readout = options[index] if 0 <= index < len(options) else ""
            else:
                lo, hi, step, value = s.get("min", 0), s.get("max", 100), s.get("step", 1), s.get("value", 0)
                readout = self._format(value, s.get("readout_format", ""))
                if isinstance(value, list):
                    value = value[0] if value else 0
            if kind == "FloatLogSlider":
                base = s.get("base", 10)
                readout = self._format(base ** value, s.get("readout_format", ""))
            return (f'<div class="vw-row">{label}<input class="vw-slider" type="range" disabled '
                    f'min="{esc(str(lo))}" max="{esc(str(hi))}" step="{esc(str(step))}" '
                    f'value="{esc(str(value))}"><span class="vw-readout">{esc(str(readout))}</span></div>')
        if kind in ("ToggleButtons", "Dropdown", "RadioButtons", "Select"):
            options = s.get("_options_labels", [])
            index = s.get("index")
            buttons = "".join(
                f'<button type="button" disabled class="vw-button{" vw-selected" if i == index else ""}">'
                f"{esc(str(o))}</button>" for i, o in enumerate(options))
            return f'<div class="vw-row">{label}<span class="vw-choices">{buttons}</span></div>'
        if kind in ("Button", "ToggleButton", "Play"):
            text = esc(desc or ("▶" if kind == "Play" else ""))
            pressed = " vw-selected" if s.get("value") is True else ""
            return f'<button type="button" disabled class="vw-button{pressed}">{text}</button>'
        if kind in ("Checkbox", "Valid"):
            checked = " checked" if s.get("value") else ""
            return f'<label class="vw-row"><input type="checkbox" disabled{checked}> {esc(desc)}</label>'
        if kind in ("HTML", "HTMLMath"):
            return f'<div class="vw-row">{label}<div class="vw-html">{s.get("value", "")}</div></div>'
        if kind == "Label":
            return f'<div class="vw-row vw-label">{esc(str(s.get("value", "")))}</div>'
        if kind in ("Text", "Textarea", "IntText", "FloatText", "BoundedIntText", "BoundedFloatText"):
            return (f'<div class="vw-row">{label}<input type="text" disabled '
                    f'value="{esc(str(s.get("value", "")))}"></div>')
        if kind in ("FloatProgress", "IntProgress"):
            return (f'<div class="vw-row">{label}<progress value="{esc(str(s.get("value", 0)))}" '
                    f'max="{esc(str(s.get("max", 100)))}"></progress></div>')
        if kind == "Output":
            return f'<div class="vw-output">{"".join(self._output(o) for o in s.get("outputs", []))}</div>'
        return f'<span class="vw-unknown">[{esc(kind)}]</span>'

    @staticmethod
    def _format(value, spec: str) -> str:
        if isinstance(value, list):
            return "–".join(_StaticWidget._format(v, spec) for v in value)
        try:
            return format(value, spec)
        except (TypeError, ValueError):
            return str(value)

    @staticmethod
    def _output(output: dict) -> str:
        data = output.get("data", {})
        if "image/png" in data:
            png = data["image/png"]
            png = "".join(png) if isinstance(png, list) else png
            return f'<img class="vw-image" alt="stored widget output" src="data:image/png;base64,{png}">'
        if "text/html" in data:
            value = data["text/html"]
            return "".join(value) if isinstance(value, list) else value
        text = data.get("text/plain") or output.get("text") or ""
        text = "".join(text) if isinstance(text, list) else text
        return f"<pre>{html.escape(text)}</pre>" if text else ""


class StoredWidgetView(SphinxPostTransform):
    """Replace every widget-view output by the note and the widget's stored, static view.

    Runs before myst-nb's SelectMimeType (priority 4), on the mime bundles it leaves.
    """

    default_priority = 3
    formats = ("html",)

    def run(self, **kwargs) -> None:
        source = Path(self.document.get("source", ""))
        if source.suffix != ".ipynb":
            return
        count = 0
        for bundle in list(self.document.findall(nodes.container)):
            if bundle.get("nb_element") != "mime_bundle":
                continue
            by_type = {child.get("mime_type"): child for child in bundle.children}
            view = by_type.get(WIDGET_VIEW)
            if view is None:
                continue
            found = re.search(r'"model_id"\s*:\s*"([^"]+)"', view.astext())
            widget = _StaticWidget(_widget_state(source))
            stored = widget.render(found.group(1)) if found else None
            try:
                path = source.resolve().relative_to(Path(self.env.srcdir).resolve()).as_posix()
            except ValueError:
                path = source.name
            count += 1
            box = nodes.container(classes=["vaelib-widget"], ids=[f"stored-widget-{count}"])
            if widget.interactive or not stored:
                note = (f'<p class="vaelib-widget-note"><strong>Interactive widget:</strong> run '
                        f'this notebook in JupyterLab to use it (<code>jupyter lab {html.escape(path)}'
                        "</code>, then run the cells down to this one). "
                        + ("Below is its view as stored when the notebook was last run.</p>" if stored
                           else "Below is its text summary.</p>"))
                box += nodes.raw("", note, format="html")
            if stored:
                box += nodes.raw("", f'<div class="vaelib-widget-view">{stored}</div>', format="html")
            elif "text/plain" in by_type:
                box.extend(child.deepcopy() for child in by_type["text/plain"].children)
            body = [box]
            bundle.replace_self(body)


# -- link check of the built pages ---------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") in ("canonical",)):
                self.refs.append((tag, attrs[key]))


def _check_links(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    pages = {p: None for p in outdir.rglob("*.html")}
    parsed: dict[Path, _Links] = {}

    def parse(page: Path) -> _Links:
        if page not in parsed:
            links = _Links()
            links.feed(page.read_text("utf-8", errors="replace"))
            parsed[page] = links
        return parsed[page]

    broken = 0
    for page in pages:
        if "_static" in page.relative_to(outdir).parts:
            continue
        for tag, ref in parse(page).refs:
            parts = urlsplit(ref)
            if parts.scheme or parts.netloc or ref.startswith(("#", "javascript:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            problem = None
            if not target.is_file():
                problem = "no such file"
            elif outdir.resolve() not in target.parents:
                problem = "outside the site"
            elif parts.fragment and target.suffix == ".html" and target != page.resolve():
                if unquote(parts.fragment) not in parse(target).ids:
                    problem = f"no #{parts.fragment} in {target.name}"
            if problem:
                broken += 1
                logger.warning("broken link in %s: <%s %s> (%s)", page.relative_to(outdir).as_posix(),
                               tag, ref, problem, type="vaelib_site", subtype="broken_link")
    logger.info("vaelib_site: checked the links of %d pages, %d broken", len(pages), broken)


# -- myst-nb's output folder ---------------------------------------------------------------------

def _move_output_folder(app: Sphinx) -> None:
    config = getattr(app.env, "mystnb_config", None)
    if config is None:
        return
    build = Path(app.doctreedir).resolve().parent
    changes = {"output_folder": str(build / "jupyter_execute")}
    if not app.config.nb_execution_cache_path:
        changes["execution_cache_path"] = str(build / ".jupyter_cache")
    app.env.mystnb_config = config.copy(**changes)


def setup(app: Sphinx) -> dict:
    app.add_config_value("site_nav_guide", "notebooks/README", "env", str)
    app.add_config_value("site_nav_notebooks", "notebooks/[0-9][0-9]_*.ipynb", "env", str)
    app.add_config_value("site_nav_capstones", "notebooks/capstone_part*_starter.ipynb", "env", str)
    app.add_config_value("site_nav_reference", [], "env", list)
    app.add_config_value("site_api_doc", "docs/api", "env", str)
    app.add_config_value("site_api_package", "vaelib", "env", str)
    app.connect("source-read", _source_read)
    app.connect("builder-inited", _move_output_folder, priority=900)   # after myst-nb's (500)
    app.connect("build-finished", _check_links)
    app.add_post_transform(StoredWidgetView)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
