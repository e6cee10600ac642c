"""Build hook: ship the top-level ``dbt/`` project inside the package, as ``twin_platform/dbt_project``.

The metadata lives in pyproject.toml; this file only adds one step to ``build_py``. ``dbt/`` stays the one
source of truth in the repository (a checkout and an editable install read it in place); a wheel, and so every
image, carries a copy, which ``twin_platform.adapters.dbt`` finds and copies again to a writable folder under
TWIN_DATA_DIR before dbt runs.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DBT_SOURCE = Path(__file__).resolve().parent / "dbt"
PACKAGED_AS = Path("twin_platform") / "dbt_project"
# dbt's own outputs (a checkout may have run dbt in place) and editor or OS litter never ship.
DBT_OUTPUTS = {"target", "logs", "dbt_packages"}


def dbt_sources() -> list[Path]:
    """The project's files, relative to ``dbt/``."""
    if not (DBT_SOURCE / "dbt_project.yml").is_file():
        raise SystemExit(f"{DBT_SOURCE}/dbt_project.yml is missing: the build needs the repository's dbt/ folder")
    return sorted(
        path.relative_to(DBT_SOURCE)
        for path in DBT_SOURCE.rglob("*")
        if path.is_file()
        and not DBT_OUTPUTS & set(path.relative_to(DBT_SOURCE).parts)
        and not any(part.startswith(".") for part in path.relative_to(DBT_SOURCE).parts)
    )


class BuildPyWithDbtProject(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install imports from the checkout, which has dbt/ itself
            return
        for relative in dbt_sources():
            target = Path(self.build_lib) / PACKAGED_AS / relative
            self.mkpath(str(target.parent))
            self.copy_file(str(DBT_SOURCE / relative), str(target))


setup(cmdclass={"build_py": BuildPyWithDbtProject})
