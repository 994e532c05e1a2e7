"""Reusable widgets of the glasskey TUI."""
