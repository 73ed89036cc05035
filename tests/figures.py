"""Figures a test's code drew: matplotlib's `close` recorded."""


def closed_figures(monkeypatch):
    """A list that collects every figure `matplotlib.pyplot.close` is given
    (the plotting code closes each figure it saves), closing them as before."""
    import matplotlib.pyplot as plt

    figs = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig) or real_close(fig))
    return figs
