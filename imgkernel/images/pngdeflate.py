"""Deflate for the PNG writer: which library, level and strategy each compress level uses.

Compress levels, fast -> small.  Every strip keeps the smallest of the
candidates its level tries (see :class:`Plan`); each candidate names
python-isal / zlib-ng / stdlib zlib settings, the first that imports used:

=====  ================  ==================================================
level  filters per band  deflate candidates
=====  ================  ==================================================
0      None              stored blocks, no compression (zlib 0)
1      None Sub Up Avg   LZ77 (isal 1 / zlib-ng 2 / zlib 1) or RLE (zlib-ng
                         / zlib ``Z_RLE``), whichever wins on a 64 KiB probe
2      all five          as 1
3-6    all five          both LZ77 and RLE; then lazy LZ77 (zlib-ng 7 /
                         zlib 4, ``Z_FILTERED``) if LZ77 won
7-9    all five          all of: LZ77, RLE, Huffman only, zlib-ng 9 / zlib 9
                         ``Z_FILTERED``
=====  ================  ==================================================

Why (one core, CPU s / MB; ``benchmarks/bench_png.py`` has the full table).
On noisy photos LZ77 finds few matches worth their cost: RLE or Huffman-only
deflate (what fpnge does) beats every LZ77 level, and is fast.  On synthetic
content (text, tiles) only LZ77 works, and lazy matching beats ISA-L's
greedy one by up to 8x.  Whole-image numbers (filters chosen by level 3):

=============  ===========  ===========  ===========  =========  ===========
36 MB raw      isal 1       zlib-ng RLE  Huffman      zl-ng 7 F  zlib 4 F
=============  ===========  ===========  ===========  =========  ===========
photo, noisy   0.12  17.22  0.19  14.87  0.13  14.80  1.6 15.44  1.4  15.25
photo mosaic   0.12  19.76  0.19  18.26  0.15  18.24  1.1 18.45  1.6  18.37
tiled texture  0.00   1.83  0.06  12.30  0.06  12.30  0.0  0.22  (13.8 MB raw)
=============  ===========  ===========  ===========  =========  ===========

Pillow level 6 (zlib 6, ``Z_FILTERED``): 6.2 s 16.07 MB and 4.0 s 18.65 MB
on the two photos; this writer, one thread: level 1 0.29 s 14.88 MB and
0.28 s 18.29 MB, level 2 0.34 s 14.88 MB and 0.39 s 18.26 MB, level 6 0.46 s
and 0.50 s for the same sizes, level 9 7.3 s 14.80 MB and 4.4 s 18.24 MB.
ISA-L's levels 2-3 were no smaller than 1 on filtered rows, isal 0 much
bigger; ISA-L has no RLE or Huffman-only strategy, hence zlib-ng for those.
1 MiB strips cost +-0.01 % against one serial stream, and priming each with
the previous 32 KiB (as pigz does) gained nothing, so strips are independent.
Per-strip Adler-32s (isal: 2 ms for 36 MB) are combined, not recomputed.
Filters are chosen per band of about 256 KiB by libpng's heuristic (smallest
sum of |signed bytes|) on every 8th row, which matched a per-row choice to
0.05 %.
"""

from __future__ import annotations

import importlib
import zlib
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from imgkernel.images.pngfilter import AVERAGE, NONE, PAETH, SUB, UP

__all__ = [
    "PROBE_BYTES",
    "Deflater",
    "Plan",
    "adler32_combine",
    "checksums",
    "plan_for",
    "zlib_header",
]

_ADLER_BASE = 65521

# Deflate settings: (library, level, strategy) choices, the first that imports wins.
_STORED = (("zlib", 0, 0),)
_FAST_LZ = (("isal", 1, 0), ("zlib-ng", 2, 0), ("zlib", 1, 0))
_RLE = (("zlib-ng", 1, zlib.Z_RLE), ("zlib", 1, zlib.Z_RLE))
_HUFFMAN = (("zlib-ng", 1, zlib.Z_HUFFMAN_ONLY), ("zlib", 1, zlib.Z_HUFFMAN_ONLY))
_LAZY = (("zlib-ng", 7, zlib.Z_FILTERED), ("zlib", 4, zlib.Z_FILTERED))
_LAZY_MAX = (("zlib-ng", 9, zlib.Z_FILTERED), ("zlib", 9, zlib.Z_FILTERED))
_ALL = (NONE, SUB, UP, AVERAGE, PAETH)
#: level -> (filters, first, RLE or None, extra settings, how); see Plan.
_LEVELS: dict[int, tuple[tuple[int, ...], tuple, tuple | None, tuple, str]] = {
    0: ((NONE,), _STORED, None, (), "probe"),
    1: ((NONE, SUB, UP, AVERAGE), _FAST_LZ, _RLE, (), "probe"),
    2: (_ALL, _FAST_LZ, _RLE, (), "probe"),
    3: (_ALL, _FAST_LZ, _RLE, (_LAZY,), "both"),
    7: (_ALL, _FAST_LZ, _RLE, (_HUFFMAN, _LAZY_MAX), "all"),
}
_LEVELS[4] = _LEVELS[5] = _LEVELS[6] = _LEVELS[3]
_LEVELS[8] = _LEVELS[9] = _LEVELS[7]
_MODULES = {"isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng", "zlib": "zlib"}
#: Bytes of a strip (two slices) compressed both ways to choose LZ77 or RLE for it.
PROBE_BYTES = 1 << 16


def _library(name: str) -> ModuleType | None:
    """The deflate module for ``name``, or None when it does not import."""
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError:
        return None


def checksums() -> ModuleType:
    """The fastest importable module with ``adler32`` and ``crc32`` (ISA-L's: ~15x zlib's)."""
    return _library("isal") or _library("zlib-ng") or zlib


class Deflater(NamedTuple):
    """One deflate setting: which library, its level and its strategy."""

    library: str
    module: Any
    level: int
    strategy: int

    def compress(self, data: Any, last: bool) -> bytes:
        """Raw deflate of ``data``: a final block if ``last``, else a sync flush."""
        z = self.module.compressobj(self.level, zlib.DEFLATED, -15, 8, self.strategy)
        end = self.module.Z_FINISH if last else self.module.Z_SYNC_FLUSH
        return bytes(z.compress(data) + z.flush(end))


def _pick(choices: tuple[tuple[str, int, int], ...]) -> Deflater:
    for name, level, strategy in choices:
        module = _library(name)
        if module is not None:
            return Deflater(name, module, level, strategy)
    raise AssertionError("the standard library's zlib always imports")  # pragma: no cover


class Plan(NamedTuple):
    """How a compress level filters and deflates: strips keep their smallest candidate.

    Every candidate is raw deflate ending on a byte boundary, so strips
    compressed different ways still join into one stream.  LZ77 (``first``)
    against RLE: with ``how="probe"`` two 32 KiB slices of the strip decide
    which one compresses it (right on every strip of the benchmark images,
    at 5 % of the cost of running both); with ``"both"`` both run.  The
    ``extra`` settings run when LZ77 won (repetitive content, where a
    stronger LZ77 pays), or always with ``how="all"``.
    """

    filters: tuple[int, ...]
    first: Deflater
    rle: Deflater | None = None
    extra: tuple[Deflater, ...] = ()
    how: str = "probe"

    def compress(self, data: Any, last: bool) -> bytes:
        if self.rle is None:
            return self.first.compress(data, last)
        if self.how == "probe" and len(data) > 4 * PROBE_BYTES:
            lz_wins = self._probe(data)
            best = (self.first if lz_wins else self.rle).compress(data, last)
        else:
            best = self.first.compress(data, last)
            rle = self.rle.compress(data, last)
            lz_wins = len(best) <= len(rle)
            best = best if lz_wins else rle
        for deflater in self.extra if self.how == "all" or lz_wins else ():
            out = deflater.compress(data, last)
            best = out if len(out) < len(best) else best
        return best

    def _probe(self, data: Any) -> bool:
        """Whether LZ77 beats RLE on slices at 1/4 and 3/4 of ``data``."""
        assert self.rle is not None
        half = PROBE_BYTES // 2
        slices = [data[at : at + half] for at in (len(data) // 4, 3 * len(data) // 4)]
        lz = sum(len(self.first.compress(piece, False)) for piece in slices)
        return lz <= sum(len(self.rle.compress(piece, False)) for piece in slices)


def plan_for(level: int, filters: tuple[int, ...] | None = None) -> Plan:
    """The :class:`Plan` of a compress level (0-9), with importable libraries.

    >>> plan = plan_for(0)
    >>> plan.first.library, plan.first.level, plan.filters, plan.rle
    ('zlib', 0, (0,), None)
    >>> plan_for(6).extra[0].strategy == zlib.Z_FILTERED
    True
    """
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"compress level must be an integer from 0 to 9, got {level!r}")
    candidates, first, rle, extra, how = _LEVELS[int(level)]
    chosen = tuple(filters if filters is not None else candidates)
    if not chosen or any(f not in range(5) for f in chosen):
        raise ValueError(f"filters must be PNG filter types 0-4, got {filters!r}")
    return Plan(
        chosen,
        _pick(first),
        None if rle is None else _pick(rle),
        tuple(_pick(choices) for choices in extra),
        how,
    )


def adler32_combine(adler1: int, adler2: int, length2: int) -> int:
    """Adler-32 of ``A + B`` from ``adler32(A)``, ``adler32(B)`` and ``len(B)``.

    The sum ``a`` is additive; ``b`` sums the running ``a`` over every byte,
    so B's ``b`` gains A's ``a - 1`` once per byte of B (zlib's combine).

    >>> adler32_combine(zlib.adler32(b"abc"), zlib.adler32(b"defg"), 4) == zlib.adler32(b"abcdefg")
    True
    """
    a1, b1 = adler1 & 0xFFFF, adler1 >> 16
    a2, b2 = adler2 & 0xFFFF, adler2 >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + length2 * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


def zlib_header(level: int) -> bytes:
    """CMF 0x78 (deflate, 32 KiB window), then FLG: FLEVEL (informational) and check bits.

    >>> [zlib_header(level).hex() for level in (1, 4, 6, 9)]
    ['7801', '785e', '789c', '78da']
    """
    flevel = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    flg = flevel << 6
    return bytes([0x78, flg + 31 - (0x78 * 256 + flg) % 31])
