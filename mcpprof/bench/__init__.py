"""Driving MCP servers under measurement: a lean stdio client (:mod:`.client`) and the closed-loop
workload behind ``mcpprof profile`` (:mod:`.drive`)."""
