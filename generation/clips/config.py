"""`ClipConfig`: every parameter that shapes a clip dataset's bytes (written to generation_config.json), and the
`GenerationConfig` whose identity i is a clip's person."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..config import GenerationConfig
from ..errors import ConfigError
from ..views import View, image_size_problem

CLIP_DEFAULT_VIEWS: tuple[View, ...] = (View("frontal", 0.0, 0.0),)
FPS_RANGE = (5, 60)  # frames per second: below, a 100 ms blink falls between frames; above, frames are wasted
SECONDS_RANGE = (2.5, 120.0)  # seconds: the lead-in (>= 1 s) and the shortest episode (1.3 s) must fit
CRF_RANGE = (0, 51)  # libx264's constant rate factor (0: lossless)
DEFAULT_CRF = 13  # the default quality: PSNR >= 40 dB against the lossless render (docs/clips.md)


@dataclass(frozen=True)
class ClipConfig:
    """Every parameter that shapes the clip dataset's bytes. Identity i of a clip dataset is identity i of a
    `generate` dataset with the same seed, views and image size (`generation`)."""

    num_identities: int
    clips_per_identity: int = 4
    seconds: float = 8.0
    fps: int = 25
    views: tuple[View, ...] = CLIP_DEFAULT_VIEWS
    image_size: int = 256
    seed: int = 0
    crf: int = DEFAULT_CRF
    heatmaps: bool = False  # per-frame millimetre heatmaps, lossless (the stills' 16-bit PNGs of micrometres)
    non_pain_probability: float = 0.3  # chance of a non-pain episode (AU12 or AU25+AU26) in a rest stretch
    split_fractions: tuple[float, float, float] = (0.7, 0.2, 0.1)
    identities_per_shard: int = 25
    texture: str = "procedural"
    msaa: bool = False
    png_compress_level: int = 1

    def __post_init__(self):
        problems = []
        if isinstance(self.num_identities, bool) or not isinstance(self.num_identities, int) or self.num_identities <= 0:
            problems.append(f"--num-identities must be a positive integer, got {self.num_identities!r}")
        if isinstance(self.clips_per_identity, bool) or not isinstance(self.clips_per_identity, int) \
                or self.clips_per_identity <= 0:
            problems.append(f"--clips-per-identity must be a positive integer, got {self.clips_per_identity!r}")
        low, high = SECONDS_RANGE
        if not isinstance(self.seconds, (int, float)) or not low <= self.seconds <= high:
            problems.append(f"--seconds must be within {low:g}-{high:g} (a lead-in of at least 1 s and one pain "
                            f"episode of at least 1.3 s must fit), got {self.seconds!r}")
        low, high = FPS_RANGE
        if isinstance(self.fps, bool) or not isinstance(self.fps, int) or not low <= self.fps <= high:
            problems.append(f"--fps must be an integer within {low}-{high}, got {self.fps!r}")
        if image_size_problem(self.image_size):
            problems.append(image_size_problem(self.image_size))
        low, high = CRF_RANGE
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not low <= self.crf <= high:
            problems.append(f"--crf must be an integer within {low}-{high}, got {self.crf!r}")
        if not isinstance(self.heatmaps, bool):
            problems.append(f"heatmaps must be True or False, got {self.heatmaps!r}")
        if not 0 <= self.non_pain_probability <= 1:
            problems.append(f"non-pain episode probability must be within 0-1, got {self.non_pain_probability}")
        if problems:
            raise ConfigError("; ".join(problems))
        self.generation  # the rest (views, seed, splits, shards, texture) is checked where identities are

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def generation(self) -> GenerationConfig:
        """The stills' config whose identity i is this dataset's identity i (same person, camera, light, split)."""
        return GenerationConfig(
            num_identities=self.num_identities, expressions_per_identity=1, views=self.views,
            image_size=self.image_size, seed=self.seed, texture=self.texture, split_fractions=self.split_fractions,
            identities_per_shard=self.identities_per_shard, msaa=self.msaa,
            png_compress_level=self.png_compress_level,
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["views"] = [asdict(v) for v in self.views]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ClipConfig":
        data = dict(data)
        data["views"] = tuple(View(**v) for v in data["views"])
        data["split_fractions"] = tuple(data["split_fractions"])
        return cls(**data)
