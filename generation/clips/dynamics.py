"""How pain unfolds in a clip: per-frame action units, PSPI, blinks and head pose (pure numpy, no rendering).

A clip is a rest lead-in at PSPI 0, then 1-3 pain episodes (onset, apex, offset) separated by rest, then rest to
the end. Every AU follows a smooth (C1) smoothstep ramp; brow lowering (AU4) and orbital tightening (AU6, AU7) lead,
the levator AUs (AU9, AU10) start later and release earlier, the eyes close (AU43) only on the apex of strong pain,
and the apex breathes by a few per cent. Spontaneous blinks are AU45, kept off AU43's frames and out of PSPI. The
head sways by a few degrees and is lowered and turned away in pain. Every range below, with its source, is in
docs/clips.md. Every draw comes from the named streams `clip/...` at (seed, identity, clip), so a clip depends on
those three numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..columns import CLIP_AUS, HEAD_POSE_AXES as HEAD_AXES
from ..facs import BLINK_AU, PAIN_AUS, PSPI_MAX, pspi
from ..rng import stream
from ..sampling.au_sampling import PSPI_LEVELS, sample_pain_action_units

# --- ranges (seconds unless named otherwise); docs/clips.md gives the source of each
LEAD_IN_S = (1.0, 2.0)  # rest at PSPI 0 before the first episode
ONSET_S = (0.3, 1.5)  # neutral -> apex
APEX_S = (0.5, 4.0)  # held at the apex
OFFSET_S = (0.5, 2.5)  # apex -> neutral
GAP_S = (0.5, 3.0)  # rest between episodes
EPISODES = (1, 3)  # pain episodes per clip (fewer when the clip is too short for the drawn ones)
MIN_EPISODE_S = ONSET_S[0] + APEX_S[0] + OFFSET_S[0]
# AU-specific lags, as fractions of the onset (start later) and of the offset (release earlier): brow and orbital
# tightening lead, the levator AUs follow.
LAG_FRACTION = {"AU4": 0.0, "AU6": 0.0, "AU7": 0.0, "AU9": 0.3, "AU10": 0.3}
EYES_CLOSED_MIN_PSPI = 8  # AU43 only on the apex of an episode this strong or stronger
APEX_DIP = (0.03, 0.08)  # the apex breathes: intensities dip by this fraction, in whole cycles of APEX_PERIOD_S
APEX_PERIOD_S = (0.8, 2.0)
BLINKS_PER_MINUTE = (8.0, 21.0)  # spontaneous blink rate at rest
BLINK_S = (0.1, 0.4)  # blink duration, lids closing and opening
BLINK_REFRACTORY_S = 0.25  # least time between one blink's end and the next one's start
BLINK_AU43_MARGIN_S = 0.1  # blinks keep this far from frames with AU43 (eyes closed in pain)
NON_PAIN_S = (0.3, 0.8), (0.3, 1.5), (0.3, 0.8)  # onset, hold, offset of a non-pain episode (smile, lips part)
NON_PAIN_MIN_REST_S = 1.0  # a non-pain episode needs a rest stretch this long
HEAD_REST_DEG = {"yaw": (0.5, 3.0), "pitch": (0.5, 2.5), "roll": (0.3, 1.5)}  # sway amplitude (sum of 3 sines)
HEAD_SWAY_HZ = (0.05, 0.4)
HEAD_PAIN_DEG = {"yaw": 5.0, "pitch": 6.0}  # turned away and lowered at PSPI 16, in proportion to the episode's PSPI
AU_QUANTUM = 1 / 256  # intensities are multiples of this, so float32 storage and PSPI sums are exact



@dataclass(frozen=True)
class Episode:
    """One pain episode: its phases' boundaries (seconds from the clip's start), its apex PSPI and AUs."""

    onset_start: float
    apex_start: float
    apex_end: float
    offset_end: float
    apex_pspi: int
    action_units: dict  # intensities at the apex (integers; AU43 0/1)

    @property
    def onset(self) -> float:
        return self.apex_start - self.onset_start

    @property
    def apex(self) -> float:
        return self.apex_end - self.apex_start

    @property
    def offset(self) -> float:
        return self.offset_end - self.apex_end


@dataclass(frozen=True)
class ClipDynamics:
    """Everything that moves in one clip, per frame (N = seconds x fps)."""

    fps: int
    times: np.ndarray  # (N,) seconds
    action_units: dict[str, np.ndarray]  # CLIP_AUS -> (N,) intensities (AU43 0/1, AU45 closure 0-1)
    pspi: np.ndarray  # (N,) the PSPI of each frame's AUs (generation.facs.pspi)
    head_pose: np.ndarray  # (N, 3) head motion: yaw, pitch, roll in degrees, the angles of `views.View` (`head_view`)
    episodes: tuple[Episode, ...]
    blinks: tuple[tuple[float, float], ...]  # (start, duration) in seconds
    non_pain: tuple[str, float, float] | None  # (AUs, start, end) of a non-pain episode, or None
    apex_pspi: int  # the balanced target: the strongest episode's apex PSPI

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def frame(self, n: int) -> dict[str, float]:
        """AU intensities of frame `n` (the AUs that are not 0)."""
        return {name: float(curve[n]) for name, curve in self.action_units.items() if curve[n]}

    @property
    def blinks_per_minute(self) -> float:
        return 60.0 * len(self.blinks) / (self.num_frames / self.fps)


def apex_pspi_target(seed: int, identity_index: int, clip_number: int, clips_per_identity: int) -> int:
    """Apex PSPI (1..16) of a clip: the clips in dataset order are cut into blocks of 16, each a seeded permutation of
    1..16 (as the stills balance their targets), so any prefix of the dataset is balanced to within one per level."""
    block, offset = divmod(identity_index * clips_per_identity + clip_number, len(PSPI_LEVELS))
    return PSPI_LEVELS[stream("clip/apex_pspi", seed, block).permutation(len(PSPI_LEVELS))[offset]]


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, 3x^2 - 2x^3 between: continuous with a continuous slope (C1)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def envelope(t: np.ndarray, start: float, rise_end: float, fall_start: float, end: float) -> np.ndarray:
    """0 before `start`, up to 1 by `rise_end`, held, down to 0 from `fall_start` to `end`; C1."""
    return smoothstep((t - start) / (rise_end - start)) * (1.0 - smoothstep((t - fall_start) / (end - fall_start)))


def _phase(rng: np.random.Generator, low_high: tuple[float, float]) -> float:
    return float(rng.uniform(*low_high))


def _fit(phases: list[float], minima: list[float], room: float) -> list[float]:
    """Shrink each phase's excess over its minimum by one factor so the phases fit in `room` (ranges still hold)."""
    total, least = sum(phases), sum(minima)
    if total <= room:
        return phases
    scale = max(0.0, room - least) / (total - least)
    return [low + (p - low) * scale for p, low in zip(phases, minima)]


def _apex_units(target: int, rng: np.random.Generator) -> dict[str, float]:
    """Pain AUs with PSPI exactly `target`; the eyes close only at EYES_CLOSED_MIN_PSPI or more."""
    while True:  # below the threshold a configuration without AU43 always exists, and is drawn often
        units = sample_pain_action_units(target, rng)
        if target >= EYES_CLOSED_MIN_PSPI or not units.get("AU43"):
            return units


def clip_dynamics(seed: int, identity_index: int, clip_number: int, seconds: float, fps: int,
                  clips_per_identity: int = 1, non_pain_probability: float = 0.3,
                  apex_pspi: int | None = None) -> ClipDynamics:
    """The dynamics of clip `clip_number` of identity `identity_index` (seed, identity and clip alone decide it);
    `apex_pspi` (1..16) replaces the balanced apex target (the demo picks it)."""
    keys = (seed, identity_index, clip_number)
    num_frames = int(round(seconds * fps))
    t = np.arange(num_frames) / fps
    target = apex_pspi_target(seed, identity_index, clip_number, clips_per_identity) if apex_pspi is None \
        else int(apex_pspi)
    if target not in PSPI_LEVELS:
        raise ValueError(f"apex PSPI must be an integer within 1-{PSPI_MAX}, got {apex_pspi!r}")
    episodes = _episodes(stream("clip/episodes", *keys), target, seconds)
    curves = {name: np.zeros(num_frames) for name in CLIP_AUS}
    lead = np.zeros(num_frames)  # the leading AUs' envelope times the episode's PSPI share: drives the head
    for episode in episodes:
        dip_rng = stream("clip/apex_dip", *keys, int(round(episode.onset_start * 1000)))
        dip, period = _phase(dip_rng, APEX_DIP), _phase(dip_rng, APEX_PERIOD_S)
        period = episode.apex / max(1, round(episode.apex / period))  # whole cycles: C1 where the apex ends
        inside = (t >= episode.apex_start) & (t <= episode.apex_end)
        breathing = 1.0 - dip * np.where(inside, 0.5 * (1 - np.cos(2 * np.pi * (t - episode.apex_start) / period)), 0)
        for name, lag in LAG_FRACTION.items():
            shape = envelope(t, episode.onset_start + lag * episode.onset, episode.apex_start, episode.apex_end,
                             episode.offset_end - lag * episode.offset)
            curves[name] += episode.action_units.get(name, 0.0) * shape * breathing
        if episode.action_units.get("AU43"):  # binary, as FACS and PSPI score it: shut for the apex
            curves["AU43"][inside] = 1.0
        lead += envelope(t, episode.onset_start, episode.apex_start, episode.apex_end, episode.offset_end) \
            * episode.apex_pspi / PSPI_MAX
    for name in LAG_FRACTION:
        curves[name] = np.round(curves[name] / AU_QUANTUM) * AU_QUANTUM
    rests = _rests(episodes, seconds)
    non_pain = _non_pain(stream("clip/non_pain", *keys), rests, non_pain_probability, t, curves)
    blinks = _blinks(stream("clip/blinks", *keys), seconds, t, curves)
    head = _head(stream("clip/head", *keys), t, lead)
    frame_pspi = np.array([
        pspi({name: float(curves[name][n]) for name in PAIN_AUS}) for n in range(num_frames)
    ])
    return ClipDynamics(fps, t, curves, frame_pspi, head, tuple(episodes), blinks, non_pain, target)


def _episodes(rng: np.random.Generator, target: int, seconds: float) -> list[Episode]:
    """1-3 episodes one after another; the first has the clip's apex target and always fits, later ones only when
    their shortest form fits. Every draw is made whether or not it is used, so the draws never shift."""
    wanted = int(rng.integers(EPISODES[0], EPISODES[1] + 1))
    lead_in = _phase(rng, LEAD_IN_S)
    lead_in = min(lead_in, seconds - MIN_EPISODE_S)
    episodes, now = [], lead_in
    minima = [ONSET_S[0], APEX_S[0], OFFSET_S[0]]
    for k in range(EPISODES[1]):
        phases = [_phase(rng, ONSET_S), _phase(rng, APEX_S), _phase(rng, OFFSET_S)]
        gap = _phase(rng, GAP_S)
        apex_pspi = target if k == 0 else int(rng.integers(1, target + 1))
        units = _apex_units(apex_pspi, rng)
        start = now if k == 0 else now + gap
        room = seconds - start
        if k >= wanted or room < MIN_EPISODE_S:
            continue
        onset, apex, offset = _fit(phases, minima, room)
        episodes.append(Episode(start, start + onset, start + onset + apex, start + onset + apex + offset,
                                apex_pspi, units))
        now = episodes[-1].offset_end
    return episodes


def _rests(episodes: list[Episode], seconds: float) -> list[tuple[float, float]]:
    """The stretches at PSPI 0 (start, end): the lead-in, the gaps and the tail."""
    edges = [0.0] + [x for e in episodes for x in (e.onset_start, e.offset_end)] + [seconds]
    return [(edges[k], edges[k + 1]) for k in range(0, len(edges), 2) if edges[k + 1] > edges[k]]


def _non_pain(rng, rests, probability, t, curves) -> tuple[str, float, float] | None:
    """Maybe a smile (AU12) or parted lips and a dropped jaw (AU25 + AU26) in the longest rest stretch."""
    happens = rng.random() < probability
    smile = rng.random() < 0.5
    intensities = (float(rng.integers(1, 4)), float(rng.integers(0, 3)))
    phases = [_phase(rng, low_high) for low_high in NON_PAIN_S]
    start, end = max(rests, key=lambda r: r[1] - r[0])
    if not happens or end - start < NON_PAIN_MIN_REST_S:
        return None
    start, end = start + 0.1, end - 0.1  # clear of the pain episode's first and last frames
    onset, hold, offset = _fit(phases, [low for low, _ in NON_PAIN_S], end - start)
    stop = start + onset + hold + offset
    shape = envelope(t, start, start + onset, start + onset + hold, stop)
    units = {"AU12": intensities[0]} if smile else {"AU25": intensities[0], "AU26": intensities[1]}
    for name, value in units.items():
        curves[name] = np.round(value * shape / AU_QUANTUM) * AU_QUANTUM
    return ("+".join(units), start, stop)


def _blinks(rng, seconds, t, curves) -> tuple[tuple[float, float], ...]:
    """Spontaneous blinks at a per-clip rate: raised-cosine lid closures (C1), none near frames with AU43."""
    rate = _phase(rng, BLINKS_PER_MINUTE) / 60.0
    closed = t[curves["AU43"] > 0]
    blinks, now = [], float(rng.uniform(0, 1 / rate))
    while now < seconds:
        duration = _phase(rng, BLINK_S)
        if now + duration <= seconds and not np.any((closed > now - BLINK_AU43_MARGIN_S)
                                                     & (closed < now + duration + BLINK_AU43_MARGIN_S)):
            blinks.append((now, duration))
            inside = (t >= now) & (t <= now + duration)
            curves[BLINK_AU][inside] = 0.5 * (1 - np.cos(2 * np.pi * (t[inside] - now) / duration))
        now += duration + BLINK_REFRACTORY_S + float(rng.exponential(max(1 / rate - BLINK_REFRACTORY_S, 0.05)))
    curves[BLINK_AU] = np.round(curves[BLINK_AU] / AU_QUANTUM) * AU_QUANTUM
    return tuple(blinks)


def _head(rng, t, pain) -> np.ndarray:
    """(N, 3) yaw, pitch, roll in degrees (`views.View`'s angles): a sway of three slow sines per axis (amplitudes
    summing to at most the axis's bound) plus, in pain, the head lowered (pitch > 0: the face seen from above) and
    turned (yaw, to a side drawn per clip)."""
    pose = np.zeros((len(t), 3))
    for axis, name in enumerate(HEAD_AXES):
        amplitude = _phase(rng, HEAD_REST_DEG[name])
        shares = rng.dirichlet(np.ones(3))
        for share in shares:
            pose[:, axis] += amplitude * share * np.sin(2 * np.pi * _phase(rng, HEAD_SWAY_HZ) * t
                                                        + rng.uniform(0, 2 * np.pi))
    side = 1.0 if rng.random() < 0.5 else -1.0
    pose[:, 0] += side * HEAD_PAIN_DEG["yaw"] * pain
    pose[:, 1] += HEAD_PAIN_DEG["pitch"] * pain
    return pose


def head_view(view, head_pose) -> object:
    """The frame's camera: `view` turned by the head motion `head_pose` (yaw, pitch, roll in degrees), angle by
    angle in `views.View`'s convention, the one the stills' `head_pose` column stores (docs/ground_truth.md); a
    clip's per-frame `head_pose` is this view's angles. Moving the camera rather than the head keeps the lights,
    which are fixed to the camera, on the face as a room's lights stay on a turning head."""
    from dataclasses import replace

    yaw, pitch, roll = (float(x) for x in head_pose)
    return replace(view, yaw=round(view.yaw + yaw, 4), pitch=round(view.pitch + pitch, 4),
                   roll=round(view.roll + roll, 4))
