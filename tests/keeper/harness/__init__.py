"""Test harness for the keeper: private anvil nodes (scripts._xmargin_sim.anvil),
the chaos RPC proxy (chaos.py) and the in-process / subprocess keeper drivers
(keeper_driver.py)."""
