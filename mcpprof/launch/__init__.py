"""Getting mcpprof into server processes: the launcher and the in-server agent."""
