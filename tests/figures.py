"""What a test's code drew: the figures matplotlib's `close` was given, the points `scatter` drew."""


def closed_figures(monkeypatch):
    """A list that collects every figure `matplotlib.pyplot.close` is given
    (the plotting code closes each figure it saves), closing them as before."""
    import matplotlib.pyplot as plt

    figs = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig) or real_close(fig))
    return figs


def scatter_calls(monkeypatch):
    """A list that collects every `Axes.scatter` call as ``(xs, ys,
    kwargs)`` (coordinates as arrays), drawing each as before."""
    import matplotlib.axes
    import numpy as np

    calls = []
    scatter = matplotlib.axes.Axes.scatter

    def spy(self, xs, ys, *args, **kwargs):
        calls.append((np.asarray(xs), np.asarray(ys), kwargs))
        return scatter(self, xs, ys, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", spy)
    return calls
