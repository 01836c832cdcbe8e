"""Left for :mod:`bot.sft.evaluate`'s import only: the model loader is :mod:`bot.local_llm.modeling`.

Delete this module once ``evaluate.py`` imports from there.
"""

from bot.local_llm.modeling import load_model, load_tokenizer

__all__ = ["load_model", "load_tokenizer"]
