"""The script copied to a Jetson and run there (Python 3.6+, no imports from this package)."""
