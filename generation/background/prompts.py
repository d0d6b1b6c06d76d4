"""Text prompts for the diffusion stages: an identity's demographics -> a portrait prompt for its texture, and
scene prompts for inpainted backgrounds.

The words describe the *intended* attributes of a synthetic identity (see `demographics`), as the paper's
prompts do ("A young Latino man with a neutral expression").
"""

from __future__ import annotations

import numpy as np

from ..demographics import Demographics

# One age word per age group of `demographics.AGE_GROUPS` (a test checks every group has one).
AGE_WORDS: dict[str, str] = {
    "20-34": "young",
    "35-49": "middle-aged",
    "50-64": "older",
    "65-79": "elderly",
    "80-90": "very old",
}
# Words per ethnicity and gender, where the two differ in English usage.
ETHNICITY_WORDS: dict[str, dict[str, str]] = {
    "Hispanic/Latino": {"male": "Latino", "female": "Latina"},
}
PERSON_WORDS = {"male": "man", "female": "woman"}

TEXTURE_PROMPT_SUFFIX = (
    "frontal portrait photo, hair pulled back, even soft studio lighting, detailed natural skin texture, sharp focus"
)
TEXTURE_NEGATIVE_PROMPT = (
    "smiling, open mouth, teeth, glasses, hat, hair over the face, makeup, jewelry, tattoo, strong shadows, "
    "harsh light, cartoon, painting, illustration, 3d render, blurry, deformed, text, watermark"
)

SCENES: tuple[str, ...] = (
    "a hospital room",
    "a hospital corridor",
    "a clinic waiting room",
    "a nursing home lounge",
    "a living room at home",
    "a bedroom",
    "a kitchen",
    "an office",
    "a park in daylight",
    "a plain photo studio backdrop",
)
SCENE_PROMPT_TEMPLATE = "{scene}, background of a portrait photo, soft focus, natural light"
SCENE_NEGATIVE_PROMPT = "person, people, face, body, hands, text, watermark, logo, low quality"


def identity_prompt(demographics: Demographics, suffix: str = TEXTURE_PROMPT_SUFFIX) -> str:
    """'A photo of an elderly East Asian woman with a neutral expression, <suffix>'."""
    age = AGE_WORDS[demographics.age_group]
    ethnicity = ETHNICITY_WORDS.get(demographics.ethnicity, {}).get(demographics.gender, demographics.ethnicity)
    article = "an" if age[0] in "aeiou" else "a"
    prompt = f"A photo of {article} {age} {ethnicity} {PERSON_WORDS[demographics.gender]} with a neutral expression"
    return f"{prompt}, {suffix}" if suffix else prompt


def scene_prompt(rng: np.random.Generator, scenes: tuple[str, ...] = SCENES) -> str:
    """A background prompt for one (identity, view), drawn from `scenes`."""
    return SCENE_PROMPT_TEMPLATE.format(scene=scenes[int(rng.integers(len(scenes)))])
