"""Models of the people (and machines) the simulated PBX connects: seeded, so runs repeat.

Every draw takes the simulator's ``random.Random``, so one seed gives one sequence of outcomes.
Durations are in clock seconds (see :mod:`callcore.clock`).

- :class:`CalleeModel`: someone the dialer calls — answers, is busy, congested, never answers,
  or an answering machine answers (``AMD()`` then reports ``MACHINE``).
- :class:`AgentModel`: a queue member's phone — rings, is answered (or not), talk time.
- :class:`CallerModel`: an inbound caller — DTMF scripts and patience, as an
  :class:`~callcore.sim.agi_channel.Caller` for the AGI session.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence

import attrs

from callcore.sim.agi_channel import Caller, Press, PressDuring


@attrs.frozen
class Uniform:
    """Uniform between ``low`` and ``high`` seconds."""

    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@attrs.frozen
class Exponential:
    """Exponential with mean ``mean``, clipped to ``[minimum, maximum]`` (talk times)."""

    mean: float
    minimum: float = 0.0
    maximum: float = math.inf

    def sample(self, rng: random.Random) -> float:
        return min(max(rng.expovariate(1 / self.mean), self.minimum), self.maximum)


Distribution = Uniform | Exponential


class Outcome(enum.Enum):
    """What happens when a callee's phone is called."""

    ANSWER = "answer"
    MACHINE = "machine"
    BUSY = "busy"
    CONGESTION = "congestion"
    NO_ANSWER = "noanswer"


@attrs.frozen
class Decision:
    """One drawn call: the outcome, how long it rings, how long the far end stays."""

    outcome: Outcome
    ring: float
    talk: float


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


@attrs.frozen
class CalleeModel:
    """Outcome probabilities of an outbound call; the remainder is no answer."""

    answer: float = attrs.field(default=0.55, validator=_probability)
    machine: float = attrs.field(default=0.15, validator=_probability)
    busy: float = attrs.field(default=0.1, validator=_probability)
    congestion: float = attrs.field(default=0.05, validator=_probability)
    ring_time: Distribution = Uniform(2.0, 12.0)
    talk_time: Distribution = Exponential(90.0, 5.0, 900.0)
    machine_greeting: Distribution = Uniform(4.0, 12.0)

    def __attrs_post_init__(self) -> None:
        total = self.answer + self.machine + self.busy + self.congestion
        if total > 1.0 + 1e-9:
            raise ValueError(f"callee outcome probabilities add up to {total:.3f} > 1")

    def decide(self, rng: random.Random) -> Decision:
        draw = rng.random()
        ring = self.ring_time.sample(rng)
        for outcome, share in (
            (Outcome.ANSWER, self.answer),
            (Outcome.MACHINE, self.machine),
            (Outcome.BUSY, self.busy),
            (Outcome.CONGESTION, self.congestion),
        ):
            if draw < share:
                talk = (
                    self.machine_greeting if outcome is Outcome.MACHINE else self.talk_time
                ).sample(rng)
                return Decision(outcome, 0.0 if outcome is Outcome.BUSY else ring, talk)
            draw -= share
        return Decision(Outcome.NO_ANSWER, math.inf, 0.0)


@attrs.frozen
class AgentModel:
    """A queue member's phone: answer probability, ring time, talk time."""

    answer: float = attrs.field(default=0.9, validator=_probability)
    ring_time: Distribution = Uniform(1.0, 4.0)
    talk_time: Distribution = Exponential(120.0, 10.0, 1200.0)

    def decide(self, rng: random.Random) -> Decision:
        ring = self.ring_time.sample(rng)
        if rng.random() < self.answer:
            return Decision(Outcome.ANSWER, ring, self.talk_time.sample(rng))
        return Decision(Outcome.NO_ANSWER, math.inf, 0.0)


DtmfScript = tuple[Press | PressDuring, ...]


@attrs.frozen
class CallerModel:
    """Inbound callers: which DTMF script each follows (weighted) and how patient they are."""

    scripts: Sequence[tuple[DtmfScript, float]] = (((), 1.0),)
    patience: Distribution = Exponential(180.0, 20.0, 3600.0)
    """Seconds before the caller hangs up whatever happens."""
    media: dict[str, float] = attrs.field(factory=dict)
    """Prompt durations in seconds, by file name."""
    missing: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    """Sound files that do not exist."""

    def caller(self, rng: random.Random, number: str, name: str = "") -> Caller:
        scripts = [script for script, _ in self.scripts]
        weights = [weight for _, weight in self.scripts]
        script = rng.choices(scripts, weights)[0]
        return Caller(
            dtmf=script,
            number=number,
            name=name,
            media=self.media,
            missing=self.missing,
            hangup_at=self.patience.sample(rng),
        )
