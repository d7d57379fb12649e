"""Spec and status models of ImageTemplate and ImageBuild, validation, conversion from AIB JSON."""
