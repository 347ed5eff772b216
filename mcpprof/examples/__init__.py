"""The bundled example MCP server (``python -m mcpprof.examples.server``), the default target of
``mcpprof profile``, and the arguments its tools are called with (``default_args.json``)."""
