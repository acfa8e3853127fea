"""Elaboration to Verilog, configs, synthesis and timing flows, area reports and sweeps."""
