"""Moved to ``vaelib.course.coursework`` (the course harness has its own subpackage); this path goes in vaelib 0.3."""
from .deprecation import moved_module

moved_module("vaelib.coursework", "vaelib.course.coursework", __name__)
