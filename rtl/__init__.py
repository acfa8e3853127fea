"""Amaranth components of the bitmix engine (decoders, PE, rescale, top). Arrives with issue 3."""
