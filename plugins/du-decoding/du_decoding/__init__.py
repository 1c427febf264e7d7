"""Channel decoding for du-framework: binary linear codes over BPSK/AWGN, BP and min-sum decoders, learned and not."""

__version__ = "0.1.0"
