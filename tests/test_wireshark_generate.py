"""The Lua dissector is generated from the Python protocol tables and nothing else."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from usbtrace.edgetpu import constants as c
from usbtrace.wireshark import generate
from usbtrace.wireshark.fields import FIELDS, PROTO_NAME


def test_every_register_reaches_the_lua_table():
    lua = generate.generate_lua()
    for reg in c.REGISTERS:
        line = f'[0x{reg.address:x}] = {{name = "{reg.name}", width = {reg.width},'
        assert line in lua, reg


def test_tags_ids_and_dfu_codes_come_from_the_constants():
    lua = generate.constants_lua()
    for tag, name in c.TAG_NAMES.items():
        assert f'[{int(tag)}] = "{name}"' in lua
    for vid, pid in c.EDGETPU_IDS:
        assert f"{{0x{vid:04x}, 0x{pid:04x}}}" in lua
    for request in c.DfuRequest:
        assert f'[{int(request)}] = "DFU_{request.name}"' in lua
    assert f"local EP_EVENT_IN = 0x{c.EP_EVENT_IN:x}" in lua


def test_template_repeats_no_protocol_number():
    template = generate.template_text()
    numbers = {int(n, 16) for n in re.findall(r"\b0x([0-9a-fA-F]+)\b", template)}
    numbers |= {int(n) for n in re.findall(r"(?<![\w.%])(\d+)(?![\w.])", template)}
    protocol = {r.address for r in c.REGISTERS} | {v for ids in c.EDGETPU_IDS for v in ids}
    protocol |= {c.EP_OUTPUT_IN, c.EP_EVENT_IN, c.EP_INTERRUPT_IN, c.REQTYPE_VENDOR_IN}
    protocol |= {c.REQTYPE_VENDOR_OUT, c.REQTYPE_DFU_IN, c.REQTYPE_DFU_OUT, c.EVENT_LEN}
    assert not numbers & protocol
    for reg in c.REGISTERS:
        assert reg.name not in template


def test_a_changed_constant_changes_the_dissector(monkeypatch):
    extra = c.Register(0x5_0000, "made_up_register", 64, "only in this test")
    monkeypatch.setattr(c, "REGISTERS", (*c.REGISTERS, extra))
    assert '[0x50000] = {name = "made_up_register", width = 64,' in generate.generate_lua()


def test_fields_are_declared_once_each():
    abbrevs = [f.abbrev for f in FIELDS]
    assert len(abbrevs) == len(set(abbrevs))
    assert all(a.startswith(PROTO_NAME + ".") for a in abbrevs)
    lua = generate.fields_lua()
    for f in FIELDS:
        assert f'"{f.abbrev}"' in lua


def test_generated_file_starts_with_the_signature():
    assert generate.generate_lua().startswith(generate.SIGNATURE)


@pytest.mark.parametrize("bad", ["two\nlines", "caf\u00e9", "nul\0"])
def test_lua_string_refuses_what_it_cannot_quote(bad):
    with pytest.raises(ValueError):
        generate.lua_string(bad)


def test_lua_string_escapes_quotes():
    assert generate.lua_string('a "b" \\c') == '"a \\"b\\" \\\\c"'


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (Debian: tshark)")
def test_tshark_loads_it_and_knows_every_field(tmp_path):
    # -G ignores -X scripts, so the plug-in goes where a personal plug-in goes, under a fresh HOME
    plugins = tmp_path / ".local" / "lib" / "wireshark" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "edgetpu.lua").write_text(generate.generate_lua())
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["tshark", "-G", "fields"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and "Lua" not in result.stderr, result.stderr
    known = {
        line.split("\t")[2]
        for line in result.stdout.splitlines()
        if line.startswith("F\t") and line.split("\t")[2].startswith(PROTO_NAME + ".")
    }
    known = {name for name in known if not name.startswith(PROTO_NAME + ".expert.")}
    assert known == {f.abbrev for f in FIELDS}
