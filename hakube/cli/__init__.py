"""Command-line entry points: ``hakube`` (components, cluster tools) and ``hakubectl``."""
