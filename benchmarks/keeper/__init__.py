"""Keeper benchmark (`python -m benchmarks.keeper.run`)."""
