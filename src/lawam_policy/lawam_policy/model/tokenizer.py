"""Tokenizers for the VLM prior.

The paper preset uses Qwen3-VL's own tokenizer, loaded from local files. The `tiny` preset (and any build
without files) uses a small byte-level BPE built here in code, carrying Qwen3-VL's special tokens, so
`LaWAMPolicy(LaWAMConfig.from_preset("tiny"))` needs no file at all. The build is deterministic.
"""
from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

# Qwen3-VL special tokens (same strings as the real tokenizer; ids differ in the builtin one).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# A small fixed corpus of manipulation language, so common words get merged into few tokens.
_CORPUS = """
pick up the red block and place it in the basket. open the top drawer of the cabinet. close the drawer.
put the bowl on the plate. fold the towel in half. move the can to the pot. stack the bowls. push the button.
turn on the stove and put the moka pot on it. put both the alphabet soup and the tomato sauce in the basket.
put the black bowl on the wooden cabinet. pick the bottle with the left arm and the cup with the right arm.
place the shoe on the mat. scan the object. open the laptop. put the object into the cabinet. grasp the handle.
""" * 4


def build_builtin_tokenizer(vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE (256 byte symbols + merges learned on a fixed corpus) with Qwen3-VL specials."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([line for line in _CORPUS.splitlines() if line.strip()], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL_TOKENS[1:])


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Tokenizer files from a local directory (a Qwen3-VL snapshot or a LaWAM checkpoint); never downloads."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def special_ids(tokenizer) -> dict:
    ids = {}
    for name, token in (("vision_start", "<|vision_start|>"), ("vision_end", "<|vision_end|>"),
                        ("image_pad", "<|image_pad|>"), ("pad", "<|endoftext|>")):
        i = tokenizer.convert_tokens_to_ids(token)
        if i is None or i == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer lacks the Qwen3-VL special token {token}")
        ids[name] = int(i)
    return ids
