#!/usr/bin/env python
"""CPU throughput of ViTPain (transformers + SDPA) against the official-style implementation (timm ViT + peft LoRA).

Both arms run in this one process on the same inputs, with the same backbone size, the same LoRA setting (rank,
alpha, dropout, applied to the attention input and output projections), the same heads' work and the same loss
terms; measurements alternate between the arms so machine drift hits both. The official-style arm is written here,
not in the package, after the published ViTPain (timm `VisionTransformer`, a second backbone for the neutral
reference, heads on the [CLS] token, AU queries over patch tokens).

    python scripts/bench_model.py                      # ViT-S/16 at 224 px, small step counts
    python scripts/bench_model.py --neutral-reference  # both arms encode a neutral image too
    python scripts/bench_model.py --hidden-size 32 --layers 2 --heads 4 --image-size 32 --patch-size 8  # smoke

Needs `timm`: `pip install -e '.[bench]' --extra-index-url https://download.pytorch.org/whl/cpu` (timm and a
torchvision built for your torch; PyPI's torchvision would drag in a CUDA torch). timm imports torchvision at import
time but its ViT never calls it; when torchvision is missing or cannot load, inert stand-ins are installed for it (in
this process only) so the real timm ViT code runs.
"""

# ruff: noqa: E402  (the malloc re-exec below must run before torch is imported)
from __future__ import annotations

import os
import sys

# glibc hands big freed blocks back to the OS and page-faults them in again on the next step; in a VM that costs more
# than the maths and swings step times by 5x. Keep freed memory in the process (both arms alike): re-exec once.
_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
if __name__ == "__main__" and "--keep-malloc" not in sys.argv and any(k not in os.environ for k in _MALLOC_ENV):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC_ENV})

import argparse
import importlib.abc
import importlib.machinery
import statistics
import time
import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modeling_vitpain import ViTPainConfig, ViTPainModel

from peft import LoraConfig, inject_adapter_in_model


@dataclass
class BenchConfig:
    hidden_size: int = 384
    layers: int = 12
    heads: int = 6
    mlp_ratio: int = 4
    image_size: int = 224
    patch_size: int = 16
    batch_size: int = 8
    warmup_steps: int = 1
    steps: int = 6  # timed steps per arm and mode
    threads: int = os.cpu_count() or 1
    neutral_reference: bool = False
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    head_dropout: float = 0.1
    seed: int = 0
    keep_malloc: bool = False  # do not tune glibc malloc (see _MALLOC_ENV)


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, value in vars(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true", help=f"(default: {value})")
        else:
            parser.add_argument(flag, type=type(value), default=value, help=f"(default: {value})")
    return BenchConfig(**vars(parser.parse_args(argv)))


# --------------------------------------------------------------------------------------------- official-style arm


def import_timm():
    """Import timm, standing in for torchvision if it is absent or cannot load (its CUDA wheel vs a CPU torch)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or RuntimeError from a torchvision built for another torch
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _TorchvisionStandIn())
        print("note: torchvision unavailable; timm runs with inert torchvision stand-ins (ViT does not use it)")
    try:
        import timm
    except ImportError as error:
        raise SystemExit(f"timm is needed for the official-style arm: pip install -e '.[bench]' (README; {error})") from error
    return timm


class _UnavailableMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _UnavailableMeta(name, (cls,), {})


class _Unavailable(metaclass=_UnavailableMeta):
    """A torchvision symbol timm imports but the ViT path never uses; using it fails loudly."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__} comes from a torchvision stand-in in bench_model.py")


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _UnavailableMeta(name, (_Unavailable,), {})
        setattr(self, name, value)
        return value


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


class OfficialStyleViTPain(nn.Module):
    """The published ViTPain's structure: timm ViT + LoRA, separate neutral encoder, MLP heads on [CLS], AU queries."""

    def __init__(self, cfg: BenchConfig, lora_config: LoraConfig):
        super().__init__()
        timm = import_timm()

        def backbone() -> nn.Module:
            model = timm.models.vision_transformer.VisionTransformer(
                img_size=cfg.image_size,
                patch_size=cfg.patch_size,
                embed_dim=cfg.hidden_size,
                depth=cfg.layers,
                num_heads=cfg.heads,
                mlp_ratio=cfg.mlp_ratio,
                num_classes=0,
            )
            return inject_adapter_in_model(lora_config, model)

        hidden, dropout = cfg.hidden_size, cfg.head_dropout
        self.vit_model = backbone()
        self.neutral_encoder = backbone() if cfg.neutral_reference else None
        if cfg.neutral_reference:
            self.neutral_cross_attn = nn.MultiheadAttention(hidden, num_heads=cfg.heads, batch_first=True)
            self.neutral_norm = nn.LayerNorm(hidden)
        self.pspi_head = nn.Sequential(
            nn.LayerNorm(hidden), nn.Dropout(dropout), nn.Linear(hidden, 512), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(512, 256), nn.GELU(), nn.Dropout(dropout), nn.Linear(256, 128), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(128, 1),
        )  # fmt: skip
        self.thresholds = (1.0, 2.0, 3.0)
        self.pspi_binary_heads = nn.ModuleDict(
            {
                str(int(t)): nn.Sequential(nn.LayerNorm(hidden), nn.Dropout(dropout), nn.Linear(hidden, 1))
                for t in self.thresholds
            }
        )
        self.au_shared_features = nn.Sequential(
            nn.LayerNorm(hidden), nn.Dropout(dropout), nn.Linear(hidden, 512), nn.GELU(), nn.Dropout(dropout)
        )
        self.au_queries = nn.Parameter(torch.randn(6, hidden))
        self.au_head = nn.Linear(512, 1)

    @staticmethod
    def _extract_tokens(images: torch.Tensor, model: nn.Module) -> torch.Tensor:
        x = model.patch_embed(images)
        x = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + model.pos_embed
        x = model.pos_drop(x)
        for block in model.blocks:
            x = block(x)
        return model.norm(x)

    def forward(self, pixel_values, neutral_pixel_values=None):
        tokens = self._extract_tokens(pixel_values, self.vit_model)
        if self.neutral_encoder is not None:
            neutral_tokens = self._extract_tokens(neutral_pixel_values, self.neutral_encoder)
            attended, _ = self.neutral_cross_attn(tokens, neutral_tokens, neutral_tokens)
            tokens = self.neutral_norm(tokens + attended)
        cls_features, patch_features = tokens[:, 0], tokens[:, 1:]
        pspi = torch.sigmoid(self.pspi_head(cls_features).squeeze(-1))  # PSPI / 16
        binary_logits = torch.stack([head(cls_features).squeeze(-1) for head in self.pspi_binary_heads.values()], -1)
        queries = self.au_queries.unsqueeze(0).expand(cls_features.shape[0], -1, -1)
        attention = torch.softmax(queries @ patch_features.transpose(1, 2) / patch_features.shape[-1] ** 0.5, -1)
        action_units = F.relu(self.au_head(self.au_shared_features(attention @ patch_features)).squeeze(-1))
        return pspi, binary_logits, action_units

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pspi, binary_logits, action_units = self(batch["pixel_values"], batch.get("neutral_pixel_values"))
        targets = (batch["pspi_labels"].unsqueeze(-1) >= pspi.new_tensor(self.thresholds)).float()
        return (
            F.mse_loss(pspi, batch["pspi_labels"] / 16.0)
            + F.mse_loss(action_units, batch["action_unit_labels"])
            + F.binary_cross_entropy_with_logits(binary_logits, targets)
        )

    def predict(self, batch: dict[str, torch.Tensor]):
        return self(batch["pixel_values"], batch.get("neutral_pixel_values"))


# ------------------------------------------------------------------------------------------------------- our arm


class OursArm(nn.Module):
    def __init__(self, cfg: BenchConfig):
        super().__init__()
        config = ViTPainConfig(
            backbone_config={
                "model_type": "vit",
                "hidden_size": cfg.hidden_size,
                "num_hidden_layers": cfg.layers,
                "num_attention_heads": cfg.heads,
                "intermediate_size": cfg.hidden_size * cfg.mlp_ratio,
                "image_size": cfg.image_size,
                "patch_size": cfg.patch_size,
                "layer_norm_eps": 1e-6,
            },
            use_neutral_reference=cfg.neutral_reference,
            head_dropout=cfg.head_dropout,
            use_lora=True,
            lora_rank=cfg.lora_rank,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            attn_implementation="sdpa",
        )
        self.model = ViTPainModel(config)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss

    def predict(self, batch: dict[str, torch.Tensor]):
        inputs = {key: value for key, value in batch.items() if key.endswith("pixel_values")}
        return self.model(**inputs).pspi


# ------------------------------------------------------------------------------------------------------ measuring


def make_batch(cfg: BenchConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    shape = (cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    batch = {
        "pixel_values": torch.randn(shape, generator=generator),
        "pspi_labels": torch.randint(0, 17, (cfg.batch_size,), generator=generator).float(),
        "action_unit_labels": torch.rand(cfg.batch_size, 6, generator=generator) * 5,
    }
    if cfg.neutral_reference:
        batch["neutral_pixel_values"] = torch.randn(shape, generator=generator)
    return batch


def train_step(arm: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> None:
    optimizer.zero_grad(set_to_none=True)
    arm.loss(batch).backward()
    optimizer.step()


def benchmark(cfg: BenchConfig) -> dict[str, dict[str, float]]:
    """Images per second per arm and mode, from the median and the fastest step; steps alternate between the arms."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    lora_config = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=r".*\.attn\.(qkv|proj)",  # timm's attention input (fused q/k/v) and output projections
        bias="none",
    )
    arms = {"ours": OursArm(cfg), "official": OfficialStyleViTPain(cfg, lora_config)}
    batch = make_batch(cfg, torch.Generator().manual_seed(cfg.seed))
    optimizers = {
        name: torch.optim.AdamW([p for p in arm.parameters() if p.requires_grad], lr=1e-4) for name, arm in arms.items()
    }
    results: dict[str, dict[str, float]] = {}
    for mode in ("train", "inference"):
        step_seconds: dict[str, list[float]] = {name: [] for name in arms}
        for arm in arms.values():
            arm.train(mode == "train")
        for step_index in range(cfg.warmup_steps + cfg.steps):
            order = list(arms) if step_index % 2 == 0 else list(reversed(arms))  # alternate who goes first
            for name in order:
                start = time.perf_counter()
                if mode == "train":
                    train_step(arms[name], optimizers[name], batch)
                else:
                    _infer(arms[name], batch)
                if step_index >= cfg.warmup_steps:
                    step_seconds[name].append(time.perf_counter() - start)
        for name, times in step_seconds.items():
            results[f"{mode} median"] = results.get(f"{mode} median", {}) | {
                name: cfg.batch_size / statistics.median(times)
            }
            results[f"{mode} best"] = results.get(f"{mode} best", {}) | {name: cfg.batch_size / min(times)}
    results["trainable"] = {
        name: sum(p.numel() for p in arm.parameters() if p.requires_grad) for name, arm in arms.items()
    }
    return results


def _infer(arm: nn.Module, batch: dict[str, torch.Tensor]) -> None:
    with torch.inference_mode():
        arm.predict(batch)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    load_before = os.getloadavg()[0]
    results = benchmark(cfg)
    load_after = os.getloadavg()[0]
    print(
        f"ViTPain CPU benchmark: ViT hidden {cfg.hidden_size}, {cfg.layers} layers, {cfg.heads} heads, patch "
        f"{cfg.patch_size}, {cfg.image_size} px, batch {cfg.batch_size}, neutral reference "
        f"{'on' if cfg.neutral_reference else 'off'}, {cfg.threads} threads, torch {torch.__version__}"
    )
    print(
        f"LoRA on both arms: rank {cfg.lora_rank}, alpha {cfg.lora_alpha:g}, dropout {cfg.lora_dropout:g}, on the "
        "attention input and output projections (ours: q_proj/k_proj/v_proj/o_proj; timm: qkv/proj)"
    )
    print(
        f"timed: {cfg.steps} alternating steps per arm and mode after {cfg.warmup_steps} "
        f"warm-up step(s), glibc malloc {'untuned' if cfg.keep_malloc else 'tuned'}; "
        f"trainable parameters ours {results['trainable']['ours']:,} / official-style "
        f"{results['trainable']['official']:,}"
    )
    print(f"{'images/s':<18}{'ours (transformers, sdpa)':>27}{'official-style (timm+peft)':>28}{'ratio':>8}")
    for mode in ("train", "inference"):
        for statistic in ("median", "best"):
            key = f"{mode} {statistic}"
            ours, official = results[key]["ours"], results[key]["official"]
            print(f"{key:<18}{ours:>27.2f}{official:>28.2f}{ours / official:>8.2f}")
    print(
        "ratio = ours / official-style throughput (>= 1.00: ours at least as fast); median: typical step, best: the "
        "fastest step, the least disturbed by other processes on the machine"
    )
    print(f"1-minute load average before / after: {load_before:.2f} / {load_after:.2f} on {os.cpu_count()} cores")
    if max(load_before, load_after) > 0.5 + cfg.threads:
        print(
            "warning: other processes were competing for the cores; trust the 'best' rows, or rerun on a quiet machine"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
