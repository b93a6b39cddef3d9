"""The look of the report's figures (``report.style`` in a configuration, ``tfp-anomaly report --style``).

:data:`STYLES` maps a name to a :class:`Style`: ``plain`` (matplotlib's defaults, no extra package),
``atlas`` and ``cms`` (the experiments' conventions from `mplhep <https://mplhep.readthedocs.io>`_:
TeX Gyre Heros fonts, ticks inside on all four sides, minor ticks). Only the style is applied, never an
experiment label ("ATLAS Internal"): that is the analyst's call. A style holds only while the report
draws (:func:`style_context`): matplotlib's global settings are restored afterwards. mplhep is
imported when an mplhep style is used, not before.
"""
from __future__ import annotations

import contextlib
import dataclasses

from ..registry import Registry

#: mplhep's styles are drawn for 10 × 10 inch figures; the report's are about 4 inches wide, so the
#: font and tick sizes a style sets are scaled by this factor
MPLHEP_SCALE = 0.4
_SCALED = ("font.size", "xtick.major.size", "xtick.minor.size", "ytick.major.size", "ytick.minor.size",
           "xtick.major.width", "ytick.major.width", "axes.linewidth", "lines.linewidth")


@dataclasses.dataclass(frozen=True)
class Style:
    """A look for the figures: the name of an mplhep style (``mplhep.style.use``), or None for
    matplotlib's own defaults."""

    mplhep: str | None = None
    description: str = ""

    def check(self) -> None:
        """Raise ``ImportError`` (one line, saying what to install) when the style needs mplhep and it
        is missing."""
        if self.mplhep is not None:
            _mplhep(self.mplhep)

    def apply(self) -> None:
        """Set the style in matplotlib's current settings (call inside ``matplotlib.rc_context``)."""
        if self.mplhep is None:
            return
        import matplotlib

        params = matplotlib.rcParams
        before = {key: params[key] for key in _SCALED}
        _mplhep(self.mplhep).style.use(self.mplhep)
        params.update({key: float(params[key]) * MPLHEP_SCALE for key in _SCALED  # the sizes the style set
                       if isinstance(params[key], (int, float)) and params[key] != before[key]})


STYLES = Registry("report style", listing="styles")
STYLES.register("plain", Style(None, "matplotlib's defaults"))
STYLES.register("atlas", Style("ATLAS", "the ATLAS style of mplhep"))
STYLES.register("cms", Style("CMS", "the CMS style of mplhep"))


def _mplhep(style: str):
    try:
        import mplhep
    except ImportError:
        raise ImportError(f"the {style} report style needs mplhep: pip install 'mplhep>=0.3.50,<2' "
                          "(or use the plain style)") from None
    return mplhep


def lookup(name: str, what: str = "report.style") -> Style:
    """The :class:`Style` called ``name``, checked usable (:meth:`Style.check`); an unknown name is a
    ``ValueError`` listing the styles."""
    style = STYLES.lookup(name, what)
    style.check()
    return style


@contextlib.contextmanager
def style_context(name: str = "plain"):
    """Within the block, figures are drawn in style ``name``; matplotlib's settings are restored after."""
    import matplotlib

    style = lookup(name)
    with matplotlib.rc_context():
        style.apply()
        yield style
