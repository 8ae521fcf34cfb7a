"""Progress bars for the analysing commands: a line for each step of the plan as it begins, then one tqdm bar per
stage of that step, on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm

from core.progress import Plan


class Bars:
    """A line naming each step as it begins ("step 2 of 4: A vs its other seed"), then a tqdm bar per stage marked
    with the step ("2/4"), on stderr; silent on ranks other than 0 (`enabled` False). Called as a
    core.progress.Progress, (stage, done, total); `step` is a core.progress.Steps."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.stage, self.mark = enabled, None, None, ""

    def step(self, plan: Plan, k: int) -> None:
        if not self.enabled:
            return
        self.close()
        self.stage, self.mark = None, f"{k}/{len(plan.steps)} "
        tqdm.write(plan.line(k), file=sys.stderr)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage, self.bar = stage, tqdm(total=total, desc=self.mark + stage, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
