"""Moved to ``vaelib.course.pretrained`` (the course harness has its own subpackage); this path goes in vaelib 0.3."""
from .deprecation import moved_module

moved_module("vaelib.pretrained", "vaelib.course.pretrained", __name__)
