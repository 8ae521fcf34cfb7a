"""How the engine reports progress: a callback taking (stage, done, total), and the plan of the steps it runs.

A stage is what runs now ("A: forward passes and Grams", 3 of 10 minibatches); it starts over with each network
and each comparison. The plan says where that stands in the whole: the steps an analysis will run (A vs B, then
each ceiling, then the floors), in order and each counted once, so a face can show "step 2 of 4: A vs its other
seed" and never appear to start over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default: report nothing."""
    return None


@dataclass(frozen=True)
class Plan:
    """The steps an analysis will run, in order, each named once in the user's words ("A vs its other seed")."""

    steps: tuple[str, ...] = ()

    def line(self, k: int) -> str:
        """What step k (from 1) is, as the faces show it: 'step k of n: its name'."""
        return f"step {k} of {len(self.steps)}: {self.steps[k - 1]}"


Steps = Callable[[Plan, int], None]  # told (the plan, k) as step k of the plan (from 1) begins


def no_steps(plan: Plan, k: int) -> None:
    """The default: report nothing."""
    return None


class Course:
    """An analysis going through its plan: the pipeline sets the plan once it knows what it will compute
    (`follow`), then begins each step by name (`begin`), and `steps` hears (plan, k) each time. A step begun that
    was not planned is added at the end, so the count never hides work."""

    def __init__(self, steps: Steps = no_steps) -> None:
        self.steps = steps
        self.plan = Plan()

    def follow(self, steps: Sequence[str]) -> None:
        """From now on, the plan is `steps` (a new analysis, or one that had to change course)."""
        self.plan = Plan(tuple(steps))

    def begin(self, step: str) -> None:
        """Step `step` begins."""
        if step not in self.plan.steps:
            self.plan = Plan((*self.plan.steps, step))
        self.steps(self.plan, self.plan.steps.index(step) + 1)
