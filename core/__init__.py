"""glasskey core: crypto, storage, audit, workflows and rotation. Imports no UI."""
