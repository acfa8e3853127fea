"""cocotb testbenches, their runner and vectors drawn from ``sw``."""
