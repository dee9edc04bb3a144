"""xmargin keeper: off-chain bot that watches cross-margin accounts and
triggers liquidations / funding updates on the xmargin contracts."""

__version__ = "0.1.0"
