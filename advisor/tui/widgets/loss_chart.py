"""The run screen's live loss chart: training loss per step, held-out loss where evaluated."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

MAX_POINTS = 400
"""Long runs are thinned to this many points: a terminal has fewer columns than that anyway."""


def thin(points: Sequence[tuple[int, float]], limit: int = MAX_POINTS) -> list[tuple[int, float]]:
    """Every k-th point so at most ``limit`` remain (the last point is always kept)."""
    if len(points) <= limit:
        return list(points)
    stride = -(-len(points) // limit)
    kept = list(points[::stride])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept


class LossChart(PlotextPlot):
    """A braille line chart of loss against step; call :meth:`show_losses` with new points."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._train: list[tuple[int, float]] = []
        self._eval: list[tuple[int, float]] = []
        self._draw()

    def show_losses(self, train: Sequence[tuple[int, float]], held_out: Sequence[tuple[int, float]] = ()) -> None:
        train_points, eval_points = thin(train), thin(held_out)
        if train_points == self._train and eval_points == self._eval:
            return
        self._train, self._eval = train_points, eval_points
        self._draw()
        self.refresh()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("step")
        if not self._train and not self._eval:
            plt.title("loss: waiting for the first step")
            return
        plt.title("loss")
        if self._train:
            plt.plot([s for s, _ in self._train], [v for _, v in self._train], marker="braille", label="train")
        if self._eval:
            plt.scatter([s for s, _ in self._eval], [v for _, v in self._eval], marker="●", label="held-out")
