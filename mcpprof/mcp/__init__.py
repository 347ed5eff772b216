"""MCP adapters: the only code that knows the MCP SDKs. Importing this package does nothing."""
