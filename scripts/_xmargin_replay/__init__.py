"""Crash replay behind `python -m scripts.replay` (`make replay`).

  prices     data loading, scenarios, OHLC path, Chainlink publication rule (pure)
  processes  child processes in their own groups, stopped on every exit path
  runner     anvil + `ape run deploy` + population + keeper process + the replay loop
  report     figures read back from the chain; Markdown + JSON
  plots      PNG plots (matplotlib, Agg)

The folder name starts with "_" so `ape run` does not list it as a script.
"""
