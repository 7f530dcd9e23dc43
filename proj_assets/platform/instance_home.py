"""Where the Dagster instance lives: in the data folder, one per profile, so the run and event
history, compute logs and artifacts move with PROJ_DATA_DIR and two data folders or profiles
never read each other's history.

DAGSTER_HOME, when set (by a person, a test, or cluster mode's `make cluster-env`), is used as
it is (given the project's dagster.yaml only when it has none). Otherwise it becomes
`<data dir>/dagster/<profile>`, with a dagster.yaml generated from the project's (whose settings
name no path, so Dagster keeps every store under DAGSTER_HOME). A dagster.yaml that was not
generated is never overwritten. Pure code, no dagster import.
"""

import os
from pathlib import Path

from proj_assets.profiles import PROJECT_ROOT, data_dir, load_profile

TEMPLATE = PROJECT_ROOT / "dagster.yaml"
GENERATED_MARK = (
    "# Generated from the project's dagster.yaml by proj_assets/platform/instance_home.py and "
    "rewritten from it on every start: edit that file, not this one.\n"
)


def default_instance_home(data: Path, profile_name: str) -> Path:
    return data / "dagster" / profile_name


def write_instance_yaml(home: Path, template: Path = TEMPLATE) -> None:
    """`home/dagster.yaml` as the template says, unless `home` has a dagster.yaml of its own."""
    target = home / "dagster.yaml"
    text = GENERATED_MARK + template.read_text()
    if target.exists() and not target.read_text().startswith(GENERATED_MARK):
        return
    if target.exists() and target.read_text() == text:
        return
    home.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".yaml.tmp")
    partial.write_text(text)
    partial.replace(target)


def ensure_instance_home() -> Path:
    """The instance home for this process (see the module docstring), prepared and exported as
    DAGSTER_HOME so the Dagster processes started from here use it too."""
    home = Path(
        os.environ.get("DAGSTER_HOME") or default_instance_home(data_dir(), load_profile().name)
    )
    write_instance_yaml(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
