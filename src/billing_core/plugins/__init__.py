"""Plugins: hook specifications, the plugin manager, provider protocols and the built-ins. All I/O lives here."""
