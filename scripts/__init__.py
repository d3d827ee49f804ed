"""Runner and maintenance scripts (a package, so tests and benchmarks import them by name)."""
