"""Moved to ``vaelib.course.checks`` (the course harness has its own subpackage); this path goes in vaelib 0.3."""
from .deprecation import moved_module

moved_module("vaelib.checks", "vaelib.course.checks", __name__)
