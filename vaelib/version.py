"""The version of vaelib, recorded in every checkpoint it writes."""
__version__ = "0.2.0"
