"""Profiles: the shipped profiles validate; every mistake is a ProfileError naming file and field."""

from pathlib import Path

import pytest
import yaml

from proj_assets.profiles import PROFILES_DIR, Profile, ProfileError, load_profile_file


@pytest.mark.parametrize("name", ["demo", "research"])
def test_shipped_profiles_validate(name):
    profile = load_profile_file(PROFILES_DIR / f"{name}.yaml")
    assert isinstance(profile, Profile) and profile.name == name
    assert profile.market.target_ticker in profile.market.tickers
    assert profile.market.vol_index_ticker in profile.market.tickers


def _write_variant(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    edit(raw)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "field", "says"),
    [
        (
            lambda r: r["market"].update(horizon=[1]),
            "market.horizon",
            "Extra inputs are not permitted",
        ),
        (lambda r: r.update(extra_section={}), "extra_section", "Extra inputs are not permitted"),
        (lambda r: r["compute"].update(threads="many"), "compute.threads", "valid integer"),
        (
            lambda r: r["market"]["splits"].update(train="most"),
            "market.splits.train",
            "valid number",
        ),
        (
            lambda r: r["market"].update(source="csv", csv_dir="no_such_folder"),
            "market.csv_dir",
            "csv_dir does not exist",
        ),
        (
            lambda r: r["market"].update(target_ticker="SPY"),
            "market.target_ticker",
            "'SPY' is not in tickers",
        ),
        (lambda r: r["market"].pop("tickers"), "market.tickers", "Field required"),
    ],
)
def test_invalid_profile_names_file_and_dotted_field(tmp_path, edit, field, says):
    path = _write_variant(tmp_path, edit)
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    message = str(err.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert says in message


def test_csv_dir_relative_to_the_profile_file(tmp_path):
    (tmp_path / "prices").mkdir()
    path = _write_variant(tmp_path, lambda r: r["market"].update(source="csv", csv_dir="prices"))
    assert load_profile_file(path).market.csv_dir == str(tmp_path / "prices")


def test_missing_profile_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(
        ProfileError, match=rf"profile file not found: {missing} \(available profiles: .*'demo'"
    ):
        load_profile_file(missing)


def test_not_a_mapping_and_bad_yaml(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ProfileError, match=rf"{path} must be a mapping"):
        load_profile_file(path)
    path.write_text("market: [unclosed\n")
    with pytest.raises(ProfileError, match=rf"{path} is not valid YAML"):
        load_profile_file(path)
