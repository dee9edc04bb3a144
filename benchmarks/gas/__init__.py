"""Gas benchmark of xmargin: run_gas (make bench-gas), check_regression (make gas-check)."""
