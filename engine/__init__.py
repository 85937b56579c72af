"""The core engine: mel, encoder, decoder, aligner, conversion. Hosts never import this directly."""
