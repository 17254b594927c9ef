"""Moved to ``vaelib.course.widgets`` (the course harness has its own subpackage); this path goes in vaelib 0.3."""
from .deprecation import moved_module

moved_module("vaelib.widgets", "vaelib.course.widgets", __name__)
