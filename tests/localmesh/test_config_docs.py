"""docs/configuration.md is what tools/gen_config_docs.py renders from the code."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from localmesh.services import REPO_ROOT


def load_tool() -> ModuleType:
    path = REPO_ROOT / "tools" / "gen_config_docs.py"
    spec = importlib.util.spec_from_file_location("gen_config_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_up_to_date() -> None:
    tool = load_tool()
    assert tool.main(["--check"]) == 0, "docs/configuration.md is stale: run make config-docs"


def test_reference_documents_every_declared_setting() -> None:
    tool = load_tool()
    text = tool.render()
    for config in tool.config_classes():
        for setting in config.declared_settings():
            assert f"`{setting.env_name}`" in text
    assert "CROSSDOCK_GATEWAY_ADMIN_TOKEN` | str | — | yes | yes |" in text
