"""`usbtrace wireshark install|uninstall|path|fields|lua`, in a temporary HOME or folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from usbtrace.cli.main import main
from usbtrace.wireshark.fields import FIELDS
from usbtrace.wireshark.generate import SIGNATURE, generate_lua
from usbtrace.wireshark.install import PLUGIN_FILENAME


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return tmp_path


def test_path_is_the_personal_lua_plugin_folder(home, capsys):
    assert main(["wireshark", "path"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == home / ".local" / "lib" / "wireshark" / "plugins" / PLUGIN_FILENAME


def test_install_then_again_then_uninstall(home, capsys):
    target = home / ".local" / "lib" / "wireshark" / "plugins" / PLUGIN_FILENAME
    assert main(["wireshark", "install"]) == 0
    assert f"installed {target}" in capsys.readouterr().out
    assert target.read_text() == generate_lua()

    assert main(["wireshark", "install"]) == 0
    assert "already up to date" in capsys.readouterr().out

    target.write_text(SIGNATURE + " (an older usbtrace)\n")
    assert main(["wireshark", "install"]) == 0
    assert f"updated {target}" in capsys.readouterr().out
    assert target.read_text() == generate_lua()

    assert main(["wireshark", "uninstall"]) == 0
    assert f"removed {target}" in capsys.readouterr().out
    assert not target.exists()
    assert main(["wireshark", "uninstall"]) == 0
    assert "not installed" in capsys.readouterr().out


def test_install_keeps_a_foreign_file_unless_forced(tmp_path, capsys):
    target = tmp_path / PLUGIN_FILENAME
    foreign = "-- somebody else's dissector\n"
    target.write_text(foreign)

    assert main(["wireshark", "install", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and "--force" in err
    assert target.read_text() == foreign

    assert main(["wireshark", "uninstall", "--dir", str(tmp_path)]) == 2
    assert target.read_text() == foreign
    capsys.readouterr()

    assert main(["wireshark", "install", "--dir", str(tmp_path), "--force"]) == 0
    out = capsys.readouterr().out
    backup = tmp_path / (PLUGIN_FILENAME + ".bak")
    assert f"replaced {target}" in out and str(backup) in out
    assert backup.read_text() == foreign
    assert target.read_text() == generate_lua()


def test_fields_lists_every_field(capsys):
    assert main(["wireshark", "fields"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines()}
    assert {f.abbrev for f in FIELDS} <= listed


def test_lua_to_stdout_and_to_a_file(tmp_path, capsys):
    assert main(["wireshark", "lua"]) == 0
    assert capsys.readouterr().out == generate_lua()

    out_file = tmp_path / "edgetpu.lua"
    assert main(["wireshark", "lua", "-o", str(out_file)]) == 0
    assert out_file.read_text() == generate_lua()

    mine = tmp_path / "mine.lua"
    mine.write_text("print('mine')\n")
    assert main(["wireshark", "lua", "-o", str(mine)]) == 2
    assert mine.read_text() == "print('mine')\n"


def test_install_into_a_file_path_is_refused(tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert main(["wireshark", "install", "--dir", str(not_a_dir)]) == 2
    assert "usbtrace:" in capsys.readouterr().err
    assert not_a_dir.read_text() == "x"
