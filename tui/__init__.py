"""glasskey's terminal interface: the Textual app (screens, widgets, .tcss) and the CLI."""
