"""matplotlib, the optional dependency of the plots (the `plot` extra)."""


def import_figure():
    """`matplotlib.figure.Figure`, or an ImportError saying how to install
    it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "Plotting attention needs matplotlib, which is not installed. "
            'Install it with: pip install "keras-seqext[plot]"'
        ) from error
    return Figure
