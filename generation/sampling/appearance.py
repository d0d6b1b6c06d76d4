"""Per-identity appearance drawn from the intended demographics: skin, hair, eyes, age and gender cues, shape.

Everything is sampled from a `numpy.random.Generator`, so an identity's look depends only on its seed. Later
additions (what the person wears, how they age, their brows, their skin's sheen) draw from named streams
(`rng.stream`) of a key drawn once from it, so adding one left every other draw as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..demographics import Demographics
from ..face.eyelashes import STRIPS_PER_LID
from ..face.hair_styles import GREY_HAIR_RGB, HAIR_STYLES
from ..face.rig import AGEING_PARTS
from ..rng import stream

# Skin albedo ranges (sRGB 0-255, darkest .. lightest) per intended ethnicity; a tone is drawn along each range.
SKIN_TONES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "Black": ((92, 58, 42), (158, 108, 80)),
    "East Asian": ((196, 154, 122), (236, 198, 168)),
    "Hispanic/Latino": ((164, 114, 84), (222, 172, 136)),
    "Middle Eastern": ((172, 126, 96), (226, 180, 146)),
    "South Asian": ((128, 86, 60), (196, 146, 110)),
    "White": ((212, 166, 140), (246, 212, 192)),
}
# Hair colours (sRGB) and their probabilities per ethnicity, before greying with age.
HAIR_COLORS: dict[str, tuple[tuple[tuple[int, int, int], float], ...]] = {
    "dark": (((24, 20, 18), 1.0),),
    "White": (((30, 24, 20), 0.25), ((88, 60, 40), 0.35), ((150, 116, 78), 0.25), ((120, 60, 32), 0.15)),
    "Hispanic/Latino": (((26, 21, 18), 0.6), ((70, 48, 32), 0.4)),
}
# Hair dyes (sRGB 0-255) that people who colour their grey hair choose, and how many colour it: from the first grey
# hairs on, more with age up to `DYED_AT_90` of women (and a tenth of that share of men) at 90.
HAIR_DYES = ((32, 24, 20), (70, 46, 30), (112, 74, 46), (120, 58, 34), (164, 128, 88), (196, 170, 130))
DYED_AT_90 = {"female": 0.5, "male": 0.05}
# The families of lines that age draws into the skin (`texture.procedural.skin_relief`); each person has a depth of
# their own for each (`Appearance.line_depths`, mean 1), so no two faces age along the same lines.
LINE_FAMILIES = ("forehead", "frown", "fold", "bags", "crows_feet", "marionette", "cheek", "upper_lip")
# The wrinkles' and the sag's age (`Appearance.skin_age`) is the calendar age factor scaled by the person's ageing
# rate: 1 +/- AGEING_RATE_SPREAD at the extremes, so a 90-year-old's skin is between 82 and 90 years old
# (the factor is capped at 1).
AGEING_RATE_SPREAD = 0.125
IRIS_COLORS: dict[str, tuple[tuple[tuple[float, float, float], float], ...]] = {
    "dark": (((0.22, 0.13, 0.07), 0.8), ((0.32, 0.20, 0.10), 0.2)),
    "White": (((0.30, 0.19, 0.10), 0.45), ((0.30, 0.45, 0.62), 0.35), ((0.35, 0.42, 0.25), 0.2)),
}


@dataclass(frozen=True)
class BrowShape:
    """One person's eyebrows, in mm in the front view, relative to the brow landmarks: how far they sit above (+)
    or below them (`lift`), how high they arch (`arch`) and where along their length the arch peaks (`peak`, 0 at
    the inner end, 1 at the tail), how far the tail drops (`tail_drop`), where they start and end along the
    landmarks' length (`start`, `end`: plucked or sparse ends start later and stop sooner) and how much thinner the
    tail is than the inner end (`taper`, 0 none .. 1 to a point)."""

    lift: float = 0.0
    arch: float = 0.0
    peak: float = 0.6
    tail_drop: float = 0.0
    start: float = 0.0
    end: float = 1.0
    taper: float = 0.5


@dataclass(frozen=True)
class Appearance:
    """What the texturer and the rig need to make one identity look like its demographics."""

    skin_rgb: tuple[float, float, float]  # sRGB 0-1
    hair_rgb: tuple[float, float, float]
    iris_rgb: tuple[float, float, float]
    grey_fraction: float  # 0 (none) .. 1 (white hair and brows)
    age_factor: float  # 0 at 25 years .. 1 at 90: wrinkles, spots, sagging
    male: bool
    beard_density: float  # 0 clean-shaven .. 1 full stubble shadow
    brow_thickness_mm: float
    hairline_mm: float  # height of the hairline above the top of the brows, mm (vertical)
    balding: float  # 0 .. 1 recession of the hair cap (older men)
    hair_length: float  # 0 (ends at the ear lobes at the back) .. 1 (covers the back of the neck)
    lip_redness: float
    stream_key: int  # the key of this person's named streams (`rng.stream(name, stream_key)`)
    sag_mm: float  # downward sag of the lower face (12 mm x skin_age ** 1.5)
    hair_style: str = "short"  # a name in `hair_styles.HAIR_STYLES` (head coverings included)
    hair_volume: float = 1.0  # scales the style's thickness
    hair_length_scale: float = 1.0  # scales how far long hair falls
    temple_dip_mm: float = 0.0  # how far the hairline recedes at the temples
    hairline_tilt: float = 0.0  # slope (mm per mm across) of a side-swept fringe
    covering_rgb: tuple[float, float, float] = (0.2, 0.2, 0.3)  # headscarf / cap fabric, sRGB 0-1
    makeup: float = 0.0  # 0 none .. 1 eyeliner and mascara
    lipstick: float = 0.0  # 0 none .. 1 full lipstick colour
    lipstick_rgb: tuple[float, float, float] = (0.62, 0.18, 0.22)
    eyeshadow_rgb: tuple[float, float, float] = (0.45, 0.33, 0.30)
    brows: BrowShape = BrowShape()  # the shape of this person's eyebrows
    earrings: str = ""  # "" none, or a kind in `accessories.EARRINGS`
    earring_rgb: tuple[float, float, float] = (0.83, 0.66, 0.30)
    beard_style: str = ""  # "" (clean-shaven or stubble only) or a grown style in `BEARDS`
    neckline: str = "crew"  # a name in `NECKLINES`: where the clothing starts on the chest
    clothing_rgb: tuple[float, float, float] = (0.25, 0.30, 0.40)
    lash_strips: int = STRIPS_PER_LID  # upper-lid eyelash strips (`face.eyelashes`): all with mascara, 1-2 natural
    ageing_mix: tuple[float, ...] = ()  # how much each of `rig.AGEING_PARTS` ages in this person (1 each if empty)
    skin_sheen: float = 0.0  # 0 matte .. 1 oily: how much the forehead, nose, cheekbones and chin shine
    # the one age model of the skin: how aged the skin is (0 .. 1, the age factor times the person's ageing rate),
    # which sets the depth of every wrinkle (relief and painted crease alike: the painting darkens the relief's own
    # creases) and the sag (`sag_mm`); each family of lines' own depth (`LINE_FAMILIES`) and the forehead's spacing
    skin_age: float = 0.0
    line_depths: tuple[float, ...] = ()
    line_spacing_mm: float = 9.0

    @property
    def lines(self) -> dict[str, float]:
        """`line_depths` by family name (`LINE_FAMILIES`; 1 each if empty)."""
        return dict(zip(LINE_FAMILIES, self.line_depths or (1.0,) * len(LINE_FAMILIES)))

    @property
    def ageing(self) -> dict[str, float]:
        """`ageing_mix` by part name, for `rig.identity_extras`."""
        return dict(zip(AGEING_PARTS, self.ageing_mix))

    @property
    def hair_thinning(self) -> float:
        """The share of hair strands gone (0 .. 0.45), so the scalp shows: from middle age, more in men."""
        return float(min(0.45, 0.4 * self.age_factor**1.5 * (1.3 if self.male else 0.8)))

    @property
    def lash_rgb(self) -> tuple[float, float, float]:
        """The eyelashes' hair (sRGB 0-1): darker than the hair on the head and greying later; mascara blackens
        them. How much of the skin they cover is `lash_fringe`'s (the card's alpha), not a blend of colours."""
        grey = 0.6 * self.grey_fraction
        hairs = 0.55 * np.asarray(self.hair_rgb) * (1 - grey) + grey * np.asarray(GREY_HAIR_RGB)
        hairs = hairs * (1 - self.makeup) + np.full(3, 0.03) * self.makeup
        return tuple(float(c) for c in hairs)

    @property
    def lash_fringe(self) -> tuple[int, float, float]:
        """The arguments of `face.eyelashes.lash_texture` for this person: lashes per strip, their width at the root
        (texels) and length (share of the strip). Natural lashes thin, narrow and shorten with age and are a little
        shorter in men; mascara makes them many, thick and long."""
        age, makeup = self.age_factor, self.makeup
        count = 30 * (1 - 0.45 * age) * (1 - makeup) + 36 * makeup
        width = 2.2 * (1 - 0.35 * age) * (1 - makeup) + 2.8 * makeup
        length = (0.75 if self.male else 0.85) * (1 - 0.25 * age) * (1 - makeup) + 1.0 * makeup
        return int(round(count)), float(width), float(length)


# The order in which the styles each sex wears lie along the unit interval of the draw in `sample_hair_style`: kept as
# it was, so a seed still draws the style it drew before. Styles added later follow in registry order.
STYLE_DRAW_ORDER = {
    "female": ("long_straight", "long_wavy", "medium", "bun", "curly", "short", "afro", "headscarf", "cap"),
    "male": ("short", "buzz", "medium", "long_straight", "long_wavy", "curly", "afro", "cap", "headscarf", "receding",
             "balding", "bald"),
}
METAL_COLORS = ((0.83, 0.66, 0.30), (0.78, 0.78, 0.80), (0.90, 0.75, 0.55))  # gold, silver, rose gold
LIPSTICKS = ((0.62, 0.16, 0.20), (0.70, 0.30, 0.36), (0.48, 0.14, 0.22), (0.72, 0.40, 0.38), (0.55, 0.22, 0.18))
EYESHADOWS = ((0.45, 0.33, 0.30), (0.40, 0.30, 0.38), (0.35, 0.33, 0.33), (0.55, 0.42, 0.36))
# Grown facial hair, beyond the stubble shadow most men get: how often each style is worn.
BEARDS = {"moustache": 0.1, "goatee": 0.08, "full": 0.14}
# Clothing necklines by how deep they reach down the chest (mm below the base of the neck at the front).
NECKLINES = {"crew": 8.0, "scoop": 32.0, "v": 45.0}
CLOTHES = ((0.12, 0.14, 0.22), (0.85, 0.85, 0.82), (0.35, 0.36, 0.38), (0.55, 0.12, 0.14), (0.20, 0.35, 0.55),
           (0.62, 0.55, 0.42), (0.10, 0.10, 0.10), (0.30, 0.45, 0.30), (0.70, 0.45, 0.55), (0.45, 0.62, 0.75))
FABRICS = ((0.10, 0.12, 0.25), (0.40, 0.08, 0.12), (0.08, 0.08, 0.08), (0.72, 0.64, 0.52), (0.10, 0.35, 0.38),
           (0.45, 0.45, 0.48), (0.55, 0.30, 0.45), (0.20, 0.32, 0.16))


def sample_hair_style(demographics: Demographics, age_factor: float, rng: np.random.Generator) -> str:
    """A hair style drawn with plausible, overlapping proportions, by each style's `Wear` for the person's sex, age
    and ethnicity: most women have longer hair and most men short hair, but some women have short hair and some men
    long; curls are more common in Black identities, receding hairlines and baldness in older men, long hair less
    common in older women."""
    female = demographics.gender == "female"
    order = STYLE_DRAW_ORDER["female" if female else "male"]
    worn = [name for name, style in HAIR_STYLES.items() if style.wear(female) is not None]
    names = sorted(worn, key=lambda name: order.index(name) if name in order else len(order))  # stable: registry order
    p = np.asarray([HAIR_STYLES[n].weight(female, demographics.ethnicity, age_factor) for n in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _pick(options, rng: np.random.Generator):
    colors, weights = zip(*options)
    return colors[rng.choice(len(colors), p=np.asarray(weights) / sum(weights))]


def sample_appearance(demographics: Demographics, rng: np.random.Generator) -> Appearance:
    low, high = (np.asarray(c, dtype=np.float64) for c in SKIN_TONES[demographics.ethnicity])
    tone = rng.beta(2.0, 2.0)
    skin = (low + tone * (high - low)) / 255.0
    age = demographics.age
    age_factor = float(np.clip((age - 25) / 65, 0.0, 1.0))
    skin = skin * (1.0 - 0.06 * age_factor) + np.array([0.02, 0.015, -0.01]) * age_factor  # older skin: duller
    # within every group women's skin is on average a little lighter and men's a little darker and ruddier
    female = demographics.gender == "female"
    skin = skin * (1.03 if female else 0.97) + (np.zeros(3) if female else np.array([0.012, -0.004, -0.006]))
    hair = np.asarray(_pick(HAIR_COLORS.get(demographics.ethnicity, HAIR_COLORS["dark"]), rng), float) / 255.0
    iris = _pick(IRIS_COLORS.get(demographics.ethnicity, IRIS_COLORS["dark"]), rng)
    grey = float(np.clip((age - 38) / 40 + rng.normal(0, 0.12), 0.0, 1.0))
    male = demographics.gender == "male"
    style = HAIR_STYLES[sample_hair_style(demographics, age_factor, rng)]
    hair_volume = float(rng.uniform(0.8, 1.25) * (1 - 0.3 * age_factor))  # hair thins with age
    hair_length_scale = float(rng.uniform(0.75, 1.1))
    fringe = style.fringe and rng.random() < (0.35 if not male else 0.1)
    temple_dip = float(rng.uniform(0, 6) + (rng.uniform(6, 16) if male and style.receded_temples else 0)
                       + style.temple_dip_mm + (14.0 * age_factor if male else 0.0))
    covering = tuple(float(c) for c in FABRICS[int(rng.integers(len(FABRICS)))])
    hairline = float((rng.uniform(46, 58) + 8 * age_factor) if male else rng.uniform(42, 54))  # above the brows
    tilt = 0.0
    if fringe:
        hairline = float(rng.uniform(12, 22))
        tilt = float(rng.choice((-1, 1)) * rng.uniform(0.15, 0.4))
    made_up = (not male) and rng.random() < 0.75 - 0.3 * age_factor
    makeup = float(rng.uniform(0.4, 1.0)) if made_up else 0.0
    lipstick = float(rng.uniform(0.3, 0.8)) if made_up and rng.random() < 0.7 else 0.0
    lipstick_rgb = tuple(float(c) for c in LIPSTICKS[int(rng.integers(len(LIPSTICKS)))])
    eyeshadow_rgb = tuple(float(c) for c in EYESHADOWS[int(rng.integers(len(EYESHADOWS)))])
    shaped_brows = bool(rng.random() < (0.8 if not male else 0.1))  # plucked into an arch (`sample_brows`)
    balding = style.balding * float(male)
    # drawn in this order, as they always were
    beard_density = float(rng.uniform(0.25, 0.9) if male and rng.random() < 0.7 else 0.0)
    brow_thickness = float(rng.uniform(6.5, 9.0) if male else rng.uniform(2.6, 4.2))
    hair_length = float(rng.uniform(0.5, 1.0) if not male else rng.uniform(0.0, 0.2))
    lip_redness = float((rng.uniform(0.2, 0.6) if not male else rng.uniform(0.05, 0.3)) * (1 - 0.6 * age_factor))
    stream_key = int(rng.integers(2**31))
    # one age model: the skin's age, from the person's ageing rate, sets the wrinkles' depth and the sag alike
    rate = 1 + AGEING_RATE_SPREAD * (rng.uniform(0.7, 1.2) - 0.95) / 0.25
    skin_age = float(np.clip(age_factor * rate, 0.0, 1.0))
    appearance = Appearance(
        skin_rgb=tuple(np.clip(skin, 0, 1)),
        hair_rgb=tuple(hair),
        iris_rgb=tuple(iris),
        grey_fraction=grey,
        age_factor=age_factor,
        male=male,
        beard_density=beard_density,
        brow_thickness_mm=brow_thickness,
        hairline_mm=hairline,
        balding=balding,
        hair_length=hair_length,
        lip_redness=lip_redness,
        stream_key=stream_key,
        sag_mm=float(12.0 * skin_age**1.5),
        skin_age=skin_age,
        hair_style=style.name,
        hair_volume=hair_volume,
        hair_length_scale=hair_length_scale,
        temple_dip_mm=temple_dip,
        hairline_tilt=tilt,
        covering_rgb=covering,
        makeup=makeup,
        lipstick=lipstick,
        lipstick_rgb=lipstick_rgb,
        eyeshadow_rgb=eyeshadow_rgb,
    )
    # earrings, a grown beard, the neckline, the clothes' colour and natural lashes
    worn = stream("appearance-worn", appearance.stream_key)
    earrings = ""
    if worn.random() < (0.55 if not male else 0.06):
        earrings = "hoop" if worn.random() < 0.3 else "stud"
    necklines = list(NECKLINES)
    beard = ""
    if male:
        styles, weights = zip(*BEARDS.items())
        pick = worn.random()
        beard = next((name for name, edge in zip(styles, np.cumsum(weights)) if pick < edge), "")
    earring_rgb = tuple(float(c) for c in METAL_COLORS[int(worn.integers(len(METAL_COLORS)))])
    neckline = necklines[int(worn.choice(len(necklines), p=(0.4, 0.35, 0.25) if not male else (0.7, 0.1, 0.2)))]
    clothing_rgb = tuple(float(c) for c in CLOTHES[int(worn.integers(len(CLOTHES)))])
    # eyelashes: mascara (part of the eye make-up) gives a full, black fringe; natural lashes are sparser and thin
    # with age
    lash_strips = STRIPS_PER_LID if makeup > 0 else 1 + int(worn.random() < 0.5 * (1 - age_factor))
    # people age differently: each part of the face hollows, folds or droops by its own amount (about +/- 40%)
    mix = stream("appearance-ageing-mix", appearance.stream_key).lognormal(0.0, 0.4, len(AGEING_PARTS))
    # some people colour their grey hair: their own colour or a dye, with only a few grey hairs left at the roots
    dye = stream("appearance-hair-dye", appearance.stream_key)
    if grey > 0.2 and dye.random() < DYED_AT_90["male" if male else "female"] * min(1.0, (age - 40) / 50):
        if dye.random() < 0.6:
            hair = np.asarray(HAIR_DYES[int(dye.integers(len(HAIR_DYES)))], float) / 255.0
        appearance = replace(appearance, hair_rgb=tuple(float(c) for c in hair), grey_fraction=float(dye.uniform(0, 0.15)))
    brows = sample_brows(male, shaped_brows, stream("appearance-brows", appearance.stream_key))
    sheen = float(stream("appearance-skin-sheen", appearance.stream_key).uniform(0.2, 1.0))  # oily skin shines
    lines = stream("appearance-ageing-lines", appearance.stream_key)
    depths = np.exp(lines.normal(0.0, 0.45, len(LINE_FAMILIES)))
    return replace(appearance, line_depths=tuple(float(d) for d in depths / depths.mean()),
                   line_spacing_mm=float(lines.uniform(7.5, 11.5)), beard_style=beard, earrings=earrings,
                   earring_rgb=earring_rgb, neckline=neckline, clothing_rgb=clothing_rgb, lash_strips=lash_strips,
                   ageing_mix=tuple(float(w) for w in np.clip(mix, 0.35, 2.2)), brows=brows, skin_sheen=sheen)


def sample_brows(male: bool, arched: bool, rng: np.random.Generator) -> BrowShape:
    """A person's eyebrow shape: men's sit lower, on the brow ridge, and run straighter and fuller to the tail;
    women's sit higher and arch, most of all when shaped (`arched`); every measure varies from person to person."""
    if male:
        return BrowShape(lift=float(rng.normal(-2.0, 0.8)), arch=float(rng.uniform(0.0, 1.5)),
                         peak=float(rng.uniform(0.55, 0.85)), tail_drop=float(rng.uniform(0.3, 2.0)),
                         start=float(rng.uniform(-0.04, 0.06)), end=float(rng.uniform(0.92, 1.05)),
                         taper=float(rng.uniform(0.1, 0.5)))
    if arched:
        return BrowShape(lift=float(rng.normal(0.4, 0.7)), arch=float(rng.uniform(1.8, 3.8)),
                         peak=float(rng.uniform(0.5, 0.72)), tail_drop=float(rng.uniform(0.8, 2.8)),
                         start=float(rng.uniform(0.0, 0.12)), end=float(rng.uniform(0.85, 1.0)),
                         taper=float(rng.uniform(0.45, 0.8)))
    return BrowShape(lift=float(rng.normal(0.0, 0.7)), arch=float(rng.uniform(0.4, 2.0)),
                     peak=float(rng.uniform(0.55, 0.8)), tail_drop=float(rng.uniform(0.0, 1.5)),
                     start=float(rng.uniform(0.0, 0.08)), end=float(rng.uniform(0.88, 1.02)),
                     taper=float(rng.uniform(0.3, 0.65)))
