"""Simulation scenarios: what a model's signals look like over time, and what goes wrong.

A scenario is a YAML file (see ``examples/scenarios/``) describing, per policy signal, a
noisy baseline (level, Gaussian or multiplicative log-normal noise, AR(1) autocorrelation,
traffic-dependent noise), and events: regressions (step, ramp or drift; curable by a rollback
or not), flapping regressions, regressions that recover by themselves, data gaps, and GitOps
re-applying the bad revision. ``rollguard.simulation.generate`` turns it into series; the
simulator evaluates them with the policy. Loaders read files (keyword-only arguments);
everything else is pure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from rollguard.api.base import Duration, Finite, Model, Name, SignalName, duration_seconds
from rollguard.api.policy import EffectivePolicy
from rollguard.files.loading import InputError, format_validation_error, read_yaml

# A scenario longer than this many samples per seed is a typo, not a scenario.
MAX_SAMPLES = 1_000_000
EVENT_KINDS = frozenset({"regression", "recovery", "flapping", "gap", "reapply"})


class Noise(Model):
    """Per-sample noise around the level."""

    model: Literal["gaussian", "lognormal"] = Field(
        default="gaussian",
        description="gaussian: additive, sigma in the signal's unit; lognormal: multiplicative "
        "(mean-preserving), sigma of the logarithm.",
    )
    sigma: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = Field(
        description="Standard deviation at traffic 1."
    )


class SignalGenerator(Model):
    """How one signal behaves when nothing is wrong."""

    baseline: Finite = Field(description="Level of the signal when healthy.")
    noise: Noise = Field(description="Noise model.")
    autocorrelation: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        default=0.0, description="AR(1) coefficient phi of the noise between consecutive samples."
    )
    floor: Finite | None = Field(default=None, description="Values are clipped at this minimum.")
    ceiling: Finite | None = Field(default=None, description="Values are clipped at this maximum.")
    drop_rate: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        default=0.0, description="Probability that a sample is missing (scrape failures)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> SignalGenerator:
        if self.floor is not None and self.ceiling is not None and self.floor >= self.ceiling:
            raise ValueError(f"floor ({self.floor}) must be below ceiling ({self.ceiling})")
        return self


class _Effect(Model):
    """A shift of some signals' level between start and end."""

    start: Duration = Field(description="When it begins, from the start of the scenario.")
    end: Duration | None = Field(
        default=None, description="When it resolves by itself; never (within the run) if unset."
    )
    shape: Literal["step", "ramp", "drift"] = Field(
        default="step",
        description="step: full magnitude at once; ramp: linear to the magnitude over rampFor, "
        "then flat; drift: linear growth that reaches the magnitude after rampFor (default: at "
        "the end) and keeps growing.",
    )
    ramp_for: Duration | None = Field(default=None, description="See shape.")
    magnitude: dict[SignalName, Finite] = Field(
        min_length=1, description="Signal name to shift of its level, in the signal's unit."
    )
    curable: bool = Field(
        default=True,
        description="True when the bad revision causes it, so a rollback removes it.",
    )

    @property
    def start_s(self) -> float:
        return duration_seconds(self.start)

    @property
    def end_s(self) -> float | None:
        return None if self.end is None else duration_seconds(self.end)

    @property
    def ramp_s(self) -> float | None:
        return None if self.ramp_for is None else duration_seconds(self.ramp_for)

    @model_validator(mode="after")
    def _times(self) -> _Effect:
        end = self.end_s
        if end is not None and end <= self.start_s:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if self.shape == "ramp" and self.ramp_for is None:
            raise ValueError("shape ramp needs rampFor")
        if self.ramp_s == 0.0:
            raise ValueError("rampFor must be longer than 0s")
        return self


class Regression(_Effect):
    """The new revision makes some signals worse from ``start`` on."""

    kind: Literal["regression"]


class Recovery(_Effect):
    """A regression that resolves by itself at ``end`` (a warm-up, a transient dependency)."""

    kind: Literal["recovery"]

    @model_validator(mode="after")
    def _has_end(self) -> Recovery:
        if self.end is None:
            raise ValueError("a recovery needs end (when it resolves by itself)")
        return self


class Flapping(_Effect):
    """A regression that is on for ``onFor`` out of every ``period``."""

    kind: Literal["flapping"]
    period: Duration = Field(description="Length of one on/off cycle.")
    on_for: Duration = Field(description="How long of each cycle the regression shows.")

    @model_validator(mode="after")
    def _cycle(self) -> Flapping:
        if not 0 < duration_seconds(self.on_for) < duration_seconds(self.period):
            raise ValueError(f"onFor ({self.on_for}) must be between 0s and period ({self.period})")
        return self


class Gap(Model):
    """Samples missing for a while (Prometheus down, scrape target gone)."""

    kind: Literal["gap"]
    start: Duration = Field(description="When the gap begins.")
    samples: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] = Field(
        description="How many consecutive samples are missing."
    )
    signals: list[SignalName] | None = Field(
        default=None, description="Signals affected; all when unset."
    )


class Reapply(Model):
    """GitOps re-applies the bad revision: every cured regression comes back."""

    kind: Literal["reapply"]
    at: Duration = Field(description="When the bad revision is applied again.")


Effect = Regression | Recovery | Flapping
Event = Annotated[Regression | Recovery | Flapping | Gap | Reapply, Field(discriminator="kind")]


class Scenario(Model):
    """One simulation scenario."""

    name: Name = Field(description="Scenario name (lower case, dashes).")
    description: str = Field(default="", max_length=4096, description="What it exercises.")
    duration: Duration = Field(description="Simulated time per seed.")
    sample_interval: Duration = Field(
        default="15s", description="Scrape resolution: one sample per signal per interval."
    )
    traffic: Annotated[float, Field(gt=0.0, le=1000.0)] = Field(
        default=1.0,
        description="Traffic relative to nominal; noise scales with 1/sqrt(traffic), so low "
        "traffic makes ratios noisier.",
    )
    rollout_delay: Duration = Field(
        default="30s", description="From executing a rollback until the old revision serves."
    )
    approval_delay: Duration | None = Field(
        default="10m",
        description="How long a human takes to approve an action outside the auto-approval "
        "boundary; null: nobody approves (the policy's onTimeout applies).",
    )
    signals: dict[SignalName, SignalGenerator] = Field(
        min_length=1, description="Generator per policy signal."
    )
    events: list[Event] = Field(default_factory=list, description="What happens, in any order.")

    @property
    def duration_s(self) -> float:
        return duration_seconds(self.duration)

    @property
    def dt(self) -> float:
        return duration_seconds(self.sample_interval)

    @property
    def samples(self) -> int:
        """Samples per signal per seed (at times 0, dt, 2 dt, ...)."""
        return int(self.duration_s // self.dt) + 1

    @property
    def effects(self) -> list[Effect]:
        return [e for e in self.events if isinstance(e, Regression | Recovery | Flapping)]

    @property
    def gaps(self) -> list[Gap]:
        return [e for e in self.events if isinstance(e, Gap)]

    @property
    def reapply_times(self) -> list[float]:
        return sorted(duration_seconds(e.at) for e in self.events if isinstance(e, Reapply))

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.dt <= 0:
            raise ValueError("sampleInterval must be longer than 0s")
        if self.duration_s < self.dt:
            raise ValueError(f"duration ({self.duration}) is shorter than sampleInterval")
        if self.samples > MAX_SAMPLES:
            raise ValueError(
                f"{self.samples} samples per signal (duration / sampleInterval) is more than "
                f"{MAX_SAMPLES}"
            )
        known = set(self.signals)
        for i, event in enumerate(self.events):
            names: list[str] = []
            if isinstance(event, Regression | Recovery | Flapping):
                names = list(event.magnitude)
                start = event.start_s
            elif isinstance(event, Gap):
                names = list(event.signals or [])
                start = duration_seconds(event.start)
            else:
                start = duration_seconds(event.at)
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(
                    f"events[{i}]: unknown signal {', '.join(unknown)} "
                    f"(scenario signals: {', '.join(self.signals)})"
                )
            if start >= self.duration_s:
                raise ValueError(
                    f"events[{i}]: starts at or after the end of the scenario ({self.duration})"
                )
        return self


def check_against(scenario: Scenario, policy: EffectivePolicy, *, source: str) -> None:
    """Refuse a scenario whose signals are not exactly the policy's, or that the policy's
    window cannot be evaluated on."""
    wanted = [s.name for s in policy.signals]
    extra = [n for n in scenario.signals if n not in wanted]
    if extra:
        raise InputError(
            f"{source}: signals.{extra[0]}: not a signal of the policy "
            f"(policy signals: {', '.join(wanted)})"
        )
    missing = [n for n in wanted if n not in scenario.signals]
    if missing:
        raise InputError(f"{source}: signals: no generator for policy signal {', '.join(missing)}")
    window = duration_seconds(policy.evaluation.window)
    if window < scenario.dt:
        raise InputError(
            f"{source}: sampleInterval: {scenario.sample_interval} is longer than the policy's "
            f"evaluation window ({policy.evaluation.window})"
        )


def parse_scenario(doc: Any, *, source: str) -> Scenario:
    """A scenario from its parsed YAML document."""
    if not isinstance(doc, dict):
        raise InputError(f"{source}: expected a mapping with name, duration, signals, events")
    try:
        return Scenario.model_validate(doc)
    except ValidationError as err:
        raise InputError(format_validation_error(source, err, skip=EVENT_KINDS)) from err


def load_scenario(*, path: Path, policy: EffectivePolicy | None = None) -> Scenario:
    """Read one scenario file; with ``policy``, also check its signals against the policy."""
    scenario = parse_scenario(read_yaml(path=path), source=path.name)
    if policy is not None:
        check_against(scenario, policy, source=path.name)
    return scenario


def scenario_files(*, paths: list[Path]) -> list[tuple[Path, bool]]:
    """Expand directories into their ``*.yaml``/``*.yml`` files (sorted); plain files are
    kept as given. Each path comes with whether it was found by expanding a directory."""
    out: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not found:
                raise InputError(f"{path}: no scenario files (*.yaml) in this directory")
            out.extend((p, True) for p in found)
        elif path.exists():
            out.append((path, False))
        else:
            raise InputError(f"{path}: no such file or directory")
    return out


def load_scenarios(*, paths: list[Path], policy: EffectivePolicy) -> list[Scenario]:
    """Every scenario named by ``paths`` (files or directories), checked against ``policy``.

    Kubernetes objects (a document with ``kind``, like the policy kept next to the
    scenarios) found in a directory are skipped; names must be unique.
    """
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for path, from_dir in scenario_files(paths=paths):
        doc = read_yaml(path=path)
        if from_dir and isinstance(doc, dict) and "kind" in doc:
            continue
        scenario = parse_scenario(doc, source=path.name)
        check_against(scenario, policy, source=path.name)
        if scenario.name in seen:
            raise InputError(
                f"{path.name}: name: {scenario.name!r} is also the name of {seen[scenario.name]}"
            )
        seen[scenario.name] = path
        scenarios.append(scenario)
    if not scenarios:
        raise InputError(f"{', '.join(map(str, paths))}: no scenarios found")
    return scenarios
