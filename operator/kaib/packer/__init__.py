"""Packer template rendering (pure)."""
