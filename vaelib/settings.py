"""Moved to ``vaelib.course.settings`` (the course harness has its own subpackage); this path goes in vaelib 0.3."""
from .deprecation import moved_module

moved_module("vaelib.settings", "vaelib.course.settings", __name__)
