"""The command line: thin verbs over the library; messages to stderr, data to files."""
