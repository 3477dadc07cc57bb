"""The `mallard` wheel carries the engine, the function library and the SQL of sql/, and works
installed outside the source tree (not editable)."""
from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_carries_sql_and_runs_when_installed(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(ROOT)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("mallard-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sql_files = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    assert sql_files and all(f"engine/sql/{name}" in names for name in sql_files)
    assert "engine/__init__.py" in names and "udfs/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mallard = engine.shell:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    probe = ("import engine, engine.system_catalog as c; con = engine.connect(); "
             "print(engine.__file__); print(c.sql_dir()); "
             "print(con.execute(\"SELECT value FROM mallard.meta WHERE key = 'catalog_version'\").fetchone()[0])")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    module, sql_dir, version = run.stdout.split()
    assert module.startswith(str(target)) and sql_dir == str(target / "engine" / "sql")
    assert int(version) == len(sql_files)


def test_ray_is_imported_only_when_a_cluster_is_used():
    """Ray is an optional extra: without a cluster (and with one set but not yet used) it is never imported."""
    code = ("import sys, engine\n"
            "from udfs.labeling import labeling_function, register_labeling_function\n"
            "con = engine.connect(progress='off')\n"
            "con.execute(\"CREATE TABLE t AS SELECT range AS id, 'x' || range AS text FROM range(10)\")\n"
            "for name in ('a', 'b', 'c'):\n"
            "    register_labeling_function(con, labeling_function(name=name, on='t', register=False)(lambda text: 'x'))\n"
            "con.execute(\"LABEL t USING a, b, c WITH (classes = ['x', 'y']) INTO labels\")\n"
            "con.execute(\"SET cluster = '127.0.0.1:6379'\").execute('SHOW MALLARD SETTINGS').fetchall()\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_import_and_plain_sql_do_not_import_torch():
    """torch costs about a second and 300 MB: only model work (CREATE MODEL, model functions) loads it."""
    code = ("import sys, engine\n"
            "con = engine.connect()\n"
            "con.execute(\"LOAD VIDEO 'data/carphone.mp4' INTO clip WITH (limit = 2)\")\n"
            "assert con.execute('SELECT count(*), max(frame_mean(frame)) > 0 FROM clip').fetchone() == (2, True)\n"
            "con.execute('SHOW MODELS').fetchall()\n"
            "print('torch' in sys.modules)\n"
            "con.execute(\"CREATE MODEL m FROM 'data/mobilenet_v2.pth' WITH (architecture = 'mobilenet_v2')\")\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
