"""cocotb testbenches that draw expected values from ``sw``. Arrives with issue 3."""
