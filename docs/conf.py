"""Sphinx configuration of the course website: `.ci/site` builds it into `_site/`.

The source folder is the repository root (so every relative link in README.md and in
notebooks/README.md resolves as it does on GitHub), this folder holds only the configuration
and the pages that exist for the site alone. The notebooks are rendered from their stored
outputs; nothing is executed.

    python -m sphinx -b html -c docs -W --keep-going -E -d build/site-doctrees . _site
"""
import importlib.util
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the vaelib of this checkout, for the API reference

import vaelib  # noqa: E402

project = "vaelib"
author = "the vaelib authors"
copyright = "the vaelib authors, MIT License"
version = release = vaelib.__version__

extensions = [
    "myst_nb",                  # Markdown and stored notebooks (includes myst_parser)
    "sphinx.ext.autodoc",       # the API reference, from vaelib's docstrings
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",      # the docstrings' "Args:" / "Returns:" sections (Google style)
    "sphinx.ext.mathjax",
    "vaelib_site",              # docs/_ext: navigation, API page, widgets, link check
]

# -- What is read: the front page, the guide, the notebooks and the pages they link to ---------
root_doc = "README"
include_patterns = [
    "README.md",
    "notebooks/README.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "notebooks/capstone_part*_starter.ipynb",
    "pretrained/README.md",
    "benchmarks/RESULTS.md",
    "CHANGELOG.md",
    "docs/*.rst",
    "docs/*.md",
]
# Folders never walked (the source folder is the repository root).
exclude_patterns = [
    ".*", "_site", "build", "data", "runs", "student", "node_modules", "vaelib", "tests",
    "**.ipynb_checkpoints", "docs/_*",
]

# -- Notebooks: stored outputs only --------------------------------------------------------------
nb_execution_mode = "off"
nb_merge_streams = True
nb_ipywidgets_js = {}          # no widget JavaScript from a CDN: vaelib_site shows the stored view
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_dmath_double_inline = True   # `$$...$$` inside a paragraph is display math, as in Jupyter

# -- Math: MathJax 3 shipped by a PyPI package, so pages typeset offline --------------------------
_mathjax = importlib.util.find_spec("sphinx-mathjax-offline")
if _mathjax is None or _mathjax.origin is None:
    raise RuntimeError('MathJax for the site comes from sphinx-mathjax-offline: pip install -e ".[site]"')
mathjax_path = "mathjax/tex-chtml.js"   # under _static/

# -- API reference ------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
maximum_signature_line_length = 88   # long signatures: one parameter a line
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autosummary_generate = False

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "vaelib: a course on VAEs"
html_static_path = ["_static", str(Path(_mathjax.origin).parent / "static")]
html_css_files = ["vaelib-site.css"]
templates_path = ["_templates"]
html_additional_pages = {"index": "redirect.html"}   # index.html -> README.html, the front page
html_copy_source = True        # the download button offers each page's .ipynb / .md
html_show_sourcelink = False
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
}
html_last_updated_fmt = None

# Warnings are errors in `.ci/site` (-W): a broken link between pages, a missing page or image,
# a page outside the navigation all fail the build. One kind is let through: reStructuredText
# markup problems inside vaelib's docstrings (type "docutils"; the Markdown pages and notebooks
# report as "myst"), so that a docstring's layout cannot break the course site.
# SITE_STRICT_DOCSTRINGS=1 .ci/site  makes them errors too, to find and fix them.
suppress_warnings = [] if os.environ.get("SITE_STRICT_DOCSTRINGS") == "1" else ["docutils"]

# -- The navigation: `vaelib_site` turns this into the front page's toctree ------------------------
# The learning path is every notebooks/NN_*.ipynb in numeric order, titled as in the guide's table.
site_nav_guide = "notebooks/README"
site_nav_notebooks = "notebooks/[0-9][0-9]_*.ipynb"
site_nav_reference = ["docs/api", "pretrained/README", "benchmarks/RESULTS", "CHANGELOG"]
