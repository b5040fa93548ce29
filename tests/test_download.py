"""Download / install logic against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from pointcalip.cli import main
from pointcalip.datasets import ModelNet40, ScanObjectNN, dataset_folder, download_file, ensure_dataset
from pointcalip.datasets import download as dl
from synthetic_data import write_modelnet40, write_scanobjectnn
from messages import error_block


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        if self.path in srv.errors:
            self.send_error(srv.errors[self.path])
            return
        if self.path not in srv.files:
            self.send_error(404)
            return
        data = srv.files[self.path]
        start = 0
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.fail_after.pop(self.path, None)
        if cut is not None:  # simulate a dropped connection mid-body
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.errors: dict[str, int] = {}
        self.fail_after: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture()
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def mn40_zip(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mnzip")
    folder = write_modelnet40(base / "src", 1, 1, num_points=16, seed=0,
                              classes=["chair", "table", "lamp"])
    return Path(shutil.make_archive(str(base / "modelnet40_ply_hdf5_2048"), "zip",
                                    root_dir=folder.parent, base_dir=folder.name))


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".part")


# ----------------------------------------------------------------------------- download_file
def test_resume_after_interruption(server, tmp_path):
    data = np.random.default_rng(0).bytes(300_000)
    server.files["/f.bin"] = data
    server.fail_after["/f.bin"] = 100_000
    dest = tmp_path / "f.bin"
    with pytest.raises(RuntimeError, match="resume"):
        download_file(server.url("/f.bin"), dest, chunk_size=8192, progress=False)
    parts = list(tmp_path.glob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size == 100_000 and not dest.exists()
    sha = hashlib.sha256(data).hexdigest()
    download_file(server.url("/f.bin"), dest, sha256=sha, chunk_size=8192, progress=False)
    assert dest.read_bytes() == data
    assert server.requests[-1][1] == "bytes=100000-"  # resumed, not restarted
    assert not list(tmp_path.glob("*.part"))


def test_checksum_mismatch_deletes_partial(server, tmp_path):
    server.files["/f.bin"] = b"x" * 5000
    dest = tmp_path / "f.bin"
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_file(server.url("/f.bin"), dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not list(tmp_path.glob("*.part"))


def test_server_ignoring_range_restarts_and_complete_part(server, tmp_path):
    data = b"0123456789" * 1000
    server.files["/f.bin"] = data
    dest = tmp_path / "f.bin"
    dl._part_path(dest, server.url("/f.bin")).write_bytes(b"garbage")
    server.ignore_range = True
    download_file(server.url("/f.bin"), dest, progress=False)
    assert dest.read_bytes() == data
    # A .part that already holds the whole file: the server answers 416 and we finish.
    dest.unlink()
    dl._part_path(dest, server.url("/f.bin")).write_bytes(data)
    server.ignore_range = False
    download_file(server.url("/f.bin"), dest, progress=False)
    assert dest.read_bytes() == data


def test_http_error(server, tmp_path):
    server.errors["/m.zip"] = 500
    with pytest.raises(RuntimeError, match="HTTP 500"):
        download_file(server.url("/m.zip"), tmp_path / "m.zip", progress=False)
    with pytest.raises(RuntimeError, match="--from"):
        ensure_dataset("modelnet40", root=tmp_path, url=server.url("/m.zip"))
    assert not (tmp_path / "modelnet40_ply_hdf5_2048").exists() and not _leftovers(tmp_path)


# ----------------------------------------------------------------------------- ensure_dataset
def test_download_extract_and_atomic_install(server, tmp_path, mn40_zip):
    server.files["/m.zip"] = mn40_zip.read_bytes()
    with pytest.raises(FileNotFoundError, match="pointcalip download modelnet40"):
        dataset_folder("modelnet40", tmp_path)
    folder = ensure_dataset("modelnet40", root=tmp_path, url=server.url("/m.zip"))
    assert folder == tmp_path / "modelnet40_ply_hdf5_2048"
    assert len(ModelNet40(folder, "test", num_points=16)) == 3
    assert not _leftovers(tmp_path) and not (tmp_path / "modelnet40_ply_hdf5_2048.zip").exists()
    n = len(server.requests)
    assert ensure_dataset("modelnet10", root=tmp_path) == folder  # present: no download
    assert dataset_folder("modelnet10", tmp_path) == folder and len(server.requests) == n


def test_mirrors_in_order_and_published_md5(server, tmp_path, mn40_zip, monkeypatch):
    server.files["/good.zip"] = mn40_zip.read_bytes()
    src_dir = tmp_path / "unzipped"
    shutil.unpack_archive(mn40_zip, src_dir)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest()
           for p in (src_dir / "modelnet40_ply_hdf5_2048").glob("*.h5")}
    src = dataclasses.replace(dl.SOURCES["modelnet40"], file_md5=md5,
                              urls=(server.url("/down.zip"), server.url("/good.zip")))
    monkeypatch.setitem(dl.SOURCES, "modelnet40", src)
    root = tmp_path / "ok"
    assert ensure_dataset("modelnet40", root=root) == root / "modelnet40_ply_hdf5_2048"
    assert [r[0] for r in server.requests] == ["/down.zip", "/good.zip"]
    # Built-in URLs are held to the published per-file digests: a mismatch installs nothing.
    bad = dict(md5, **{"ply_data_test0.h5": "0" * 32})
    monkeypatch.setitem(dl.SOURCES, "modelnet40", dataclasses.replace(src, file_md5=bad))
    root = tmp_path / "bad"
    with pytest.raises(ValueError, match="ply_data_test0.h5"):
        ensure_dataset("modelnet40", root=root)
    assert not (root / "modelnet40_ply_hdf5_2048").exists() and not _leftovers(root)
    assert ensure_dataset("modelnet40", root=root, verify=False).is_dir()


def test_broken_archives_leave_no_folder(tmp_path, mn40_zip):
    import zipfile

    incomplete = tmp_path / "incomplete.zip"  # the lists name a file the zip lacks
    with zipfile.ZipFile(mn40_zip) as src, zipfile.ZipFile(incomplete, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("ply_data_test1.h5"):
                dst.writestr(item, src.read(item))
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError, match="ply_data_test1.h5") as err:
        ensure_dataset("modelnet40", root=root, from_path=incomplete)
    # named by the user's archive, not by the staging folder that is already deleted
    assert "incomplete.zip (in its modelnet40_ply_hdf5_2048 folder)" in str(err.value)
    assert "-tmp-" not in str(err.value)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(mn40_zip.read_bytes()[:-3000])
    with pytest.raises(ValueError, match="truncated.zip"):
        ensure_dataset("modelnet40", root=root, from_path=truncated)
    assert sorted(p.name for p in root.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        dataset_folder("modelnet40", root)


# ----------------------------------------------------------------------------- CLI
def test_cli_from_zip_and_folder(tmp_path, mn40_zip, capsys, monkeypatch):
    monkeypatch.setenv("POINTCALIP_HOME", str(tmp_path / "home"))
    assert main(["download", "modelnet40", "--from", str(mn40_zip)]) == 0
    installed = tmp_path / "home" / "data" / "modelnet40_ply_hdf5_2048"
    assert capsys.readouterr().out.strip() == str(installed)
    src = write_modelnet40(tmp_path / "mine", 2, 1, num_points=16, classes=["sofa"])
    root = tmp_path / "r2"
    assert main(["download", "modelnet40", "--from", str(src.parent), "--root", str(root)]) == 0
    assert len(ModelNet40(root / "modelnet40_ply_hdf5_2048", "train", num_points=8)) == 2
    assert src.is_dir()  # the user's folder is copied, never moved
    # --force replaces the installed folder in one rename.
    assert main(["download", "modelnet40", "--from", str(mn40_zip), "--root", str(root), "--force"]) == 0
    assert len(ModelNet40(root / "modelnet40_ply_hdf5_2048", "train", num_points=8)) == 3
    assert not _leftovers(root)


def test_cli_scanobjectnn_needs_terms_then_from(tmp_path, capsys):
    root = tmp_path / "data"
    assert main(["download", "scanobjectnn", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "terms" in err and "--from" in err and "h5_files.zip" in err
    h5 = write_scanobjectnn(tmp_path / "src", 1, 1, num_points=8, variants=("PB_T50_RS",))
    archive = shutil.make_archive(str(tmp_path / "h5_files"), "zip", root_dir=h5.parent,
                                  base_dir="h5_files")
    assert main(["download", "scanobjectnn", "--from", archive, "--root", str(root)]) == 0
    folder = dataset_folder("scanobjectnn", root)
    assert folder == root / "h5_files"
    assert len(ScanObjectNN(folder, "PB_T50_RS", "test", num_points=8)) == 15


def test_cli_unwritable_root_is_one_line(tmp_path, mn40_zip, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["download", "modelnet40", "--from", str(mn40_zip), "--root", str(blocker / "data")]) == 2
    err = error_block(capsys.readouterr().err)
    assert f"cannot write in {blocker / 'data'}" in err and "choose another folder with --root DIR" in err


def test_cli_checks_from_first_and_speaks_cli(tmp_path, mn40_zip, capsys, caplog):
    """`--from` a missing file fails (exit 2, naming it) even when the dataset is installed;
    an ignored `--from` says `--force`, never the Python `force=True`."""
    root = tmp_path / "data"
    assert main(["download", "modelnet40", "--from", str(mn40_zip), "--root", str(root)]) == 0
    capsys.readouterr()
    missing = tmp_path / "missing.zip"
    for name in ("modelnet40", "modelnet10"):
        assert main(["download", name, "--from", str(missing), "--root", str(root)]) == 2
        err = error_block(capsys.readouterr().err)
        assert err.startswith("pointcalip download: error: --from path") and f"--from path {missing} does not exist" in err
    assert main(["download", "modelnet40", "--from", str(mn40_zip), "--root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(root / "modelnet40_ply_hdf5_2048")
    assert "already installed" in err and "add --force to reinstall" in err
    assert "force=True" not in err + out + caplog.text
    with pytest.raises(FileNotFoundError, match="missing.zip does not exist"):
        ensure_dataset("modelnet40", root=root, from_path=missing)


def test_sources_and_choices_derive_from_the_catalog():
    from pointcalip.datasets.catalog import DATASETS, installing_entry

    # every dataset is downloadable: from its own source or with the dataset that installs it
    assert set(dl.SOURCES) | set(dl.ALIASES) == set(DATASETS.names())
    assert not set(dl.SOURCES) & set(dl.ALIASES) and set(dl.ALIASES.values()) <= set(dl.SOURCES)
    assert {"modelnet40", "scanobjectnn", "shapenetpart", "modelnet40c", "objaverse_lvis"} <= set(dl.SOURCES)
    assert dl.ALIASES["modelnet10"] == "modelnet40"
    assert installing_entry("ModelNet10").name == "modelnet40"
    assert dl.source("modelnet10") is dl.SOURCES["modelnet40"]
    with pytest.raises(ValueError, match=r"unknown dataset 'shapenet'"):
        dl.source("shapenet")


def test_install_warnings_name_the_installed_folder_not_the_staging_one(tmp_path, mn40_zip,
                                                                        monkeypatch, caplog):
    """Warnings while an install is checked (a list file missing, checksums that differ from
    the release) name the folder the dataset ends up in, not the temporary folder it is
    checked in, which is gone a moment later."""
    src_dir = tmp_path / "unzipped"
    shutil.unpack_archive(mn40_zip, src_dir)
    folder = src_dir / "modelnet40_ply_hdf5_2048"
    (folder / "train_files.txt").unlink()            # read by globbing, with a warning
    md5 = {p.name: "0" * 32 for p in folder.glob("*.h5")}
    monkeypatch.setitem(dl.SOURCES, "modelnet40",
                        dataclasses.replace(dl.SOURCES["modelnet40"], file_md5=md5))
    for origin in (src_dir, mn40_zip):
        root = tmp_path / f"root-{origin.name}"     # each message new (the CLI logs each once)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            installed = ensure_dataset("modelnet40", root=root, from_path=origin)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        if origin == src_dir:
            assert any(w.startswith(f"{installed / 'train_files.txt'} missing; using")
                       for w in warnings), warnings
        assert any(w.startswith(f"{installed}: files [") and "differ from the published" in w
                   for w in warnings), warnings
        assert installed == root / "modelnet40_ply_hdf5_2048" and installed.is_dir()
        assert not any("-tmp-" in w for w in warnings), warnings
