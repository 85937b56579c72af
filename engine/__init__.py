"""The core engine: mel, encoder, decoder, aligner, conversion. Hosts never import this directly."""

__version__ = "0.1.0"  # the distribution's version (pyproject.toml); converted model folders record it
