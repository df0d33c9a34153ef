"""affect: facial affect analysis in-the-wild (Kollias & Zafeiriou).

``affect.Analyzer`` and ``affect.plot_timeline`` (:mod:`affect.analyzer`) are imported on first
use, so ``import affect`` stays light.
"""

__all__ = ["Analyzer", "plot_timeline"]


def __getattr__(name: str):
    if name in __all__:
        from affect import analyzer

        return getattr(analyzer, name)
    raise AttributeError(f"module 'affect' has no attribute {name!r}")
