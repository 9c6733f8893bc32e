"""Training samples from LeRobot datasets: (images at t, images at t + T, the EEF action chunk over T at the
dataset's native rate, states at t and t + T, instruction).

    ds = DemoDataset("/data/demos", horizon_s=1.2)           # one dataset, one control rate
    loader = make_dataloader(["/data/franka15", "/data/franka30"], horizon_s=1.2, batch_size=8)
    batch = next(iter(loader))  # the dict LaWAMPolicy.training_losses / latent_action_losses take

Batch (B samples of one embodiment; the batch sampler never mixes embodiments):
    images_t, images_tT   (B, V, H, W, 3) uint8, view 0 = the primary camera
    actions               (B, Hmax, D) float32 wire format (x, y, z, qx, qy, qz, qw, gripper per arm)
    action_mask           (B, Hmax) bool, True for real steps (padding at the end)
    timestamps            (B, Hmax) float32 seconds from t (k / f_b; 0 where padded)
    states_t, states_tT   (B, D) float32 measured EEF state
    control_hz            (B,) float32 dataset rate f_b
    embodiment            str (one per batch); embodiments: list of B str
    instructions          list of B str
Action-free video batches (video_data.VideoClipDataset, stage 1 only) hold only images_t, images_tT,
control_hz, embodiment(s) and instructions: without states_t/states_tT the model masks the auxiliary state loss.
Datasets of different control rates (same embodiment) mix in one batch: H_b = round(T * f_b) real steps each,
padded to the longest.

Episode ends (``episode_sample``): every frame is a sample, also in an episode's last T seconds, so the policy
learns how an episode ends. There the future frame is the episode's last frame and the chunk holds the last
action (the robot stays where the demonstration left it, gripper as it was); held steps are real targets,
not padding, so they stay in the loss.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lawam_policy.action_layout import ActionLayout

from .episode_store import ACTION_KEY, IMAGE_PREFIX, STATE_KEY, DatasetError, recover


def episode_sample(length: int, t: int, horizon_steps: int) -> tuple[int, np.ndarray]:
    """Frame offsets of the sample at frame t of an episode of `length` frames: (future frame t + H clamped to
    the last frame, action frames t..t+H-1 clamped likewise, i.e. the last action held)."""
    last = length - 1
    return min(t + horizon_steps, last), np.minimum(np.arange(t, t + horizon_steps), last)


class DemoDataset(Dataset):
    def __init__(self, root, horizon_s: float, cameras: list[str] | None = None, action_layout=None,
                 image_size: int | tuple[int, int] | None = None):
        from .video_decode import PyAVLeRobotDataset

        self.root = Path(root).expanduser().absolute()
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():  # (LeRobot would try the Hugging Face hub for a missing local path)
            raise DatasetError(f"{self.root} is not a LeRobot dataset (no meta/info.json)")
        recover(self.root)  # finish or undo a commit a crashed recorder left behind
        info = json.loads(info_path.read_text())
        feats = info["features"]
        missing = [k for k in (ACTION_KEY, STATE_KEY) if k not in feats]
        all_cams = [k[len(IMAGE_PREFIX):] for k in feats if k.startswith(IMAGE_PREFIX)]
        if missing or not all_cams:
            raise DatasetError(f"dataset {self.root} lacks the features {missing or ['observation.images.*']} "
                               "needed for training (EEF action, EEF state, at least one camera)")
        self.cameras = list(cameras) if cameras else all_cams
        unknown = [c for c in self.cameras if c not in all_cams]
        if unknown:
            raise DatasetError(f"dataset {self.root} has no camera(s) {unknown}; it has {all_cams}")
        names = feats[ACTION_KEY].get("names")
        if isinstance(names, dict):  # some LeRobot datasets nest names by group
            names = [n for group in names.values() for n in group]
        self.layout = self._resolve_layout(names, action_layout, info.get("robot_type") or None)
        for key in (ACTION_KEY, STATE_KEY):
            if list(feats[key]["shape"]) != [self.layout.dim]:
                raise DatasetError(f"dataset {self.root}: {key} has shape {feats[key]['shape']}, the layout "
                                   f"{self.layout.embodiment!r} needs ({self.layout.dim},)")
        self.fps = int(info["fps"])
        if not horizon_s or horizon_s <= 0:
            raise DatasetError(f"horizon T must be positive, got {horizon_s}")
        self.horizon_steps = max(1, int(round(horizon_s * self.fps)))  # = LaWAMConfig.horizon_steps
        self.horizon_s = float(horizon_s)
        T = self.horizon_steps / self.fps
        keys = [IMAGE_PREFIX + c for c in self.cameras]
        delta = {k: [0.0, T] for k in keys}
        delta[STATE_KEY] = [0.0, T]
        delta[ACTION_KEY] = [k / self.fps for k in range(self.horizon_steps)]
        self._ds = PyAVLeRobotDataset("local/lawam", root=self.root, delta_timestamps=delta)
        self._keys = keys
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.indices = []
        for ep in range(self._ds.meta.total_episodes):
            row = self._ds.meta.episodes[ep]
            a, b = int(row["dataset_from_index"]), int(row["dataset_to_index"])
            self.indices.extend(range(a, b))  # every frame: see episode_sample
        if not self.indices:
            raise DatasetError(f"dataset {self.root} holds no frames")

    def _resolve_layout(self, names, option, robot_type) -> ActionLayout:
        """From the feature names, or from the option (ActionLayout, embodiment name or comma-separated
        names) for datasets whose names say nothing; both given must agree. Never a guess."""
        from_names = None
        try:
            from_names = ActionLayout.from_names(names or [], robot_type)
        except ValueError as e:
            if option is None:
                raise DatasetError(f"dataset {self.root}: {e}; pass an action layout (--action-layout) "
                                   "if its actions are EEF poses in this order") from None
        if option is None:
            return from_names
        if isinstance(option, ActionLayout):
            chosen = option
        else:
            from .topics import parse_layout
            try:
                chosen = parse_layout(str(option), robot_type)
            except ValueError as e:
                raise DatasetError(str(e)) from None
        if from_names is not None and from_names.arms != chosen.arms:
            raise DatasetError(f"dataset {self.root} has the {from_names.embodiment!r} layout (arms "
                               f"{list(from_names.arms)}), the action layout {chosen.embodiment!r} was asked for")
        return chosen

    @property
    def embodiment(self) -> str:
        return self.layout.embodiment

    def __len__(self):
        return len(self.indices)

    def _uint8(self, frames: torch.Tensor) -> torch.Tensor:
        """(2, 3, h, w) float [0, 1] -> (2, H, W, 3) uint8, resized if asked."""
        if self.image_size is not None and tuple(frames.shape[-2:]) != tuple(self.image_size):
            frames = torch.nn.functional.interpolate(frames, size=self.image_size, mode="bilinear",
                                                     align_corners=False, antialias=True)
        return (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)

    def __getitem__(self, i: int) -> dict:
        item = self._ds[self.indices[i]]
        views = torch.stack([self._uint8(item[k]) for k in self._keys], dim=1)  # (2, V, H, W, 3)
        states = item[STATE_KEY].float()
        H = self.horizon_steps
        return dict(images_t=views[0], images_tT=views[1], actions=item[ACTION_KEY].float(),
                    # LeRobot clamps steps past the episode end to its last frame: held, so real (episode_sample)
                    action_mask=torch.ones(H, dtype=torch.bool),
                    timestamps=torch.arange(H, dtype=torch.float32) / self.fps,
                    states_t=states[0], states_tT=states[1], control_hz=float(self.fps),
                    embodiment=self.embodiment, instruction=item["task"])

    def group_key(self):
        """Samples that may share a batch: same embodiment, cameras and image shape."""
        shape = self.image_size or tuple(self._ds.meta.features[self._keys[0]]["shape"][:2])
        return self.embodiment, len(self._keys), tuple(shape)

    def wire_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All (actions, states) of the dataset, (N, D) each, without decoding video: for normalisation
        statistics (e.g. lawam_policy.model.action_codec.compute_stats)."""
        cols = self._ds.hf_dataset.with_format(None)
        return (np.asarray(cols[ACTION_KEY], np.float32), np.asarray(cols[STATE_KEY], np.float32))


def collate(samples: list[dict]) -> dict:
    """Stack samples of ONE embodiment; action chunks of different rates are padded to the longest."""
    embs = [s["embodiment"] for s in samples]
    if len(set(embs)) != 1:
        raise ValueError(f"a batch must hold one embodiment, got {sorted(set(embs))} (use EmbodimentBatchSampler)")
    if "actions" not in samples[0]:  # action-free video (video_data.VideoClipDataset): no actions, no states
        return dict(images_t=torch.stack([s["images_t"] for s in samples]),
                    images_tT=torch.stack([s["images_tT"] for s in samples]),
                    control_hz=torch.tensor([s["control_hz"] for s in samples], dtype=torch.float32),
                    embodiment=embs[0], embodiments=embs, instructions=[s["instruction"] for s in samples])
    B, Hmax = len(samples), max(len(s["actions"]) for s in samples)
    D = samples[0]["actions"].shape[-1]
    actions = torch.zeros(B, Hmax, D)
    mask = torch.zeros(B, Hmax, dtype=torch.bool)
    times = torch.zeros(B, Hmax)
    for b, s in enumerate(samples):
        h = len(s["actions"])
        actions[b, :h], mask[b, :h], times[b, :h] = s["actions"], s["action_mask"], s["timestamps"]
    # padded steps repeat the last real target (harmless if a loss forgets the mask)
    for b, s in enumerate(samples):
        h = int(mask[b].sum())
        if 0 < h < Hmax:
            actions[b, h:] = actions[b, h - 1]
    times = times * mask
    extra = {k: torch.stack([s[k] for s in samples]) for k in ("features_t", "features_tT", "z_star")
             if k in samples[0]}
    return dict(**extra, images_t=torch.stack([s["images_t"] for s in samples]),
                images_tT=torch.stack([s["images_tT"] for s in samples]),
                actions=actions, action_mask=mask, timestamps=times,
                states_t=torch.stack([s["states_t"] for s in samples]),
                states_tT=torch.stack([s["states_tT"] for s in samples]),
                control_hz=torch.tensor([s["control_hz"] for s in samples], dtype=torch.float32),
                embodiment=embs[0], embodiments=embs, instructions=[s["instruction"] for s in samples])


class MixedDataset(torch.utils.data.ConcatDataset):
    """Several DemoDatasets (e.g. different control rates); sample i of dataset k keeps its own rate."""

    def __init__(self, datasets: list[DemoDataset]):
        if not datasets:
            raise DatasetError("no dataset given")
        super().__init__(datasets)


class EmbodimentBatchSampler(Sampler):
    """Batches whose samples share embodiment, cameras and image size; shuffled with a seed per epoch."""

    def __init__(self, mixed: MixedDataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.epoch = 0
        self.groups: dict = {}
        start = 0
        for d in mixed.datasets:
            self.groups.setdefault(d.group_key(), []).extend(range(start, start + len(d)))
            start += len(d)

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def _batches(self):
        rng = random.Random(self.seed + self.epoch)
        batches = []
        for key in sorted(self.groups, key=str):
            idx = list(self.groups[key])
            if self.shuffle:
                rng.shuffle(idx)
            for i in range(0, len(idx), self.batch_size):
                b = idx[i:i + self.batch_size]
                if len(b) == self.batch_size or not self.drop_last:
                    batches.append(b)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):
        return iter(self._batches())

    def __len__(self):
        return len(self._batches())


def make_dataloader(roots, horizon_s: float, batch_size: int, shuffle: bool = True, seed: int = 0,
                    num_workers: int = 0, image_size=None, drop_last: bool = False, **dataset_kwargs):
    datasets = [DemoDataset(r, horizon_s, image_size=image_size, **dataset_kwargs) for r in roots]
    mixed = MixedDataset(datasets)
    sampler = EmbodimentBatchSampler(mixed, batch_size, shuffle, seed, drop_last)
    return torch.utils.data.DataLoader(mixed, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)
