"""Images larger than memory: filter_large / pool_large equal the whole-image path.

Every result is compared pixel for pixel (``assert_array_equal``) with
``filter_image`` / ``pool_image`` on the whole decoded image, over kernels,
strides, dilations, paddings, borders, display mappings and tile sizes; on
local threads, on a LocalCluster, and on a scheduler and a worker started as
processes. A 4096x4096 RGB TIFF is filtered in a subprocess whose peak
memory is checked.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgkernel.errors import UsageError
from imgkernel.images import Display, Image, Offset, pool_image, read_image

tifffile = pytest.importorskip("tifffile")
zarr = pytest.importorskip("zarr")

from imgkernel.images.regions import open_region_source, require  # noqa: E402
from imgkernel.images.tiled import pool_large  # noqa: E402
from imgkernel.kernels import filter_image, kernel_from_matrix, load_library  # noqa: E402
from imgkernel.kernels.large import filter_large  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = load_library(include_user=False)
BORDERS = ["zero", "constant:7", "constant:300", "reflect", "symmetric", "edge", "wrap"]
PADDINGS = ["same", "valid", "full", 1, (2, 0, 1, 3), (0, 4, 5, 0)]
DISPLAYS = [
    None,
    Display(mode="abs"),
    Display(mode="offset", scale=0.5),
    Display(mode="clip", offset=Offset(0.25, fraction=True)),
]
NAMED = ["sobel", "blur", "emboss", "sharpen", "laplacian", "gaussian:sigma=1.5", "scharr"]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def make_image(kind: str, h: int, w: int, seed: int) -> tuple[np.ndarray, Image]:
    """(array as stored, the Image the whole-image reader gives) for one pixel kind."""
    rng = np.random.default_rng(seed)
    if kind == "float":
        stored = rng.random((h, w), dtype=np.float32)
        return stored, Image(stored, None, "TIFF", "x.tif")
    dtype = np.uint16 if kind == "gray16" else np.uint8
    channels = {"gray": 1, "gray16": 1, "rgb": 3, "rgba": 4}[kind]
    stored = rng.integers(0, np.iinfo(dtype).max + 1, (h, w, channels), dtype=dtype)
    if kind == "rgba":
        return stored, Image(stored[:, :, :3].copy(), stored[:, :, 3].copy(), "TIFF", "x.tif")
    stored = stored[:, :, 0] if channels == 1 else stored
    return stored, Image(stored, None, "TIFF", "x.tif")


def write_tiff(path: Path, stored: np.ndarray, *, tiled: bool = True) -> None:
    layout = {"tile": (16, 16)} if tiled else {"rowsperstrip": 3}
    rgb = stored.ndim == 3 and stored.shape[2] in (3, 4)
    extra = {"extrasamples": ("unassalpha",)} if rgb and stored.shape[2] == 4 else {}
    photometric = "rgb" if rgb else "minisblack"
    tifffile.imwrite(path, stored, photometric=photometric, compression="zlib", **layout, **extra)


def read_back(path: Path, image: Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A tiled result as (pixels, alpha), the way filter_image returns them."""
    out = zarr.open_array(str(path))[:] if str(path).endswith(".zarr") else tifffile.imread(path)
    if image.alpha is None:
        return out, None
    return out[:, :, :-1], out[:, :, -1]


def assert_same(path: Path, image: Image, expected: tuple) -> None:
    pixels, alpha = read_back(path, image)
    np.testing.assert_array_equal(pixels, expected[0])
    if expected[1] is None:
        assert alpha is None
    else:
        np.testing.assert_array_equal(alpha, expected[1])


@pytest.mark.parametrize("kind", ["gray", "gray16", "rgb", "rgba", "float"])
def test_reader_gives_what_the_whole_image_reader_gives(tmp_path: Path, kind: str) -> None:
    stored, image = make_image(kind, 37, 29, 1)
    for tiled in (True, False):
        path = tmp_path / f"{kind}-{tiled}.tif"
        write_tiff(path, stored, tiled=tiled)
        whole = read_image(str(path))
        np.testing.assert_array_equal(whole.pixels, image.pixels)
        np.testing.assert_array_equal(whole.alpha, image.alpha)
        source = open_region_source(str(path))
        assert source.dtype == image.pixels.dtype and source.alpha == (image.alpha is not None)
        block = source.read(3, 30, 5, 21)
        np.testing.assert_array_equal(block.reshape(stored[3:30, 5:21].shape), stored[3:30, 5:21])


@settings(max_examples=70, **SETTINGS)
@given(
    kind=st.sampled_from(["gray", "gray16", "rgb", "rgba", "float"]),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    kernel=st.one_of(
        st.sampled_from(NAMED),
        st.tuples(st.integers(1, 5), st.integers(1, 5)),
    ),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.integers(1, 2),
    padding=st.sampled_from(PADDINGS),
    border=st.sampled_from(BORDERS),
    display=st.sampled_from(DISPLAYS),
    alpha_mode=st.sampled_from(["keep", "filter", "premultiply"]),
    # 16 and 32 are on the output's 16-cell TIFF tile grid: the tiles are cut
    # from the blocks; other sizes go through full-width bands.
    tile=st.one_of(st.integers(1, 9), st.sampled_from([16, 32])),
    tiled=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_filter_large_equals_filter_image(
    tmp_path: Path,
    kind,
    h,
    w,
    kernel,
    stride,
    dilation,
    padding,
    border,
    display,
    alpha_mode,
    tile,
    tiled,
    seed,
) -> None:
    stored, image = make_image(kind, h, w, seed)
    if isinstance(kernel, str):
        record = LIBRARY.resolve(kernel)
    else:
        weights = np.random.default_rng(seed).integers(-4, 5, kernel)
        record = kernel_from_matrix(weights, scale=max(1, int(np.abs(weights).sum())))
    src, out = tmp_path / f"in-{seed}.tif", tmp_path / f"out-{seed}.tif"
    write_tiff(src, stored, tiled=tiled)
    options = dict(
        stride=stride, dilation=dilation, padding=padding, border=border, alpha_mode=alpha_mode
    )
    try:
        expected = filter_image(image, record, "TIFF", display=display, **options)
    except UsageError as exc:
        with pytest.raises(UsageError):
            filter_large(str(src), str(out), record, display, tile_size=tile, **options)
        assert "premultiply" in str(exc) or "spans" in str(exc)
        return
    filter_large(str(src), str(out), record, display, tile_size=tile, out_tile=16, **options)
    assert_same(out, image, expected)


@pytest.mark.parametrize(
    "name, options",
    [
        ("gaussian:sigma=2", {}),  # separable sgemm: bands
        ("matrix7", {"border": "wrap"}),  # 49 dense taps: one einsum in any tile
        ("matrix15", {"border": "wrap"}),  # 225 taps: FFT bands
        ("matrix15", {"border": "constant:-3.5"}),  # the whole image at once, as filter_image
        ("sobel", {"stride": 2, "padding": "full"}),  # direct: tiles
    ],
)
def test_bands_and_whole_modes_equal_filter_image(tmp_path: Path, name, options) -> None:
    stored, image = make_image("rgb", 600, 45, 3)  # more than two bands of 256 rows
    if name.startswith("matrix"):
        size = int(name[6:])
        record = kernel_from_matrix(np.random.default_rng(5).standard_normal((size, size)), scale=1)
    else:
        record = LIBRARY.resolve(name)
    write_tiff(tmp_path / "in.tif", stored)
    result = filter_large(
        str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), record, tile_size=100, **options
    )
    expected = filter_image(image, record, "TIFF", **options)
    assert_same(tmp_path / "out.tif", image, expected)
    want = {"gaussian:sigma=2": "bands", "sobel": "tiles", "matrix7": "tiles"}.get(name)
    want = want or ("whole" if "constant" in options.get("border", "") else "bands")
    assert result.mode == want


@settings(max_examples=50, **SETTINGS)
@given(
    kind=st.sampled_from(["gray", "gray16", "rgba", "float"]),
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    size=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
    padding=st.sampled_from([0, 1, (0, 1, 2, 0), "same"]),
    dilation=st.integers(1, 2),
    mode=st.sampled_from(["max", "avg", "min"]),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    tile=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_pool_large_equals_pool_image(
    tmp_path: Path,
    kind,
    h,
    w,
    size,
    stride,
    padding,
    dilation,
    mode,
    ceil_mode,
    count_include_pad,
    tile,
    seed,
) -> None:
    stored, image = make_image(kind, h, w, seed)
    src, out = tmp_path / f"in-{seed}.tif", tmp_path / f"out-{seed}.zarr"
    write_tiff(src, stored)
    options = dict(
        size=size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        mode=mode,
        ceil_mode=ceil_mode,
        count_include_pad=count_include_pad,
    )
    try:
        expected = pool_image(image, "TIFF", **options)
    except UsageError:
        with pytest.raises(UsageError):
            pool_large(str(src), str(out), tile_size=tile, **options)
        return
    pool_large(str(src), str(out), tile_size=tile, out_tile=8, **options)
    assert_same(out, image, expected)


def test_zarr_in_and_out(tmp_path: Path) -> None:
    data = np.random.default_rng(2).random((50, 61, 2)).astype(np.float64)
    zarr.create_array(str(tmp_path / "in.zarr"), data=data, chunks=(16, 16, 2))
    record = LIBRARY.resolve("laplacian")
    filter_large(str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"), record, tile_size=7)
    # a Zarr array's channels are data (as an .npy array's), numbers as float32
    image = Image(data.astype(np.float32), None, "NPY", "in.zarr")
    expected = filter_image(image, record, "TIFF")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[:], expected[0])
    # written again: the old array is replaced whole
    filter_large(str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"), record, border="wrap")
    again = filter_image(image, record, "TIFF", border="wrap")[0]
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"))[:], again)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.zarr"]


def test_refusals(tmp_path: Path) -> None:
    stored, _ = make_image("rgb", 20, 20, 0)
    write_tiff(tmp_path / "in.tif", stored)
    sobel = LIBRARY.resolve("sobel")
    src = str(tmp_path / "in.tif")
    with pytest.raises(UsageError, match="normalize"):
        filter_large(src, str(tmp_path / "o.tif"), sobel, Display(mode="normalize"))
    with pytest.raises(UsageError, match=r"\.tif/\.tiff files or \.zarr"):
        filter_large(src, str(tmp_path / "o.png"), sobel)
    with pytest.raises(UsageError, match="multiples of 16"):
        filter_large(src, str(tmp_path / "o.tif"), sobel, out_tile=10)
    for bad in (0, -16, 16.0, True):
        with pytest.raises(UsageError, match="positive number of pixels"):
            filter_large(src, str(tmp_path / "o.tif"), sobel, out_tile=bad)
    assert not (tmp_path / "o.tif").exists()
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(UsageError, match="TIFF files and Zarr arrays only"):
        filter_large(str(tmp_path / "x.png"), str(tmp_path / "o.tif"), sobel)
    tifffile.imwrite(tmp_path / "rot.tif", stored, photometric="rgb", extratags=[(274, 3, 1, 6)])
    with pytest.raises(UsageError, match="orientation"):
        filter_large(str(tmp_path / "rot.tif"), str(tmp_path / "o.tif"), sobel)
    with pytest.raises(UsageError, match="unknown scheduler"):
        filter_large(src, str(tmp_path / "o.tif"), sobel, scheduler="nowhere")
    with pytest.raises(UsageError, match="positive number"):
        filter_large(src, str(tmp_path / "o.tif"), sobel, scheduler="local:0")
    with pytest.raises(UsageError, match=r"pip install 'imgkernel\[tiff\]'"):
        require("imgkernel_no_such_module", "tiff")
    assert not (tmp_path / "o.tif").exists()


def test_bigtiff_once_the_pixels_are_large(tmp_path: Path, monkeypatch) -> None:
    import imgkernel.images.tiled_write as tiled_write

    stored, image = make_image("gray16", 40, 33, 4)
    write_tiff(tmp_path / "in.tif", stored)
    record = LIBRARY.resolve("sharpen")
    filter_large(str(tmp_path / "in.tif"), str(tmp_path / "small.tif"), record)
    monkeypatch.setattr(tiled_write, "BIGTIFF_BYTES", 1000)
    filter_large(str(tmp_path / "in.tif"), str(tmp_path / "big.tif"), record, scheduler="threads:1")
    with (
        tifffile.TiffFile(tmp_path / "small.tif") as small,
        tifffile.TiffFile(tmp_path / "big.tif") as big,
    ):
        assert not small.is_bigtiff and big.is_bigtiff
        assert big.pages.first.is_tiled and big.pages.first.compression == 8  # zlib
    assert_same(tmp_path / "big.tif", image, filter_image(image, record, "TIFF"))


def test_large_route_decides_which_files_go_tile_by_tile(tmp_path: Path) -> None:
    from functools import partial

    from imgkernel.images import LargeRoute

    stored, image = make_image("rgb", 40, 30, 8)
    write_tiff(tmp_path / "in.tif", stored)
    tifffile.imwrite(tmp_path / "pages.tif", np.stack([stored, stored]), photometric="rgb")
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    record = LIBRARY.resolve("emboss")
    run = partial(filter_large, kernel=record)
    small = LargeRoute(run)
    assert not small.applies(str(tmp_path / "in.tif"), str(tmp_path / "o.tif"))
    assert LargeRoute(run, pixels=1000).applies(str(tmp_path / "in.tif"), str(tmp_path / "o.tif"))
    assert small.applies(str(tmp_path / "in.tif"), str(tmp_path / "o.zarr"))
    assert not small.applies(str(tmp_path / "in.tif"), str(tmp_path / "o.png"))
    assert not small.applies("-", str(tmp_path / "o.tif"))
    assert not LargeRoute(run, pixels=10).applies(str(tmp_path / "pages.tif"), "x.tif")
    asked = LargeRoute(run, tile_size=8)
    assert asked.applies(str(tmp_path / "in.tif"), str(tmp_path / "o.tif"))
    with pytest.raises(UsageError, match="TIFF files"):
        asked.applies(str(tmp_path / "in.png"), str(tmp_path / "o.tif"))
    with pytest.raises(UsageError, match="2 pages"):  # not the first page only, silently
        asked.applies(str(tmp_path / "pages.tif"), str(tmp_path / "o.tif"))
    result = asked(str(tmp_path / "in.tif"), str(tmp_path / "o.tif"))
    assert result.grid == (5, 4)
    assert_same(tmp_path / "o.tif", image, filter_image(image, record, "TIFF"))


# --------------------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def big_enough(tmp_path: Path) -> tuple[Path, Image]:
    stored, image = make_image("rgba", 300, 200, 9)
    write_tiff(tmp_path / "in.tif", stored)
    return tmp_path / "in.tif", image


def test_local_cluster_equals_local_threads(tmp_path: Path, cluster_client) -> None:
    src, image = big_enough(tmp_path)
    record = LIBRARY.resolve("sobel")
    options = dict(stride=(1, 2), border="wrap", padding=(3, 0, 0, 2))
    result = filter_large(
        str(src),
        str(tmp_path / "d.tif"),
        record,
        scheduler=cluster_client,
        tile_size=64,
        **options,
    )
    assert result.tiles == 5 * 2
    filter_large(str(src), str(tmp_path / "t.tif"), record, tile_size=64, **options)
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "d.tif"), tifffile.imread(tmp_path / "t.tif")
    )
    assert_same(tmp_path / "d.tif", image, filter_image(image, record, "TIFF", **options))
    pool_large(
        str(src),
        str(tmp_path / "p.tif"),
        size=3,
        stride=2,
        mode="avg",
        padding=1,
        scheduler=cluster_client,
        tile_size=32,
    )
    expected = pool_image(image, "TIFF", size=(3, 3), stride=2, mode="avg", padding=1)
    assert_same(tmp_path / "p.tif", image, expected)


def test_local_n_starts_and_closes_its_own_cluster(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    stored, image = make_image("rgb", 70, 50, 6)
    write_tiff(tmp_path / "in.tif", stored)
    result = pool_large(
        str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), size=2, scheduler="local:1"
    )
    assert result.tiles == 1  # 1024-pixel tiles by default on Dask
    assert_same(tmp_path / "out.tif", image, pool_image(image, "TIFF", size=(2, 2)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduler_and_worker_processes(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    dask_cli = Path(sys.executable).with_name("dask")
    command = [str(dask_cli)] if dask_cli.exists() else [sys.executable, "-m", "distributed.cli"]
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    logs = [open(tmp_path / name, "wb") for name in ("scheduler.log", "worker.log")]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [*command, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        procs.append(
            subprocess.Popen(
                [
                    *command,
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                env=env,
                stdout=logs[1],
                stderr=subprocess.STDOUT,
            )
        )
        src, image = big_enough(tmp_path)
        record = LIBRARY.resolve("emboss")
        _wait_for_worker(address)
        filter_large(str(src), str(tmp_path / "out.tif"), record, scheduler=address, tile_size=50)
        assert_same(tmp_path / "out.tif", image, filter_image(image, record, "TIFF"))
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def _wait_for_worker(address: str, timeout: float = 60) -> None:
    distributed = pytest.importorskip("distributed")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with distributed.Client(address, timeout="5s") as client:
                client.wait_for_workers(1, timeout=max(1, deadline - time.monotonic()))
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# --------------------------------------------------------------------------- memory

# Linux keeps ru_maxrss across exec: a child forked from a large pytest process
# would report the parent's size. VmHWM, the peak of this process's own memory
# map, starts afresh at exec; getrusage is the fallback elsewhere.
MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from imgkernel.kernels import load_library
    from imgkernel.kernels.large import filter_large
    sobel = load_library(include_user=False).resolve("sobel")
    filter_large(sys.argv[1], sys.argv[2], sobel, tile_size=512)
    try:
        with open("/proc/self/status") as f:
            print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
    except OSError:
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def test_peak_memory_stays_far_below_the_image(tmp_path: Path) -> None:
    size = 4096
    tile = 256
    rng = np.random.default_rng(0)

    def tiles():
        for _ in range(0, size, tile):
            for _ in range(0, size, tile):
                yield rng.integers(0, 256, (tile, tile, 3), dtype=np.uint8)

    src = tmp_path / "big.tif"
    tifffile.imwrite(
        src,
        tiles(),
        shape=(size, size, 3),
        dtype=np.uint8,
        tile=(tile, tile),
        photometric="rgb",
        compression="zlib",
        compressionargs={"level": 1},
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(src), str(tmp_path / "out.tif")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    peak_mb = int(done.stdout.split()[-1]) / 1024
    decoded_mb = size * size * 3 / 2**20  # 48 MB
    assert peak_mb <= decoded_mb / 4 + 150, f"peak {peak_mb:.0f} MB"
    out = open_region_source(str(tmp_path / "out.tif"))
    assert out.shape == (size, size, 3)
    stored = tifffile.imread(src)
    expected = filter_image(
        Image(stored[:600], None, "TIFF", "x"),
        LIBRARY.resolve("sobel"),
        "TIFF",
        padding=(1, 0, 1, 1),
    )[0]
    np.testing.assert_array_equal(out.read(0, 599, 0, size), expected[:599])


def test_tiles_cut_from_blocks_or_from_bands_are_the_same(tmp_path: Path, monkeypatch) -> None:
    # 32-cell blocks on the 16-cell TIFF grid are cut straight into TIFF tiles;
    # 24-cell ones are not on it and go through full-width bands.
    from imgkernel.images import tiled

    stored, image = make_image("rgb", 90, 70, 4)
    write_tiff(tmp_path / "in.tif", stored)
    sobel = LIBRARY.resolve("sobel")
    expected = filter_image(image, sobel, "TIFF")
    cut: list[int] = []
    original = tiled._block_tiles
    monkeypatch.setattr(tiled, "_block_tiles", lambda *a: cut.append(1) or original(*a))
    for size, direct in ((32, True), (24, False)):
        cut.clear()
        out = tmp_path / f"out{size}.tif"
        filter_large(str(tmp_path / "in.tif"), str(out), sobel, tile_size=size, out_tile=16)
        assert bool(cut) == direct
        assert_same(out, image, expected)


@pytest.mark.parametrize(
    ("compression", "level", "stored"),
    [
        ("zlib", 0, 1),
        ("zlib", 1, 8),
        ("zlib", None, 8),
        ("none", None, 1),
        ("lzma", 0, 34925),
    ],
)
def test_level_zero_means_stored_for_deflate_only(tmp_path: Path, compression, level, stored):
    # zlib's level 0 stores: the tiles go uncompressed; other codecs' level 0 is theirs.
    from imgkernel.images.tiled_write import OutputSpec, write_large

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (100, 70, 3), dtype=np.uint8)
    out = tmp_path / "o.tif"
    spec = OutputSpec(pixels.shape, pixels.dtype, False, False)
    write_large(str(out), [pixels], spec, tile=(32, 32), compression=compression, level=level)
    with tifffile.TiffFile(out) as tif:
        assert int(tif.pages.first.compression) == stored
        np.testing.assert_array_equal(tif.asarray(), pixels)
