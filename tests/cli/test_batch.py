"""The image commands over many files: --jobs, --files-from, quoted globs, --skip-existing,
--fail-fast, the progress bar, one bad file among many, --scheduler (Dask) and --tile-size."""

from __future__ import annotations

import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from batch_helpers import mixed_images
from click.testing import CliRunner, Result
from PIL import Image

from imgkernel.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "sample_images" / "digits"
PHOTO = ROOT / "sample_images" / "astronaut.png"


def run(*args: object, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin, prog_name="imgkernel")


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def pngs(folder: Path, count: int, size: tuple[int, ...] = (12, 14, 3)) -> list[str]:
    rng = np.random.default_rng(count)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"p{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return mixed_images(tmp_path_factory.mktemp("mixed"), 40)


COMMANDS = [["filter", "gaussian:sigma=1.5"], ["pool", "--size", "2", "--mode", "avg"]]


@pytest.mark.parametrize("command", COMMANDS, ids=["filter", "pool"])
def test_jobs_2_writes_what_jobs_1_writes(command: list[str], mixed: list[str], tmp_path: Path):
    outputs = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        out.mkdir()
        result = run(*command, *mixed, "-o", f"{out}/{{name}}", "--jobs", jobs)
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""  # no progress bar: stderr is not a terminal
        outputs.append(tree(out))
    assert len(outputs[0]) == 40 and outputs[0] == outputs[1]


def test_text_lines_keep_the_input_order(mixed: list[str]):
    one = run("pool", "--global", *mixed, "--format", "json", "--jobs", 1)
    two = run("pool", "--global", *mixed, "--format", "json", "--jobs", 2)
    assert one.exit_code == two.exit_code == 0, two.stderr
    assert one.stdout == two.stdout and len(two.stdout.splitlines()) == 40


def test_classify_keeps_the_input_order_with_jobs(tmp_path: Path):
    paths = []
    for copy in range(4):
        for digit in sorted(DIGITS.glob("*.png"))[::-1]:
            paths.append(tmp_path / f"{copy}-{digit.name}")
            shutil.copy(digit, paths[-1])
    one = run("classify", "digits", *paths, "--jobs", 1, "--top", 2)
    two = run("classify", "digits", *paths, "--jobs", 2, "--top", 2)
    assert one.exit_code == two.exit_code == 0, two.stderr
    assert one.stdout == two.stdout
    assert [line.split("\t")[0] for line in two.stdout.splitlines()] == [str(p) for p in paths]


def test_files_from_a_file_and_from_standard_input(tmp_path: Path):
    paths = pngs(tmp_path / "in", 12)
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\n".join(p.encode() for p in paths[:6]) + b"\r\n\n")
    out = tmp_path / "out"
    out.mkdir()
    result = run("filter", "sobel", paths[11], "--files-from", listing, "-o", f"{out}/{{stem}}.png")
    assert result.exit_code == 0, result.stderr
    assert sorted(tree(out)) == [f"p{i:03d}.png" for i in (0, 1, 2, 3, 4, 5, 11)]
    lines = "\n".join(paths[6:]).encode()
    template = f"{out}/{{stem}}.png"
    result = run("pool", "--size", "2", "--files-from", "-", "-o", template, stdin=lines)
    assert result.exit_code == 0, result.stderr
    assert len(tree(out)) == 12
    empty = run("filter", "sobel", "--files-from", "-", "-o", f"{out}/", stdin=b"")
    assert empty.exit_code == 0 and empty.stderr == ""  # nothing listed: nothing to do


def test_a_quoted_recursive_glob_is_expanded_sorted(tmp_path: Path):
    pngs(tmp_path / "photos" / "b" / "c", 2)
    pngs(tmp_path / "photos" / "a", 1)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    pattern = f"{tmp_path}/photos/**/*.png"
    result = run("pool", "--global", pattern, "--format", "json")
    assert result.exit_code == 0, result.stderr
    sources = [line.split('"')[3] for line in result.stdout.splitlines()]
    assert sources == sorted(str(p) for p in (tmp_path / "photos").rglob("*.png"))
    assert len(sources) == 3
    nothing = run("filter", "sobel", f"{tmp_path}/nowhere/**/*.png", "-o", f"{tmp_path}/x.png")
    assert nothing.exit_code == 2 and "no such file" in nothing.stderr


def test_skip_existing_resumes_a_run(tmp_path: Path):
    paths = pngs(tmp_path / "in", 10)
    out = tmp_path / "out"
    out.mkdir()
    (out / "p003.png").write_bytes(b"done before")
    result = run("filter", "sobel", *paths, "-o", f"{out}/", "--skip-existing")
    assert result.exit_code == 0, result.stderr
    assert len(tree(out)) == 10 and (out / "p003.png").read_bytes() == b"done before"
    again = run("filter", "sobel", *paths, "-o", f"{out}/", "--skip-existing", "--jobs", 2)
    assert again.exit_code == 0 and tree(out) == tree(out)


def truncated(folder: Path) -> str:
    path = folder / "cut.png"
    path.write_bytes(PHOTO.read_bytes()[:3000])
    return str(path)


@pytest.mark.parametrize("jobs", [1, 2])
def test_one_bad_file_among_many(jobs: int, tmp_path: Path):
    good = pngs(tmp_path / "in", 20)
    cut, missing = truncated(tmp_path), str(tmp_path / "missing.png")
    inputs = [*good[:10], cut, *good[10:], missing]
    out = tmp_path / "out"
    out.mkdir()
    result = run("filter", "sobel", *inputs, "-o", f"{out}/{{stem}}.png", "--jobs", jobs)
    assert result.exit_code == 2  # every failure a usage error
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"imgkernel: error: {cut}: truncated or corrupt image")
    assert lines[1:] == [
        f"imgkernel: error: {missing}: no such file",
        "imgkernel: error: 2 of 22 inputs failed",
    ]
    assert "Traceback" not in result.stderr
    written = tree(out)
    assert sorted(written) == [f"p{i:03d}.png" for i in range(20)]  # no partial, no temp file
    alone = tmp_path / "alone.png"
    for index in (0, 19):
        assert run("filter", "sobel", good[index], "-o", alone).exit_code == 0
        assert written[f"p{index:03d}.png"] == alone.read_bytes()


def test_fail_fast_stops_at_the_first_bad_file(tmp_path: Path):
    good = pngs(tmp_path / "in", 4)
    out = tmp_path / "out"
    out.mkdir()
    inputs = [good[0], good[1], truncated(tmp_path), good[2], good[3]]
    result = run("filter", "sobel", *inputs, "-o", f"{out}/", "--fail-fast")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "cut.png: truncated" in result.stderr
    assert sorted(tree(out)) == ["p000.png", "p001.png"]


def test_a_single_bad_input_keeps_its_one_line(tmp_path: Path):
    result = run("filter", "sobel", truncated(tmp_path), "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "inputs failed" not in result.stderr


def read_terminal(args: list[str]) -> str:
    """Run imgkernel with stderr on a pseudo-terminal; what it showed there."""
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "imgkernel", *args]
    process = subprocess.Popen(command, stderr=follower, stdout=subprocess.DEVNULL, env=env())
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(120) == 0
    return shown.decode()


def test_progress_bar_only_on_a_terminal_and_not_with_quiet(tmp_path: Path):
    paths = pngs(tmp_path / "in", 12)
    out = tmp_path / "out"
    out.mkdir()
    shown = read_terminal(["filter", "sobel", *paths, "-o", f"{out}/", "--jobs", "1"])
    assert "imgkernel filter: [" in shown and "12/12" in shown and "\r" in shown
    assert shown.endswith("\r\x1b[K")  # erased at the end
    assert read_terminal(["filter", "sobel", *paths, "-o", f"{out}/", "--quiet"]) == ""


@pytest.mark.parametrize(
    ("signum", "where"),
    [
        (signal.SIGTERM, ["--jobs", "2"]),
        (signal.SIGINT, ["--jobs", "2"]),
        (signal.SIGTERM, ["--scheduler", "local:2"]),
    ],
)
def test_a_stopped_run_leaves_no_partial_file_and_no_worker(tmp_path: Path, signum, where):
    if "--scheduler" in where:
        pytest.importorskip("distributed")
    # Images large enough that a worker is mid-write when the signal comes
    # (with smaller ones the old code's leftovers showed only now and then).
    paths = pngs(tmp_path / "in", 40, size=(600, 800, 3))
    out = tmp_path / "out"
    out.mkdir()
    args = ["filter", "gaussian:sigma=6", *paths, "-o", f"{out}/", *where]
    process = subprocess.Popen([sys.executable, "-m", "imgkernel", *args], env=env())
    deadline = time.monotonic() + 60
    while not list(out.glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    assert process.wait(60) in (0, 128 + signum)
    # The workers stop with the command: nothing is written after it ends.
    written = sorted(p.name for p in out.iterdir())
    time.sleep(1.5)
    names = sorted(p.name for p in out.iterdir())
    assert names == written
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    for name in names:
        with Image.open(out / name) as image:
            image.load()  # complete


def test_scheduler_local_cluster(mixed: list[str], tmp_path: Path):
    pytest.importorskip("distributed")
    outputs = []
    for where in (["--jobs", "1"], ["--scheduler", "local:2"]):
        out = tmp_path / where[1].replace(":", "")
        out.mkdir()
        result = run("filter", "sobel", *mixed[:12], "-o", f"{out}/{{name}}", *where)
        assert result.exit_code == 0, result.stderr
        outputs.append(tree(out))
    assert len(outputs[0]) == 12 and outputs[0] == outputs[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduler_address_of_a_dask_cluster(mixed: list[str], tmp_path: Path):
    pytest.importorskip("distributed")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env()}
    dask = [sys.executable, "-m", "dask"]
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        **quiet,  # type: ignore[call-overload]
    )
    worker = subprocess.Popen(
        [*dask, "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
        cwd=tmp_path,
        **quiet,  # type: ignore[call-overload]
    )
    try:
        deadline = time.monotonic() + 60  # the scheduler listens once it has started
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        local, remote = tmp_path / "local", tmp_path / "remote"
        for out, where in ((local, ["--jobs", "1"]), (remote, ["--scheduler", address])):
            out.mkdir()
            result = run("pool", "--size", "2", *mixed[:10], "-o", f"{out}/{{name}}", *where)
            assert result.exit_code == 0, result.stderr
        assert len(tree(local)) == 10 and tree(local) == tree(remote)
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(30)


@pytest.mark.parametrize(
    "command",
    [["filter", "sobel"], ["pool", "--size", "3", "--stride", "2", "--mode", "avg"]],
    ids=["filter", "pool"],
)
def test_tile_size_gives_the_whole_image_result(command: list[str], tmp_path: Path):
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(3)
    source = tmp_path / "big.tif"
    tifffile.imwrite(source, rng.integers(0, 256, (300, 260, 3), dtype=np.uint8))
    whole, tiles = tmp_path / "whole.tif", tmp_path / "tiles.tif"
    assert run(*command, source, "-o", whole).exit_code == 0
    result = run(*command, source, "-o", tiles, "--tile-size", 64)
    assert result.exit_code == 0, result.stderr
    expected = tifffile.imread(whole)
    assert tifffile.TiffFile(tiles).pages[0].is_tiled  # the tiled writer wrote it
    np.testing.assert_array_equal(tifffile.imread(tiles), expected)
    zarr = pytest.importorskip("zarr")
    result = run(*command, source, "-o", tmp_path / "out.zarr")  # Zarr: tiled unasked
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.asarray(zarr.open(str(tmp_path / "out.zarr"))), expected)


def test_compress_level_zero_writes_uncompressed_tiles(tmp_path: Path):
    # The tiled TIFF writer deflates (level 1) unless told level 0, which like
    # zlib's own level 0 compresses nothing: what vips writes by default.
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(4)
    source = tmp_path / "big.tif"
    tifffile.imwrite(source, rng.integers(0, 256, (200, 150, 3), dtype=np.uint8))
    outputs = {}
    for level in (None, "0", "6"):
        out = tmp_path / f"out-{level}.tif"
        extra = [] if level is None else ["--compress-level", level]
        result = run("filter", "sobel", source, "-o", out, "--tile-size", 64, *extra)
        assert result.exit_code == 0, result.stderr
        with tifffile.TiffFile(out) as tif:
            outputs[level] = (tif.pages[0].compression, tif.asarray())
    assert outputs[None][0] == outputs["6"][0] == 8  # zlib
    assert outputs["0"][0] == 1  # none
    np.testing.assert_array_equal(outputs["0"][1], outputs[None][1])
    np.testing.assert_array_equal(outputs["6"][1], outputs[None][1])
    whole = tmp_path / "whole.tif"
    assert run("filter", "sobel", source, "-o", whole).exit_code == 0
    np.testing.assert_array_equal(outputs["0"][1], tifffile.imread(whole))


BAD = [
    (["filter", "sobel", "{gray}", "--compress-level", "-1"], "compress-level"),
    (["filter", "sobel", "{gray}", "--compress-level", "10"], "compress-level"),
    (["filter", "sobel", "{gray}", "--jobs", "0"], "jobs"),
    (["filter", "sobel", "{gray}", "--jobs", "x"], "jobs"),
    (["pool", "--size", "2", "{gray}", "-j", "-3"], "jobs"),
    (["classify", "digits", "{gray}", "--jobs", "0"], "jobs"),
    (["filter", "sobel", "{gray}", "--scheduler", "bogus"], "scheduler"),
    (["filter", "sobel", "{gray}", "--scheduler", "local:0"], "local:N"),
    (["pool", "--size", "2", "{gray}", "--scheduler", "tcp://"], "tcp://"),
    (["filter", "sobel", "{gray}", "{gray}", "--scheduler", "tcp://127.0.0.1:notaport"], "port"),
    (["filter", "sobel", "{gray}", "--scheduler", "tcp://127.0.0.1:99999"], "port"),
    (["pool", "--size", "2", "{gray}", "{gray}", "-j", "2", "--scheduler", "local:2"], "one of"),
    (["classify", "digits", "{gray}", "--scheduler", "local:x"], "local"),
    (["filter", "sobel", "{gray}", "--tile-size", "0"], "tile-size"),
    (["filter", "sobel", "{gray}", "--tile-size", "64"], ".tif"),
    (["filter", "sobel", "{gray}", "--tile-size", "64", "-o", "-"], "-o NAME.tif"),
    (["pool", "--size", "2", "{gray}", "--tile-size", "64", "-o", "{tmp}/x.tif"], "TIFF"),
    (["pool", "--global", "{gray}", "--tile-size", "64"], "--global"),
    (["filter", "sobel", "--files-from", "{missing}"], "missing.png: no such file"),
    (["filter", "sobel", "--files-from", "{tmp}"], "is a directory"),
    (["filter", "sobel", "--files-from", ""], "--files-from"),
    (["pool", "--size", "2", "--files-from", "{gray}"], "NUL"),
    (["filter", "sobel", "-", "--files-from", "-"], "standard input"),
    (["classify", "digits", "--files-from", "{missing}"], "no such file"),
    (["classify", "digits"], "IMAGE"),
    (["filter", "sobel", "--files-from", "{text}"], "no such file"),
    (["filter", "sobel", "{gray}", "{gray}", "-o", "{tmp}/", "--skip-existing"], "input"),
    (["filter", "sobel", "{missing}", "--fail-fast"], "missing"),
    (["filter", "sobel", "{truncated}", "--quiet"], "truncated"),
    (["pool", "--size", "2", "{tmp}/**/*.nope"], "no such file"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_batch_options_one_line_exit_2_nothing_written(args: list[str], fragment: str, refused):
    refused(args, fragment)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_damaged_tiff_on_the_tiled_path_is_one_bad_input(tmp_path: Path, jobs: str):
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "whole"):
        pixels = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
        tifffile.imwrite(folder / f"{name}.tif", pixels, tile=(64, 64), compression="zlib")
    data = (folder / "whole.tif").read_bytes()
    (folder / "0cut.tif").write_bytes(data[: len(data) * 2 // 3])
    (folder / "whole.tif").unlink()
    out = tmp_path / "out"
    out.mkdir()
    args = ["filter", "sobel", str(folder / "*.tif"), "--tile-size", "64", "-o", f"{out}/"]
    done = subprocess.run(
        [sys.executable, "-m", "imgkernel", *args, "--jobs", jobs],
        capture_output=True, text=True, env=env(),
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert (
        lines[0]
        == f"imgkernel: error: {folder / '0cut.tif'}: truncated or corrupt image "
        + (lines[0].split("image ", 1)[1])
    )
    assert lines[-1] == "imgkernel: error: 1 of 3 inputs failed"
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif"]
    single = CliRunner().invoke(
        cli,
        [
            "filter",
            "sobel",
            str(folder / "0cut.tif"),
            "--tile-size",
            "64",
            "-o",
            str(out / "x.tif"),
        ],
    )
    assert single.exit_code == 2 and "truncated or corrupt image" in single.output
    assert not (out / "x.tif").exists()


def test_an_existing_zarr_output_is_replaced_not_written_into(tmp_path: Path):
    tifffile = pytest.importorskip("tifffile")
    zarr = pytest.importorskip("zarr")
    pixels = np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "in.tif", pixels, tile=(32, 32))
    store = tmp_path / "out.zarr"
    for kernel in ("gaussian:sigma=2", "sobel"):
        args = ["filter", kernel, str(tmp_path / "in.tif"), "--tile-size", "32", "-o", str(store)]
        assert CliRunner().invoke(cli, args).exit_code == 0
    whole = tmp_path / "whole.tif"
    assert (
        CliRunner()
        .invoke(cli, ["filter", "sobel", str(tmp_path / "in.tif"), "-o", str(whole)])
        .exit_code
        == 0
    )
    assert sorted(p.name for p in store.iterdir() if p.suffix == ".tif") == []
    np.testing.assert_array_equal(
        np.asarray(zarr.open(str(store), mode="r")[:]), tifffile.imread(whole)
    )


def test_a_cluster_names_the_inputs_as_given(tmp_path: Path, monkeypatch):
    pytest.importorskip("distributed")
    digits = sorted(Path(__file__).resolve().parents[2].glob("sample_images/digits/*.png"))[:6]
    for i, source in enumerate(digits):
        shutil.copy(source, tmp_path / f"{i}.png")
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    monkeypatch.chdir(tmp_path)
    names = ["3.png", "bad.png", "0.png", "5.png", "1.png", "4.png", "2.png"]
    results = [
        run("classify", "digits", *names, *where)
        for where in (["--jobs", "1"], ["--scheduler", "local:2"])
    ]
    for result in results:
        assert result.exit_code == 2
        assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
            n for n in names if n != "bad.png"
        ]
        assert result.stderr.splitlines()[0].startswith("imgkernel: error: bad.png: ")
    assert results[0].stdout == results[1].stdout
    assert results[0].stderr == results[1].stderr


@pytest.mark.parametrize(
    "command", [["filter", "sobel"], ["pool", "--size", "2"], ["classify", "digits"]]
)
def test_a_scheduler_with_one_plain_input_says_it_is_not_used(command, tmp_path: Path):
    source = str(Path(__file__).resolve().parents[2] / "sample_images/digits/digit-3-1504.png")
    here = CliRunner().invoke(cli, [*command, source])
    there = CliRunner().invoke(cli, [*command, source, "--scheduler", "tcp://127.0.0.1:1"])
    assert here.exit_code == there.exit_code == 0
    assert there.stdout_bytes == here.stdout_bytes
    assert there.stderr.count("\n") == 1 and "single input runs here" in there.stderr


def test_a_scheduler_nobody_listens_at_fails_at_once(tmp_path: Path):
    paths = pngs(tmp_path / "in", 2)
    (tmp_path / "out").mkdir()
    start = time.monotonic()
    result = run(
        "filter",
        "sobel",
        *paths,
        "-o",
        f"{tmp_path}/out/",
        "--scheduler",
        f"tcp://127.0.0.1:{free_port()}",
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("imgkernel: error: cannot reach the Dask scheduler at tcp://")
    assert result.stderr.count("\n") == 1
    assert time.monotonic() - start < 10  # not Dask's 20 s of retries
    assert not list((tmp_path / "out").iterdir())
