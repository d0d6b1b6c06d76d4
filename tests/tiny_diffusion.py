"""Random-weight Stable Diffusion pipelines built from configs, with no download: a test helper, which
`scripts/bench_texture.py` imports too (it adds tests/ to its path).

`save_tiny_texture_models(folder)` writes a tiny SD 1.5-style (or SDXL-style) base pipeline and depth ControlNet,
`save_tiny_inpaint_model(folder)` a tiny 9-channel inpainting pipeline, each with `save_pretrained`, so the code
under test loads them with `from_pretrained(folder)` exactly as it loads real weights from the Hub. `full_size=True`
gives the shapes of SD 1.5 (UNet 320-640-1280-1280, CLIP ViT-L text encoder, 4-level VAE) for timing on a GPU.
Their images are noise: the weights are random.
"""

from __future__ import annotations

from pathlib import Path

TOKENIZER_MAX_LENGTH = 77


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes that byte-level BPE (GPT-2, CLIP) uses."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def byte_level_tokenizer():
    """A CLIP tokenizer over single bytes (no merges): every prompt tokenizes, different prompts differently."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols + [s + "</w>" for s in symbols]:
        vocab[symbol] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TOKENIZER_MAX_LENGTH)


def _text_encoder(hidden: int, layers: int, heads: int, vocab_size: int, with_projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        vocab_size=vocab_size,
        max_position_embeddings=TOKENIZER_MAX_LENGTH,
        projection_dim=hidden,
        hidden_act="quick_gelu" if hidden >= 768 else "gelu",
    )
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _vae(full_size: bool):
    from diffusers import AutoencoderKL

    channels = [128, 256, 512, 512] if full_size else [32, 64]
    return AutoencoderKL(
        block_out_channels=channels,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
        latent_channels=4,
        norm_num_groups=32 if full_size else 8,
        layers_per_block=2 if full_size else 1,
        sample_size=512 if full_size else 64,
    )


def _unet(full_size: bool, sdxl: bool, in_channels: int = 4):
    from diffusers import UNet2DConditionModel

    if full_size:  # the SD 1.5 UNet
        return UNet2DConditionModel(
            sample_size=64,
            in_channels=in_channels,
            out_channels=4,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            layers_per_block=2,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
    extra = (
        dict(  # SDXL: two text encoders (32 + 32 wide) and the size / crop "text_time" conditioning
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2),
            projection_class_embeddings_input_dim=6 * 8 + 32,
            cross_attention_dim=64,
        )
        if sdxl
        else dict(cross_attention_dim=32, attention_head_dim=(2, 4))
    )
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        **extra,
    )


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
        steps_offset=1,
    )


def tiny_pipeline_components(sdxl: bool = False, full_size: bool = False, in_channels: int = 4, seed: int = 0) -> dict:
    """Components of a random-weight text-to-image pipeline (SD 1.5 layout, or SDXL's with `sdxl`)."""
    import torch

    if sdxl and full_size:
        raise ValueError("full-size random weights are built for SD 1.5 only")
    torch.manual_seed(seed)
    tokenizer = byte_level_tokenizer()
    vocab = len(tokenizer)
    components = {
        "unet": _unet(full_size, sdxl, in_channels),
        "vae": _vae(full_size),
        "scheduler": _scheduler(),
        "tokenizer": tokenizer,
        "text_encoder": _text_encoder(768, 12, 12, vocab) if full_size else _text_encoder(32, 2, 4, vocab),
    }
    if sdxl:
        components["tokenizer_2"] = byte_level_tokenizer()
        components["text_encoder_2"] = _text_encoder(32, 2, 4, vocab, with_projection=True)
    else:
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return components


def tiny_texture_pipeline(sdxl: bool = False, full_size: bool = False, seed: int = 0, normal: bool = False):
    """A random-weight depth-ControlNet pipeline in memory (a second ControlNet for normals with `normal`)."""
    import torch
    from diffusers import (
        ControlNetModel, StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline,
    )

    components = tiny_pipeline_components(sdxl=sdxl, full_size=full_size, seed=seed)
    controlnets = []
    for k in range(2 if normal else 1):
        torch.manual_seed(seed + 1 + k)
        # the condition is embedded down to the latent size: by 8 with SD's VAE, by 2 with the tiny one
        embedding = (16, 32, 96, 256) if full_size else (16, 32)
        controlnets.append(ControlNetModel.from_unet(components["unet"], conditioning_embedding_out_channels=embedding))
    for cn in controlnets:  # from_unet zero-initialises the output convs; random ones make the condition matter
        for module in (*cn.controlnet_down_blocks, cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out):
            torch.nn.init.normal_(module.weight, std=0.02)
    cls = StableDiffusionXLControlNetPipeline if sdxl else StableDiffusionControlNetPipeline
    return cls(**components, controlnet=controlnets if normal else controlnets[0])


def save_tiny_texture_models(folder: str | Path, sdxl: bool = False, normal: bool = False, seed: int = 0) -> dict:
    """Save a tiny base pipeline and depth (and normal) ControlNet under `folder`; returns the texture backend
    options that load them (`base_model`, `controlnet_model`, `normal_controlnet_model`)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    folder = Path(folder)
    pipe = tiny_texture_pipeline(sdxl=sdxl, seed=seed, normal=normal)
    components = {k: v for k, v in pipe.components.items() if k != "controlnet"}
    if not sdxl:
        components["requires_safety_checker"] = False
    base = (StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline)(**components)
    base.save_pretrained(folder / "base")
    controlnets = pipe.controlnet.nets if normal else [pipe.controlnet]
    options = {"base_model": str(folder / "base")}
    for name, net in zip(("controlnet_model", "normal_controlnet_model"), controlnets):
        net.save_pretrained(folder / name.replace("_model", ""))
        options[name] = str(folder / name.replace("_model", ""))
    return options


def save_tiny_inpaint_model(folder: str | Path, sdxl: bool = False, seed: int = 0) -> str:
    """Save a tiny inpainting pipeline (UNet with 9 input channels: latents, mask, masked image) to `folder`."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionXLInpaintPipeline

    components = tiny_pipeline_components(sdxl=sdxl, in_channels=9, seed=seed)
    pipe = (StableDiffusionXLInpaintPipeline if sdxl else StableDiffusionInpaintPipeline)(**components)
    pipe.save_pretrained(folder)
    return str(folder)
