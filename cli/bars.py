"""Progress bars for the analysing commands: one tqdm bar per stage, on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Bars:
    """A tqdm bar per stage, on stderr; silent on ranks other than 0 (`enabled` False). Called as a
    core.progress.Progress: (stage, done, total)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.stage = enabled, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage:
            self.close()
            self.stage, self.bar = stage, tqdm(total=total, desc=stage, file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
