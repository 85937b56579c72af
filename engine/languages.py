"""Language names the model was trained with, and the ISO codes users type for them."""

from __future__ import annotations

from .errors import Qwen3ASRError

# ISO 639 codes -> the model's canonical language names (SUPPORTED_LANGUAGES in qwen_asr/inference/utils.py).
ISO_CODES = {
    "ar": "Arabic",
    "yue": "Cantonese",
    "zh": "Chinese",
    "cs": "Czech",
    "da": "Danish",
    "nl": "Dutch",
    "en": "English",
    "fil": "Filipino",
    "tl": "Filipino",
    "fi": "Finnish",
    "fr": "French",
    "de": "German",
    "el": "Greek",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "mk": "Macedonian",
    "ms": "Malay",
    "fa": "Persian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "es": "Spanish",
    "sv": "Swedish",
    "th": "Thai",
    "tr": "Turkish",
    "vi": "Vietnamese",
}
NAME_TO_ISO = {name: code for code, name in ISO_CODES.items() if code != "tl"}


def canonical_language(value: str, supported: tuple[str, ...] | list[str]) -> str:
    """The model's own name for `value` (a name in any case, or an ISO code), or a clear error."""
    key = value.strip()
    by_lower = {name.lower(): name for name in supported}
    name = by_lower.get(key.lower()) or ISO_CODES.get(key.lower().replace("_", "-").split("-")[0])
    if name is None or (supported and name not in supported):
        choices = ", ".join(sorted(supported)) if supported else "none listed"
        raise Qwen3ASRError(f"unknown language {value!r} for this model; choose one of: {choices}")
    return name


def normalize_detected(name: str) -> str:
    """The official normalisation of a detected language name: first letter upper, the rest lower."""
    name = name.strip()
    return name[:1].upper() + name[1:].lower() if name else name


# Names -> ISO 639-2/T codes, for containers' language tags (Matroska and MP4 take these three-letter codes).
ISO639_2 = {
    "Arabic": "ara",
    "Cantonese": "yue",
    "Chinese": "zho",
    "Czech": "ces",
    "Danish": "dan",
    "Dutch": "nld",
    "English": "eng",
    "Filipino": "fil",
    "Finnish": "fin",
    "French": "fra",
    "German": "deu",
    "Greek": "ell",
    "Hindi": "hin",
    "Hungarian": "hun",
    "Indonesian": "ind",
    "Italian": "ita",
    "Japanese": "jpn",
    "Korean": "kor",
    "Macedonian": "mkd",
    "Malay": "msa",
    "Persian": "fas",
    "Polish": "pol",
    "Portuguese": "por",
    "Romanian": "ron",
    "Russian": "rus",
    "Spanish": "spa",
    "Swedish": "swe",
    "Thai": "tha",
    "Turkish": "tur",
    "Vietnamese": "vie",
}
