"""The stateful-step summary lives in tests/conftest.py (the xdist
controller, which prints it, never loads this directory's conftest)."""
