"""Channel decoding for du-framework: binary linear codes over BPSK/AWGN, BP and min-sum decoders, learned and not."""

__version__ = "0.1.0"

from .alist import AlistError, parse_alist, read_alist, write_alist
from .codes import CODES, Code, gf2_rank, load_code, systematic_generator
from .problem import BER, FER, LDPCDecoding, TannerGraph, bit_cross_entropy, bit_errors, frame_errors, noise_variance
from .solvers import (BP, Messages, MinSum, NeuralBP, NeuralMinSum, NormalizedMinSum, OffsetMinSum, min_sum_check,
                      sum_product_check)

__all__ = ["AlistError", "parse_alist", "read_alist", "write_alist", "CODES", "Code", "gf2_rank", "load_code",
           "systematic_generator", "BER", "FER", "LDPCDecoding", "TannerGraph", "bit_cross_entropy", "bit_errors",
           "frame_errors", "noise_variance", "BP", "Messages", "MinSum", "NeuralBP", "NeuralMinSum",
           "NormalizedMinSum", "OffsetMinSum", "min_sum_check", "sum_product_check"]
