"""User-facing errors: each message names the thing that is wrong and the fix."""


class Qwen3ASRError(Exception):
    """An error the user can act on; the CLI prints it as one line."""


class CheckpointError(Qwen3ASRError):
    """A Hugging Face checkpoint folder is missing, incomplete or of another model."""


class ModelError(Qwen3ASRError):
    """A converted model folder is missing, corrupt or of an unsupported format."""


class AudioError(Qwen3ASRError):
    """Audio input that cannot be used."""
