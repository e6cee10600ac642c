from pathlib import Path

from twin_platform.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_configuration_table_lists_every_setting():
    text = README.read_text()
    missing = [f"TWIN_{name.upper()}" for name in Settings.model_fields if f"`TWIN_{name.upper()}`" not in text]
    assert missing == []
