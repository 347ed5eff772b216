"""Exporters: pure functions ``Profile -> bytes``, one module per format, one registry.

:mod:`mcpprof.export.registry` lists them (``EXPORTERS``, ``get_exporter``, ``guess_from_filename``);
each format module exposes ``render(profile, **options) -> bytes``; :mod:`mcpprof.export.tree` holds
the views they share (value-type resolution, display names, the pruned call tree).
"""
