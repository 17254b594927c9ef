"""Moved to ``vaelib.course.sample_quality`` (the course harness has its own subpackage); this path goes in vaelib 0.3."""
from .deprecation import moved_module

moved_module("vaelib.sample_quality", "vaelib.course.sample_quality", __name__)
