"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has a Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_missing_tools_fail_under_ci(monkeypatch):
    """A test that lacks its compiler skips on a laptop but fails in CI, where .ci/run installs it."""
    import pytest

    import helpers

    monkeypatch.setattr(helpers, "REQUIRE_TOOLS", True)
    with pytest.raises(pytest.fail.Exception, match="CI installs it"):
        helpers.tool_missing("arm-none-eabi-gcc is not installed")
    monkeypatch.setattr(helpers, "REQUIRE_TOOLS", False)
    with pytest.raises(pytest.skip.Exception, match="arm-none-eabi-gcc is not installed"):
        helpers.tool_missing("arm-none-eabi-gcc is not installed")


def test_install_hints_name_dwgen_mcu():
    """`dwgen` on the package index is another project: every hint that installs dwgen itself
    names the distribution dwgen-mcu, which is what pyproject.toml builds."""
    import tomllib
    from importlib.metadata import version

    import dwgen

    root = README.parent
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"] == "dwgen-mcu"
    assert dwgen.__version__ == version("dwgen-mcu")
    texts = {README: README.read_text()} | {p: p.read_text() for p in (root / "dwgen").glob("*.py")}
    hints = [(p.name, m) for p, t in texts.items() for m in re.findall(r"pip install ['\"]?(dwgen[\w.-]*)", t)]
    assert hints, "the README says how to install dwgen"
    assert all(m.startswith("dwgen-mcu") for _, m in hints), hints
