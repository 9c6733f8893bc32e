"""The VLM prior: Qwen3-VL (transformers' own classes) cut to its first 16 text layers, with its vision tower.

One causal sequence per sample:

    [primary image] [instruction] [M latent-action queries] [aux images] [H action queries]

so the latent queries see only the primary image and the instruction, and the action queries see everything.
The M latent query states are pooled into z_hat (shape of z). The action queries carry the physical time of
their action token; their output states become the expert's per-token query embeddings.

In training the sequence runs in two passes that share one key/value cache: the prefix (everything before
the action queries) and then the action queries. Knowledge Insulation lives in the second pass: with
`insulate=True` it reads a detached copy of the prefix cache and runs the layers with detached weights, so a
loss on its outputs (flow matching) reaches the action-query embeddings through the layers' activations but
never the VLM weights, the prefix or the vision tower. At inference nothing needs insulating and the whole
sequence runs in one pass (`fused_queries=True`), so the VLM weights are read once per chunk.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import safe_open
from torch.func import functional_call
from transformers import DynamicCache, Qwen3VLConfig, Qwen3VLModel

from .features import normalize
from .layers import TimeEmbedder

QWEN_MEAN = (0.5, 0.5, 0.5)
QWEN_STD = (0.5, 0.5, 0.5)


def build_qwen3vl_config(qwen3vl: dict, num_layers: int) -> Qwen3VLConfig:
    text = dict(qwen3vl["text_config"], num_hidden_layers=num_layers)
    text.pop("layer_types", None)  # derived from num_hidden_layers; a stale list would not match
    cfg = Qwen3VLConfig(text_config=text, vision_config=dict(qwen3vl["vision_config"]))
    cfg.text_config._attn_implementation = "sdpa"
    cfg.vision_config._attn_implementation = "sdpa"
    return cfg


def qwen_patchify(unit_images: torch.Tensor, patch: int, merge: int, temporal: int):
    """(N, 3, S, S) in [0, 1] -> Qwen3-VL `pixel_values` (N*S*S/patch^2, 3*temporal*patch^2) and grid_thw.

    Same layout as Qwen's image processor: patches ordered by merge window, a still image repeated over the
    temporal patch.
    """
    x = normalize(unit_images, QWEN_MEAN, QWEN_STD)
    n, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    x = x.reshape(n, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # n, gh/m, gw/m, m, m, c, p, p
    x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, temporal, -1, -1)
    pixel_values = x.reshape(n * gh * gw, c * temporal * patch * patch)
    grid_thw = torch.tensor([[1, gh, gw]] * n, dtype=torch.long, device=x.device)
    return pixel_values, grid_thw


class QueryAggregator(nn.Module):
    """Attention pooling of the M latent-query states into z_hat (z_tokens x z_dim), then an MLP."""

    def __init__(self, hidden: int, width: int, z_tokens: int, z_dim: int):
        super().__init__()
        self.proj = nn.Linear(hidden, width)
        self.queries = nn.Parameter(torch.randn(1, z_tokens, width) * 0.02)
        self.attn = nn.MultiheadAttention(width, max(1, width // 64), batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, z_dim))

    def forward(self, states):
        kv = self.proj(states)
        pooled, _ = self.attn(self.queries.expand(states.shape[0], -1, -1), kv, kv, need_weights=False)
        return self.mlp(pooled)


class VLMPrior(nn.Module):
    def __init__(self, config, tokenizer, special: dict):
        super().__init__()
        self.cfg = config
        self.tokenizer = tokenizer
        self.special = special
        self.qwen = Qwen3VLModel(build_qwen3vl_config(config.qwen3vl, config.vlm_layers))
        hidden = config.vlm_hidden
        if len(tokenizer) > config.qwen3vl["text_config"]["vocab_size"]:
            raise ValueError(f"tokenizer has {len(tokenizer)} tokens, more than the VLM vocabulary")
        # The learned query embeddings (the only VLM-side parameters the flow-matching loss may update).
        self.latent_queries = nn.Parameter(torch.randn(1, config.num_latent_queries, hidden) * 0.02)
        self.action_query = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.action_time = TimeEmbedder(hidden, config.time_code_dim, config.time_min_period_s,
                                        config.time_max_period_s)
        self.aggregator = QueryAggregator(hidden, config.aggregator_width, config.z_tokens, config.z_dim)
        vis = config.qwen3vl["vision_config"]
        side = config.image_size // vis["patch_size"] // vis["spatial_merge_size"]
        self.tokens_per_image = side * side

    def action_query_parameters(self) -> list:
        """The action-query embeddings: the only VLM-side parameters the flow-matching loss updates."""
        return [self.action_query, *self.action_time.parameters()]

    # ------------------------------------------------------------------ sequence layout
    def _tokenize(self, instructions: list[str]) -> list[list[int]]:
        ids = self.tokenizer(list(instructions), add_special_tokens=False)["input_ids"]
        return [x[: self.cfg.max_instruction_tokens] for x in ids]

    def build_layout(self, num_images: int, instructions: list[str], action_valid: torch.Tensor, device):
        """Token ids, modality types, validity and the index of each segment for the whole batch."""
        B, H = action_valid.shape
        sp = self.special
        image = [sp["vision_start"]] + [sp["image_pad"]] * self.tokens_per_image + [sp["vision_end"]]
        text = self._tokenize(instructions)
        L = max(len(t) for t in text)
        M = self.cfg.num_latent_queries
        ids, valid = [], []
        for b, t in enumerate(text):
            pad = L - len(t)
            seq = image + t + [sp["pad"]] * pad + [sp["pad"]] * M + image * (num_images - 1)
            ok = [1] * (len(image) + len(t)) + [0] * pad + [1] * (M + len(image) * (num_images - 1))
            ids.append(seq + [sp["pad"]] * H)
            valid.append(ok + action_valid[b].long().tolist())
        ids = torch.tensor(ids, dtype=torch.long, device=device)
        valid = torch.tensor(valid, dtype=torch.long, device=device)
        types = (ids == sp["image_pad"]).int()
        latent_start = len(image) + L
        return dict(ids=ids, valid=valid, types=types, latent=slice(latent_start, latent_start + M),
                    prefix_len=ids.shape[1] - H)

    # ------------------------------------------------------------------ passes
    def action_query_embeds(self, times: torch.Tensor) -> torch.Tensor:
        """(B, H) seconds -> (B, H, hidden): the shared action-query embedding + the token's physical time."""
        B, H = times.shape
        dtype = self.qwen.language_model.embed_tokens.weight.dtype
        return (self.action_query + self.action_time(times.reshape(-1)).view(B, H, -1)).to(dtype)

    def encode_prefix(self, unit_images: torch.Tensor, instructions: list[str], action_times: torch.Tensor,
                      action_valid: torch.Tensor, fused_queries: bool = False):
        """unit_images (B, V, 3, S, S) in [0, 1] (first view = primary). Runs the vision tower and the prefix.

        Returns a state dict for `encode_action_queries` plus `prefix` (B, P, hidden), `prefix_valid` (B, P) and
        `latent_states` (B, M, hidden). With `fused_queries` (inference: nothing to insulate) the action queries
        run in the same pass, so the VLM weights are read once per chunk; their states are in `queries`.
        """
        B, V = unit_images.shape[:2]
        qwen = self.qwen
        device = qwen.language_model.embed_tokens.weight.device
        dtype = qwen.language_model.embed_tokens.weight.dtype
        lay = self.build_layout(V, instructions, action_valid, device)
        vis = qwen.config.vision_config
        pixel_values, grid = qwen_patchify(unit_images.flatten(0, 1).to(device, torch.float32), vis.patch_size,
                                           vis.spatial_merge_size, vis.temporal_patch_size)
        vis_out = qwen.visual(pixel_values.to(dtype), grid_thw=grid)
        position_ids, _ = qwen.get_rope_index(lay["ids"], lay["types"], image_grid_thw=grid,
                                              attention_mask=lay["valid"])
        P = lay["prefix_len"]
        ids = lay["ids"][:, :P]
        embeds = qwen.language_model.embed_tokens(ids)
        image_mask = (ids == self.special["image_pad"])
        embeds = embeds.masked_scatter(image_mask[..., None], vis_out.pooler_output.to(dtype))
        latent = torch.zeros(B, P, dtype=torch.bool, device=device)
        latent[:, lay["latent"]] = True
        embeds = embeds.masked_scatter(latent[..., None],
                                       self.latent_queries.to(dtype).expand(B, -1, -1).reshape(-1))
        deepstack = [d.to(dtype) for d in vis_out.deepstack_features]
        state = dict(prefix_valid=lay["valid"][:, :P].bool(), valid=lay["valid"], position_ids=position_ids,
                     prefix_len=P, action_times=action_times)
        if fused_queries:
            H = action_times.shape[1]
            embeds = torch.cat([embeds, self.action_query_embeds(action_times)], dim=1)
            image_mask = torch.cat([image_mask, image_mask.new_zeros(B, H)], dim=1)
            out = qwen.language_model(inputs_embeds=embeds, attention_mask=lay["valid"], position_ids=position_ids,
                                      use_cache=False, visual_pos_masks=image_mask, deepstack_visual_embeds=deepstack)
            state["queries"] = out.last_hidden_state[:, P:]
        else:
            state["cache"] = DynamicCache(config=qwen.config.text_config)
            out = qwen.language_model(inputs_embeds=embeds, attention_mask=lay["valid"][:, :P],
                                      position_ids=position_ids[:, :, :P], cache=state["cache"], use_cache=True,
                                      visual_pos_masks=image_mask, deepstack_visual_embeds=deepstack)
        state["prefix"] = out.last_hidden_state[:, :P]
        state["latent_states"] = state["prefix"][:, lay["latent"]]
        return state

    def encode_action_queries(self, state: dict, insulate: bool) -> torch.Tensor:
        """The action-query pass over the cached prefix -> (B, H, hidden)."""
        lm = self.qwen.language_model
        queries = self.action_query_embeds(state["action_times"])
        P = state["prefix_len"]
        kwargs = dict(inputs_embeds=queries, attention_mask=state["valid"],
                      position_ids=state["position_ids"][:, :, P:], use_cache=True)
        if insulate:
            # Knowledge Insulation: detached prefix keys/values and detached layer weights.
            cache = DynamicCache(ddp_cache_data=[(k.detach(), v.detach()) for k, v, _ in state["cache"]],
                                 config=self.qwen.config.text_config)
            params = {name: p.detach() for name, p in lm.named_parameters()}
            out = functional_call(lm, params, args=(), kwargs=dict(kwargs, cache=cache))
        else:
            out = lm(**kwargs, cache=state["cache"])
        return out.last_hidden_state

    def aggregate(self, latent_states: torch.Tensor) -> torch.Tensor:
        """(B, M, hidden) latent-query states -> z_hat (B, z_tokens, z_dim) float32."""
        return self.aggregator(latent_states.to(self.aggregator.proj.weight.dtype)).float()


# ---------------------------------------------------------------------- pretrained weights
def read_qwen3vl_snapshot_config(path: str | Path) -> dict:
    """Text and vision config dicts of a local Qwen3-VL snapshot (a `config.json`)."""
    cfg = Qwen3VLConfig.from_pretrained(str(path), local_files_only=True)
    keep_text = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps",
                 "rope_parameters", "attention_bias", "tie_word_embeddings")
    keep_vision = ("depth", "hidden_size", "intermediate_size", "num_heads", "out_hidden_size", "patch_size",
                   "spatial_merge_size", "temporal_patch_size", "num_position_embeddings",
                   "deepstack_visual_indexes", "hidden_act")
    text = {k: getattr(cfg.text_config, k) for k in keep_text if hasattr(cfg.text_config, k)}
    vision = {k: getattr(cfg.vision_config, k) for k in keep_vision if hasattr(cfg.vision_config, k)}
    vision["deepstack_visual_indexes"] = list(vision["deepstack_visual_indexes"])
    return json.loads(json.dumps(dict(text_config=text, vision_config=vision)))


def load_qwen3vl_weights(qwen: Qwen3VLModel, path: str | Path) -> None:
    """Copy a local Qwen3-VL snapshot's weights into `qwen`, keeping only its first text layers."""
    path = Path(path)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in Qwen3-VL snapshot {path}")
    n_layers = len(qwen.language_model.layers)
    wanted = qwen.state_dict()
    loaded = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                name = key[len("model."):] if key.startswith("model.") else key
                if name.startswith("lm_head"):
                    continue
                if name.startswith("language_model.layers."):
                    if int(name.split(".")[2]) >= n_layers:
                        continue  # the truncated layers
                if name not in wanted:
                    raise ValueError(f"unexpected tensor {key!r} in Qwen3-VL snapshot {path}")
                loaded[name] = f.get_tensor(key)
    missing = sorted(set(wanted) - set(loaded))
    if missing:
        raise ValueError(f"Qwen3-VL snapshot {path} lacks {len(missing)} tensors, e.g. {missing[:3]}")
    qwen.load_state_dict(loaded, strict=True)
