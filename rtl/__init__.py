"""Amaranth components of the bitmix engine (decoders, unpacker, front end, PE, rescale, top, baselines)."""
