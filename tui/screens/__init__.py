"""The screens of the glasskey TUI; each is a thin view over the core services."""
