"""``python -m mcpprof.examples``: run the bundled example server (same options as ``.server``)."""

from .server import main

main()
