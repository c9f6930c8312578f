"""Where the machine cannot emulate: exit 2 and one line saying why (no board needed)."""
from click.testing import CliRunner

from lcefr.board import emulate
from lcefr.cli import cli


def _up(monkeypatch, tmp_path):
    monkeypatch.setenv("LCEFR_BOARD_DIR", str(tmp_path / "board"))
    result = CliRunner().invoke(cli, ["board", "emulate", "up"])
    return result.exit_code, result.output.strip().splitlines()


def test_not_root(monkeypatch, tmp_path):
    monkeypatch.setattr(emulate.os, "geteuid", lambda: 1000)
    code, lines = _up(monkeypatch, tmp_path)
    assert code == 2 and len(lines) == 1 and "needs root" in lines[0]


def test_no_binfmt_misc(monkeypatch, tmp_path):
    monkeypatch.setattr(emulate.os, "geteuid", lambda: 0)
    monkeypatch.setattr(emulate, "BINFMT_DIR", str(tmp_path / "no-binfmt_misc"))
    code, lines = _up(monkeypatch, tmp_path)
    assert code == 2 and len(lines) == 1 and "binfmt_misc" in lines[0]


def test_no_mirror_in_the_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("LCEFR_BOARD_MIRROR", raising=False)
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "other.sources").write_text("Types: deb\nURIs: http://mirror.invalid/ubuntu\nSuites: jammy\n"
                                                            "Components: main\n")
    try:
        emulate.host_mirror(str(apt))
    except emulate.CannotEmulate as err:
        assert "LCEFR_BOARD_MIRROR" in str(err)
    else:
        raise AssertionError("a mirror without bookworm was accepted")
    (apt / "sources.list").write_text("deb [arch=amd64] http://deb.example.invalid/debian bookworm main contrib\n")
    assert emulate.host_mirror(str(apt)) == "http://deb.example.invalid/debian"
    assert "deb-src http://deb.example.invalid/debian bookworm main contrib" in emulate.source_entries(str(apt))


def test_status_of_a_board_never_built(tmp_path, monkeypatch):
    monkeypatch.setenv("LCEFR_BOARD_DIR", str(tmp_path / "board"))
    info = emulate.status()
    assert info["running"] is False and info["pid"] is None and info["tarball"] is None
