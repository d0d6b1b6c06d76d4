"""Hair styles, head coverings included: one typed definition per style, in the registry `HAIR_STYLES`.

A `HairStyle` holds everything about a style: the shape of its geometry (read by `face.hair.build_hair`), how often
each sex wears it and how that changes with age and ethnicity, what it does to the hairline and the painted scalp
(read by `sampling.appearance`), and its colour rules (strands that grey with age, or a fabric). Adding a style is
one entry in `HAIR_STYLES` plus its test. A leaf module: it imports only the project's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

GREY_HAIR_RGB = (0.82, 0.80, 0.75)  # fully grey hair (sRGB): `grey_fraction` of the locks and brow hairs turn it
# Hair is drawn as one surface for many strands. The strands shade each other, so the hair shows darker than one
# strand's colour: the surface's colour is the strands' (sRGB) times this. Without it, lit grey hair turns into a white
# helmet.
STRAND_SHADOW = 0.72


@dataclass(frozen=True)
class Wear:
    """How often one sex wears a style, relative to the other styles: `weight` at 25 years (age factor 0), times
    1 + `age_scale` x age factor, plus `age_gain` x age factor ** `age_power` (the age factor runs from 0 at 25 years
    to 1 at 90)."""

    weight: float
    age_scale: float = 0.0
    age_gain: float = 0.0
    age_power: float = 1.0

    def at(self, age_factor: float, ethnicity_factor: float = 1.0) -> float:
        """The weight at `age_factor`, the base weight scaled by `ethnicity_factor` first."""
        scaled = self.weight * ethnicity_factor * (1 + self.age_scale * age_factor)
        return scaled + self.age_gain * age_factor**self.age_power


@dataclass(frozen=True)
class HairStyle:
    """One hair style or head covering.

    Geometry (mm): the thickness of the hair on top and at the sides (0 and 0: a bald head, no mesh), the lowest
    point long hair falls to (None: no curtains, the hair ends at the nape), the amplitude of its waves and of its
    curls (small-scale volume); `bun` adds a bun at the back of the crown, `bare_crown` leaves the top of the head
    bare (a horseshoe at the sides and back).

    Who wears it: `female` and `male` (None: that sex never draws it), the base weight scaled by
    `ethnicity_factor[ethnicity]` (1 for groups not listed).

    The hairline: `fringe` styles may have a side-swept fringe; in men, `receded_temples` styles often show temples
    receded a further 6-16 mm; `temple_dip_mm` recedes them for everyone who wears it; `balding` is how far the
    painted hair cap of a man wearing it recedes (`Appearance.balding`, 0 .. 1).

    Colour rules: hair shows its strands (the identity's hair colour, a `grey_fraction` of the strands turned
    `GREY_HAIR_RGB`, streaks, darkened by `STRAND_SHADOW`); a covering (`covering_front_mm` set: its front edge
    sits that far above the top of the brows) shows its fabric (the identity's `covering_rgb`, folds, never grey).
    `roughness` is the material's (0 mirror .. 1 chalk).
    """

    name: str
    top_mm: float
    side_mm: float
    lowest_mm: float | None = None
    wave_mm: float = 0.0
    curl_mm: float = 0.0
    bun: bool = False
    bare_crown: bool = False
    female: Wear | None = None
    male: Wear | None = None
    ethnicity_factor: dict[str, float] = field(default_factory=dict)
    fringe: bool = False
    receded_temples: bool = False
    temple_dip_mm: float = 0.0
    balding: float = 0.0
    covering_front_mm: float | None = None
    roughness: float = 0.7

    @property
    def bald(self) -> bool:
        """No hair anywhere: no mesh is built."""
        return self.top_mm == 0 and self.side_mm == 0

    @property
    def covering(self) -> bool:
        """A head covering (fabric) rather than hair."""
        return self.covering_front_mm is not None

    @property
    def shadow(self) -> float:
        """What the surface's colour is multiplied by: strands shade each other, fabric does not."""
        return 1.0 if self.covering else STRAND_SHADOW

    def surface(self, hair_rgb, covering_rgb, grey_fraction: float) -> tuple[tuple[float, float, float], float]:
        """The colour rule: the sRGB colour (0-1) the style shows for a person with this hair, fabric and greying,
        and the share of its strands turned grey."""
        if self.covering:
            return tuple(float(c) for c in covering_rgb), 0.0
        return tuple(float(c) for c in hair_rgb), float(grey_fraction)

    def wear(self, female: bool) -> Wear | None:
        """How often the sex (`female` or not) wears it; None when never."""
        return self.female if female else self.male

    def weight(self, female: bool, ethnicity: str, age_factor: float) -> float:
        """The style's weight in the draw of a person of this sex, ethnicity and age factor (0 at 25 .. 1 at 90)."""
        wear = self.wear(female)
        return 0.0 if wear is None else wear.at(age_factor, self.ethnicity_factor.get(ethnicity, 1.0))


# `Appearance.hair_style` names one of these; one parametrised test builds every entry. Coverings are rare and never
# tied to a group.
HAIR_STYLES: dict[str, HairStyle] = {style.name: style for style in (
    HairStyle("buzz", 1.2, 0.8, male=Wear(18), receded_temples=True),
    HairStyle("short", 9.0, 4.5, female=Wear(9, age_scale=2.0), male=Wear(40), fringe=True, receded_temples=True),
    HairStyle("medium", 12.0, 8.0, lowest_mm=-55.0, wave_mm=1.5,  # a bob to the jaw; not every older woman's
              female=Wear(18, age_scale=0.5), male=Wear(7), fringe=True),
    HairStyle("long_straight", 10.0, 7.0, lowest_mm=-175.0, wave_mm=1.0,  # less common in older women
              female=Wear(24, age_scale=-0.4), male=Wear(3), ethnicity_factor={"Black": 0.4}, fringe=True),
    HairStyle("long_wavy", 13.0, 10.0, lowest_mm=-160.0, wave_mm=6.0,
              female=Wear(16, age_scale=-0.4), male=Wear(2), fringe=True),
    HairStyle("curly", 22.0, 18.0, lowest_mm=-70.0, wave_mm=3.0, curl_mm=4.0,  # in older women: permed and set hair
              female=Wear(8, age_scale=2.0), male=Wear(7), ethnicity_factor={"Black": 3.0}),
    HairStyle("afro", 42.0, 34.0, curl_mm=5.0, female=Wear(3), male=Wear(3), ethnicity_factor={"Black": 4.0}),
    HairStyle("bun", 6.0, 4.0, bun=True, female=Wear(11, age_scale=0.5)),  # hair pulled back, plus a bun at the back of the head
    HairStyle("receding", 6.0, 4.0, male=Wear(0, age_gain=30.0), receded_temples=True, temple_dip_mm=14.0,
              balding=0.25),
    HairStyle("balding", 3.0, 3.0, bare_crown=True,  # a horseshoe at the sides and back
              male=Wear(0, age_gain=30.0, age_power=1.5), balding=0.7),
    HairStyle("bald", 0.0, 0.0, male=Wear(3, age_gain=12.0), balding=1.0),
    HairStyle("headscarf", 5.0, 6.0, lowest_mm=-165.0, female=Wear(5), male=Wear(1), covering_front_mm=8.0,
              roughness=0.8),
    HairStyle("cap", 3.5, 3.0, female=Wear(2), male=Wear(4), covering_front_mm=22.0, roughness=0.8),
)}


def hair_style(name: str) -> HairStyle:
    """The registered style `name`."""
    if name not in HAIR_STYLES:
        raise ConfigError(f"unknown hair style {name!r}; choose one of {', '.join(HAIR_STYLES)}")
    return HAIR_STYLES[name]
