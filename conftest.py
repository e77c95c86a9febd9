"""Repository-level pytest configuration: the plugin comes from its entry point."""
