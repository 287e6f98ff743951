"""The one progress bar of the package's long loops (tqdm, `show_progress=`)."""
from __future__ import annotations

from typing import Any, Optional


class ProgressBar:
    """A tqdm bar over `total` items that draws its 100% line once.

    tqdm's ``close()`` always redraws the final state, and an ``update()``
    that reaches the total draws it as well when the step took longer than
    tqdm's refresh interval: on a terminal the carriage return hides the
    repeat, in a log both lines stay (issue 14). So the step that reaches the
    total only counts, and ``close()`` draws. With ``show=False`` nothing is
    drawn and tqdm is not even imported (``tqdm.auto`` warns in notebooks
    without ipywidgets).
    """

    def __init__(self, total: Optional[int], show: bool, desc: Optional[str] = None, unit: str = "it") -> None:
        self._bar = None
        if show:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, desc=desc, unit=unit)

    def update(self, n: int) -> None:
        bar = self._bar
        if bar is None:
            return
        if bar.total is not None and bar.n + n >= bar.total:
            bar.n += n  # close() draws the final line
        else:
            bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
