"""Built-in post-processing: a user's replacement table, and Chinese inverse text normalization."""

from dataclasses import replace

from ..engine.itn import chinese_itn
from ..hookspecs import hookimpl


def _rewrite_segment(segment, rewrite):
    text = rewrite(segment.text)
    if text == segment.text:
        return None
    words = segment.words
    if words:
        new = [rewrite(w.word) for w in words]
        # Word-wise rewriting keeps the words joining to the text; if a rule spans words, fold into the first.
        if "".join(new) != text:
            new = [text] + [""] * (len(words) - 1)
        words = tuple(replace(w, word=n) for w, n in zip(words, new, strict=True) if n or w is words[0])
    return replace(segment, text=text, words=words)


def _replacer(pairs):
    def rewrite(text: str) -> str:
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    return rewrite


@hookimpl(trylast=True)
def postprocess_segment(segment, language, options):
    """`options["replacements"]`: (old, new) pairs applied in order; `options["itn"]`: Chinese numbers."""
    out = segment
    pairs = (options or {}).get("replacements") or []
    if pairs:
        out = _rewrite_segment(out, _replacer(pairs)) or out
    if (options or {}).get("itn") and (language or out.language) in ("Chinese", "Cantonese"):
        out = _rewrite_segment(out, chinese_itn) or out
    return out if out is not segment else None
