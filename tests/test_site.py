"""The course website (`.ci/site`): it builds, its links hold, and a real browser shows its pages.

The site is built once, by `.ci/site`, into a temporary folder (the work tree is left as it was).
The browser checks open built pages in headless Chromium (Debian's `chromium`): MathJax typesets
every formula (no raw TeX left), every image loads, widgets show their stored view and the note.
Set SITE_SCREENSHOTS=/some/dir to keep the screenshots for a look.
"""
from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE_SCRIPT = ROOT / ".ci" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"),
                   key=lambda p: (int(re.match(r"\d+", p.name).group()), p.name))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# TeX that MathJax would have replaced: delimiters, and commands the notebooks use
RAW_TEX = r"\$\$|\\[(\[]|\\(frac|mathrm|mathbb|mathcal|operatorname|begin\{|sum|sigma|mu|log)"
NOTE = "Interactive widget: run this notebook in JupyterLab to use it"

_missing = [name for name in ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx-mathjax-offline")
            if importlib.util.find_spec(name) is None]
pytestmark = pytest.mark.skipif(bool(_missing), reason=(
    f"the site's tools are not installed ({', '.join(_missing)}): pip install -e \".[site]\""))

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=(
    "no headless browser: apt-get install chromium (Debian's package) to run the browser checks"))


def build(source_root: Path, out: Path, doctrees: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(source_root), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(["bash", str(source_root / ".ci" / "site"), str(out), str(doctrees)],
                          cwd=source_root, env=env, capture_output=True, text=True, timeout=600)


def git_status() -> str:
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=ROOT, capture_output=True, text=True).stdout
    leftovers = [p for p in ("jupyter_execute", ".jupyter_cache", "docs/jupyter_execute") if (ROOT / p).exists()]
    return status + "".join(f"left behind: {p}\n" for p in leftovers)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built by `.ci/site` into a temporary folder."""
    tmp = tmp_path_factory.mktemp("site")
    before = git_status()
    result = build(ROOT, tmp / "html", tmp / "doctrees")
    assert result.returncode == 0, f"the site build failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    after = git_status()
    assert after == before, "building the site changed the work tree:\n" + "\n".join(
        sorted(set(after.splitlines()) - set(before.splitlines())))
    return tmp / "html"


class Page(HTMLParser):
    """Links, images, scripts, ids and the nav of one built page."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.path = path
        self.refs: list[tuple[str, str, dict]] = []
        self.ids: set[str] = set()
        self.nav_links: list[list[str]] = []   # [href, text] of each link of the site navigation
        self._nav_depth = 0
        self._in_nav_link = False
        self.feed(path.read_text("utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "nav" and "bd-docs-nav" in (attrs.get("class") or ""):
            self._nav_depth = 1
        elif self._nav_depth and tag == "nav":
            self._nav_depth += 1
        for key in ("href", "src"):
            if attrs.get(key):
                self.refs.append((tag, attrs[key], attrs))
        if self._nav_depth and tag == "a" and attrs.get("href"):
            self.nav_links.append([attrs["href"], ""])
            self._in_nav_link = True

    def handle_data(self, data):
        if self._in_nav_link:
            self.nav_links[-1][1] += data

    def handle_endtag(self, tag):
        if tag == "a":
            self._in_nav_link = False
        if self._nav_depth and tag == "nav":
            self._nav_depth -= 1


def resolve(page: Path, ref: str) -> Path | None:
    """The file a relative reference names, or None for an external or in-page one."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return (page.parent / unquote(parts.path)).resolve()


# -- the build -------------------------------------------------------------------------------------

def test_every_page_is_built(site):
    assert (site / "README.html").is_file()
    assert 'url=README.html' in (site / "index.html").read_text("utf-8"), "index.html leads to the front page"
    for notebook in NOTEBOOKS:
        assert (site / "notebooks" / (notebook.stem + ".html")).is_file(), notebook.name
    for page in ("notebooks/README.html", "docs/api.html", "pretrained/README.html",
                 "benchmarks/RESULTS.html"):
        assert (site / page).is_file(), page


def test_the_navigation_is_the_learning_path(site):
    nav = {urlsplit(href).path: " ".join(text.split()) for href, text in Page(site / "README.html").nav_links}
    in_order = [path for path in nav if path.startswith("notebooks/")]
    starters = sorted((ROOT / "notebooks").glob("capstone_part*_starter.ipynb"))
    assert in_order == ["notebooks/README.html"] + [f"notebooks/{n.stem}.html" for n in NOTEBOOKS + starters]
    assert [nav[f"notebooks/{n.stem}.html"] for n in starters] == ["Part 1 starter", "Part 2 starter"]
    # titled as in the guide's table, not by file name
    assert nav["notebooks/03_kl_divergence.html"] == "03 KL divergence"
    for page in ("docs/api.html", "pretrained/README.html", "benchmarks/RESULTS.html"):
        assert page in nav, f"{page} is not in the navigation"


def test_readme_links_lead_to_built_pages(site):
    page = Page(site / "README.html")
    hrefs = {urlsplit(ref).path for tag, ref, _ in page.refs if tag == "a"}
    for target in ("notebooks/README.html", "notebooks/05_training_a_vae.html",
                   "pretrained/README.html", "benchmarks/RESULTS.html"):
        assert target in hrefs, f"README.md's link to {target} is not on the front page"
    images = [ref for tag, ref, _ in page.refs if tag == "img"]
    assert len(images) >= 2 and all((site / img).is_file() for img in images), images


def test_no_broken_relative_link_on_any_page(site):
    broken = []
    for path in site.rglob("*.html"):
        if "_static" in path.relative_to(site).parts:
            continue
        for tag, ref, attrs in Page(path).refs:
            target = resolve(path, ref)
            if target is not None and not (target.is_file() or (target / "index.html").is_file()):
                broken.append(f"{path.relative_to(site)}: <{tag} {ref}>")
    assert not broken, "\n".join(broken)


def test_the_site_needs_no_network(site):
    """Scripts, styles and fonts are all local: the site works offline (MathJax included)."""
    remote = []
    for path in site.rglob("*.html"):
        for tag, ref, attrs in Page(path).refs:
            if tag == "script" or (tag == "link" and "stylesheet" in attrs.get("rel", "")):
                if urlsplit(ref).scheme in ("http", "https") or ref.startswith("//"):
                    remote.append(f"{path.relative_to(site)}: {ref}")
    assert not remote, "\n".join(remote)
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


class ProseText(HTMLParser):
    """The text of a page outside math, code and scripts: where raw TeX must not be left."""

    SKIP = {"pre", "code", "script", "style", "textarea"}
    VOID = {"br", "img", "hr", "input", "meta", "link", "wbr", "source", "col", "area", "base"}

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []      # per open element: is the text inside it skipped?
        self.text: list[str] = []
        self.feed(path.read_text("utf-8"))

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        skip = tag in self.SKIP or "math" in classes or "highlight" in classes
        self.stack.append(skip or bool(self.stack and self.stack[-1]))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not (self.stack and self.stack[-1]):
            self.text.append(data)


def test_no_raw_tex_in_the_prose_of_any_notebook_page(site):
    """Every formula of every notebook became a math element (MathJax typesets those)."""
    raw = re.compile(RAW_TEX)
    for notebook in NOTEBOOKS:
        text = " ".join(ProseText(site / "notebooks" / (notebook.stem + ".html")).text)
        found = [text[max(m.start() - 40, 0):m.end() + 40] for m in raw.finditer(text)]
        assert not found, f"{notebook.name}: raw TeX outside math: {found[:3]}"


def widget_outputs(notebook: Path) -> list[dict]:
    """The stored widget trees of a notebook's widget outputs: {model_id: model_name} each."""
    content = json.loads(notebook.read_text("utf-8"))
    state = content["metadata"].get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    trees = []
    for cell in content["cells"]:
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                todo, tree = [output["data"][WIDGET_VIEW]["model_id"]], {}
                while todo:
                    model_id = todo.pop()
                    if model_id in state and model_id not in tree:
                        tree[model_id] = state[model_id]["model_name"]
                        todo += re.findall(r"IPY_MODEL_(\w+)", json.dumps(state[model_id]["state"]))
                trees.append(tree)
    return trees


def test_widgets_show_their_stored_view_and_the_note(site):
    counted = 0
    for notebook in NOTEBOOKS:
        trees = widget_outputs(notebook)
        controls = [t for t in trees if any(re.search(r"Slider|Button|Dropdown|Text|Checkbox|Play", name)
                                            for name in t.values())]
        text = (site / "notebooks" / (notebook.stem + ".html")).read_text("utf-8")
        assert text.count('class="vaelib-widget-view"') == len(trees), notebook.name
        assert text.count('class="vaelib-widget-note"') == len(controls), notebook.name
        assert f'<script type="{WIDGET_VIEW}"' not in text   # no dead widget placeholders
        counted += len(controls)
    if counted == 0:
        pytest.skip("no notebook stores an interactive widget")
    page = (site / "notebooks" / "07_exploring_the_latent_space.html").read_text("utf-8")
    views = page.split('class="vaelib-widget-view"')[1:]
    assert views and all("vw-slider" in view.split("vaelib-widget")[0] for view in views)
    assert 'src="data:image/png;base64,' in page, "the picture the explorer showed is there"


def test_model_answers_are_folded_not_headings(site):
    page = (site / "notebooks" / "03_kl_divergence.html").read_text("utf-8")
    assert not re.search(r"<h\d[^>]*>[^<]*(BEGIN|END) SOLUTION", page)
    assert '<details class="vaelib-solution"><summary>Model answer</summary>' in page


def test_a_broken_link_fails_the_build(tmp_path):
    """The guard is real: a copy of the sources with broken links does not build."""
    copy = tmp_path / "src"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pth", ".ipynb_checkpoints", "_site", "build")
    for name in ("README.md", "notebooks", "docs", "vaelib", "figures", "pretrained", "benchmarks", ".ci"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=ignore)
        else:
            shutil.copy2(source, copy / name)
    readme = copy / "README.md"
    text = readme.read_text("utf-8")
    assert "(notebooks/05_training_a_vae.ipynb)" in text
    readme.write_text(text.replace("(notebooks/05_training_a_vae.ipynb)", "(notebooks/05_training_a_vea.ipynb)"))
    guide = copy / "notebooks" / "README.md"
    guide.write_text(guide.read_text("utf-8") + '\n<a href="10_not_written_yet.html">next</a>\n')

    result = build(copy, tmp_path / "html", tmp_path / "doctrees")
    log = result.stdout + result.stderr
    assert result.returncode != 0, "a build with broken links succeeded:\n" + log[-3000:]
    assert "05_training_a_vea" in log, log[-3000:]             # a Markdown link (myst)
    assert "10_not_written_yet.html" in log, log[-3000:]       # a raw HTML link (the page check)


# -- in a browser ------------------------------------------------------------------------------------

PROBE = """<script>
const RAW_TEX = new RegExp(RAW_TEX_SOURCE);
window.addEventListener("load", () => {
  const done = () => {
    const skip = el => el.closest("pre, code, script, style, mjx-container, .highlight, textarea");
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const raw = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!skip(n.parentElement) && RAW_TEX.test(n.textContent))
        raw.push(n.textContent.trim().slice(0, 80));
    }
    const math = [...document.querySelectorAll("span.math, div.math")];
    const result = {
      mathjax: window.MathJax && window.MathJax.version,
      math: math.length,
      typeset: math.filter(m => m.querySelector("mjx-container")).length,
      containers: document.querySelectorAll("mjx-container").length,
      errors: document.querySelectorAll("mjx-merror").length,
      raw: raw,
      images: [...document.images].map(i => ({src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0,
                                               width: i.naturalWidth})),
      notes: [...document.querySelectorAll(".vaelib-widget-note")].map(n => n.textContent),
    };
    const out = document.createElement("pre");
    out.id = "site-probe";
    out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  };
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(done, done);
  else done();
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                           "--virtual-time-budget=15000", *args],
                          capture_output=True, text=True, timeout=120)


def probe(site: Path, page: str) -> dict:
    """What the browser reports about a built page once MathJax has run."""
    path = site / page
    copy = path.with_name("_probe_" + path.name)   # same folder: the same relative links
    script = PROBE.replace("RAW_TEX_SOURCE", json.dumps(RAW_TEX))
    copy.write_text(path.read_text("utf-8").replace("</body>", script + "</body>"), "utf-8")
    result = chromium("--window-size=1280,2000", "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="site-probe"[^>]*>(.*?)</pre>', result.stdout, flags=re.S)
    assert found, f"the page did not finish in the browser:\n{result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(site: Path, page: str, name: str, height: int = 2000) -> Path:
    shot = site.parent / name
    chromium(f"--window-size=1280,{height}", f"--screenshot={shot}", (site / page).as_uri())
    assert shot.is_file(), f"no screenshot of {page}"
    if os.environ.get("SITE_SCREENSHOTS"):
        keep = Path(os.environ["SITE_SCREENSHOTS"])
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, keep / name)
    return shot


def assert_not_blank(shot: Path):
    from PIL import Image
    histogram = Image.open(shot).convert("L").histogram()
    dark = sum(histogram[:200]) / sum(histogram)      # text, figures, formulas
    assert dark > 0.01, f"{shot.name} is (nearly) blank: {dark:.1%} dark pixels"


def assert_images_load(site: Path, page: str, images: list[dict]):
    assert images, f"no image on {page}"
    for image in images:
        assert image["ok"], f"{image['src']} did not load on {page}"
        if not image["src"].startswith("data:"):
            assert resolve(site / page, image["src"]).is_file(), image["src"]


@needs_chromium
def test_a_notebook_page_in_a_browser(site):
    """03 (the most math): MathJax typesets every formula, every figure loads."""
    page = "notebooks/03_kl_divergence.html"
    report = probe(site, page)
    assert str(report["mathjax"]).startswith("3."), "the local MathJax 3 ran"
    assert report["math"] >= 50, report["math"]
    assert report["typeset"] == report["math"], f"{report['math'] - report['typeset']} formulas not typeset"
    assert report["containers"] >= report["math"]
    assert report["errors"] == 0, "MathJax reported TeX errors"
    assert not report["raw"], f"raw TeX left on the page: {report['raw'][:5]}"
    figures = [i for i in report["images"] if "_images/" in i["src"]]
    assert len(figures) >= 4, report["images"]
    assert_images_load(site, page, report["images"])
    assert_not_blank(screenshot(site, page, "03_kl_divergence.png"))


@needs_chromium
def test_a_widget_page_in_a_browser(site):
    """07: math typeset, figures load, every widget shows its stored picture and the note."""
    page = "notebooks/07_exploring_the_latent_space.html"
    report = probe(site, page)
    assert report["typeset"] == report["math"] > 0 and report["errors"] == 0
    assert not report["raw"], f"raw TeX left on the page: {report['raw'][:5]}"
    assert_images_load(site, page, report["images"])
    assert any(i["src"].startswith("data:image/png") for i in report["images"]), "a stored widget image"
    assert len(report["notes"]) >= 1 and all(NOTE in " ".join(n.split()) for n in report["notes"])
    assert_not_blank(screenshot(site, page, "07_exploring_the_latent_space.png", height=9000))


@needs_chromium
def test_front_page_and_api_in_a_browser(site):
    for page, name in (("README.html", "front_page.png"), ("docs/api.html", "api.png")):
        report = probe(site, page)
        assert report["errors"] == 0 and not report["raw"], page
        if page == "README.html":
            assert_images_load(site, page, report["images"])
        assert_not_blank(screenshot(site, page, name))


def test_notebook_markdown_is_prepared_as_jupyter_shows_it():
    """A formula that spans lines stays one formula; model answers fold; code fences are kept."""
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    from vaelib_site import _prepare_notebook
    source = ("text\n$$a = b\n  + c$$\nmore\n\n$$x % comment\n+ y$$\n\n```\n$$p\n+ q$$\n```\n"
              "- inline $u = v\n  + w$ in a list, `$` in code, $5 and\n\n$6 apart\n"
              "### BEGIN SOLUTION\nthe answer\n### END SOLUTION")
    notebook = {"cells": [{"cell_type": "markdown", "source": source},
                          {"cell_type": "code", "source": "### BEGIN SOLUTION\n", "outputs": []}]}
    cells = json.loads(_prepare_notebook(json.dumps(notebook)))["cells"]
    markdown = cells[0]["source"]
    assert "$$a = b + c$$" in markdown                # joined: "+ c" is no longer a list item
    assert "$$x % comment\n+ y$$" in markdown         # a TeX comment: left as it was
    assert "```\n$$p\n+ q$$\n```" in markdown         # inside a code fence: left as it was
    assert "- inline $u = v + w$ in a list, `$` in code" in markdown
    assert "$5 and\n\n$6 apart" in markdown         # across a blank line: not a formula
    assert '<details class="vaelib-solution"><summary>Model answer</summary>' in markdown
    assert "BEGIN SOLUTION" not in markdown and "</details>" in markdown
    assert cells[1]["source"] == "### BEGIN SOLUTION\n"   # code cells are not touched
