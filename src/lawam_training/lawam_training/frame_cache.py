"""A DemoDataset decoded once into memory, with the frozen encoder's features computed once per frame.

Training on a CPU spends most of its time decoding video and running the frozen DINOv3 encoder when every
sample decodes its two frames again. Both are deterministic for a frozen encoder without augmentation, so
``CachedDemoDataset`` does them once: every camera video is decoded in one sequential pass (video_decode.decode_all_frames), every frame resized
to the model's input the same way inference does (``features.to_unit_images``), and the primary view's
features are computed in batches. Samples then index arrays. The sample semantics (which frames are samples,
how the episode end is handled) are the DemoDataset's (``data.episode_sample``), so cached and uncached
training see the same samples.

Memory: frames x (S*S*3 bytes per camera + patches x C x 2 bytes of float16 features); e.g. 13,500 frames at
128 px with 64 x 384 features take about 1.3 GB.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .data import DemoDataset, episode_sample
from .episode_store import ACTION_KEY, STATE_KEY, DatasetError
from .video_decode import decode_all_frames


class CachedDemoDataset(Dataset):
    """The samples of `demo` (a DemoDataset) from memory; adds ``features_t``/``features_tT`` when an
    `encoder` ((B, 3, S, S) unit images -> (B, N, C) features, e.g. ``LaWAMPolicy.encode_features``) is given.

    Raises DatasetError when a frame cannot be found in its video within half a frame period."""

    def __init__(self, demo: DemoDataset, image_size: int, encoder=None, batch_size: int = 64, progress=None):
        from lawam_policy.model.features import to_unit_images

        self.demo = demo
        self.cameras, self.fps, self.horizon_steps = demo.cameras, demo.fps, demo.horizon_steps
        self.embodiment, self.image_size = demo.embodiment, image_size
        ds = demo._ds
        cols = ds.hf_dataset.with_format(None)
        self.actions = np.asarray(cols[ACTION_KEY], np.float32)
        self.states = np.asarray(cols[STATE_KEY], np.float32)
        episode_index = np.asarray(cols["episode_index"], np.int64)
        n = len(self.actions)
        self.frames = np.zeros((n, len(self.cameras), image_size, image_size, 3), np.uint8)
        self.episodes = []  # (first global index, end index, instruction)
        tasks = ds.meta.tasks.index.tolist() if hasattr(ds.meta.tasks, "index") else list(ds.meta.tasks)
        decoded: dict = {}
        eps = range(ds.meta.total_episodes)
        for ep in (progress(eps, desc="decode", unit="ep") if progress else eps):
            row = ds.meta.episodes[ep]
            a, b = int(row["dataset_from_index"]), int(row["dataset_to_index"])
            if not np.all(episode_index[a:b] == ep):
                raise DatasetError(f"{demo.root}: episode {ep} rows {a}..{b} are not contiguous")
            task_index = int(np.asarray(cols["task_index"][a]))
            self.episodes.append((a, b, tasks[task_index]))
            for v, cam in enumerate(self.cameras):
                key = f"observation.images.{cam}"
                path = ds.root / ds.meta.get_video_file_path(ep, key)
                if path not in decoded:
                    decoded.clear()  # files hold consecutive episodes: keep one file decoded at a time
                    decoded[path] = decode_all_frames(path)
                times, frames = decoded[path]
                want = float(row[f"videos/{key}/from_timestamp"]) + np.arange(b - a) / self.fps
                idx = np.clip(np.searchsorted(times, want), 1, len(times) - 1)
                idx -= (want - times[idx - 1]) < (times[idx] - want)
                err = np.abs(times[idx] - want)
                if err.max() > 0.5 / self.fps:
                    raise DatasetError(f"{path}: episode {ep} frame at {want[err.argmax()]:.3f} s has no video "
                                       f"frame within half a period (nearest {err.max() * 1e3:.1f} ms away)")
                for j in range(0, b - a, 256):
                    sel = frames[idx[j:j + 256]]
                    unit = to_unit_images(torch.from_numpy(sel), image_size)
                    self.frames[a + j:a + j + len(sel), v] = (unit.permute(0, 2, 3, 1) * 255).round().byte().numpy()
        self.indices = [(e, t) for e, (a, b, _) in enumerate(self.episodes) for t in range(b - a)]
        self.features = None
        self.teacher_latents = None  # (N, z_tokens, z_dim) z* per frame's sample, set by cache_teacher_latents
        if encoder is not None:
            self.features = self.compute_features(encoder, batch_size)

    @torch.no_grad()
    def compute_features(self, encoder, batch_size: int) -> torch.Tensor:
        """Primary-view features of every frame, float16 (N, patches, C)."""
        out = []
        for i in range(0, len(self.frames), batch_size):
            unit = torch.from_numpy(self.frames[i:i + batch_size, 0]).permute(0, 3, 1, 2).float().div_(255)
            out.append(encoder(unit).to(torch.float16))
        return torch.cat(out)

    @torch.no_grad()
    def cache_teacher_latents(self, teacher, batch_size: int = 64) -> None:
        """z* = teacher(f_t, f_tT) ((B, N, C) x 2 -> (B, z_tokens, z_dim)) of every frame's sample, once: the
        stage-1 IDM is frozen in stage 2, so recomputing it every step would only cost time."""
        if self.features is None:
            raise ValueError("teacher latents need cached features (give the cache an encoder)")
        future = np.empty(len(self.frames), np.int64)
        for a, b, _ in self.episodes:
            for t in range(b - a):
                future[a + t] = a + episode_sample(b - a, t, self.horizon_steps)[0]
        out = []
        for i in range(0, len(future), batch_size):
            g = np.arange(i, min(i + batch_size, len(future)))
            out.append(teacher(self.features[g].float(), self.features[future[g]].float()).float())
        self.teacher_latents = torch.cat(out)

    def group_key(self):
        return self.embodiment, len(self.cameras), (self.image_size, self.image_size)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        e, t = self.indices[i]
        a, b, instruction = self.episodes[e]
        t_future, steps = episode_sample(b - a, t, self.horizon_steps)
        g, g_future, g_steps = a + t, a + t_future, a + steps
        H = self.horizon_steps
        item = dict(images_t=torch.from_numpy(self.frames[g]), images_tT=torch.from_numpy(self.frames[g_future]),
                    actions=torch.from_numpy(self.actions[g_steps]), action_mask=torch.ones(H, dtype=torch.bool),
                    timestamps=torch.arange(H, dtype=torch.float32) / self.fps,
                    states_t=torch.from_numpy(self.states[g]), states_tT=torch.from_numpy(self.states[g_future]),
                    control_hz=float(self.fps), embodiment=self.embodiment, instruction=instruction)
        if self.features is not None:
            item["features_t"] = self.features[g].float()
            item["features_tT"] = self.features[g_future].float()
        if self.teacher_latents is not None:
            item["z_star"] = self.teacher_latents[g]
        return item
