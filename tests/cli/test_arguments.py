"""The CLI's argument parsing, without a server: `-p key=value` typing, `-f params.yaml`, `--json` anywhere, and bad
input refused with exit status 2 before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from paved.cli import EXIT_USAGE, UsageError, build_parser, load_params, main, parse_assignment, parse_mapping

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens there: a test that reached the network would fail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu_count=2", ("gpu_count", 2)),
        ("lr=0.5", ("lr", 0.5)),
        ("spot=true", ("spot", True)),
        ("owner=null", ("owner", None)),
        ("name=resnet-50", ("name", "resnet-50")),
        ('tag="2"', ("tag", "2")),
        ('zones=["a", "b"]', ("zones", ["a", "b"])),
        ("url=s3://bucket/key=1", ("url", "s3://bucket/key=1")),
        ("empty=", ("empty", "")),
    ],
)
def test_a_parameter_is_typed_like_json_else_kept_as_text(text: str, expected: tuple[str, object]) -> None:
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["gpu_count", "=2", " =x"])
def test_a_parameter_without_a_key_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="key=value"):
        parse_assignment(text)


def test_a_params_file_is_read_and_p_overrides_it(tmp_path: Path) -> None:
    file = tmp_path / "params.yaml"
    file.write_text("experiment_name: resnet\ngpu_count: 1\nframework: pytorch\n")

    params = load_params(str(file), ["gpu_count=2", "dataset_size_gb=50"])

    assert params == {"experiment_name": "resnet", "gpu_count": 2, "framework": "pytorch", "dataset_size_gb": 50}


@pytest.mark.parametrize(
    ("content", "message"),
    [("- a\n- b\n", "must hold a mapping"), ("key: [unclosed\n", "not valid YAML")],
)
def test_a_params_file_that_is_not_a_mapping_is_refused(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "params.yaml"
    file.write_text(content)

    with pytest.raises(UsageError, match=message):
        load_params(str(file), [])


def test_a_missing_params_file_is_a_usage_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"Cannot read .*nowhere\.yaml"):
        load_params(str(tmp_path / "nowhere.yaml"), [])


def test_environment_values_stay_strings_and_hyperparameters_are_typed() -> None:
    assert parse_mapping(["EPOCHS=3", "MODE=fast"], typed=False) == {"EPOCHS": "3", "MODE": "fast"}
    assert parse_mapping(["epochs=3", "lr=0.01"], typed=True) == {"epochs": 3, "lr": 0.01}


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "runs", "log", "7", "--follow"],
        ["runs", "log", "7", "--follow", "--json"],
    ],
)
def test_json_is_accepted_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)

    assert (args.json, args.action, args.id, args.follow) == (True, "log", 7, True)


def test_launch_collects_every_p_and_the_file() -> None:
    args = build_parser().parse_args(
        ["launch", "sandbox-experiment", "--name", "sweep", "-p", "a=1", "-p", "b=x", "-f", "p.yaml", "--wait"]
    )

    assert (args.slug, args.name, args.param, args.file, args.wait) == (
        "sandbox-experiment",
        "sweep",
        ["a=1", "b=x"],
        "p.yaml",
        True,
    )


def test_a_bad_id_is_an_argparse_error_with_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--url", UNREACHABLE, "runs", "log", "seven"])

    assert exited.value.code == EXIT_USAGE
    assert "invalid int value: 'seven'" in capsys.readouterr().err


def test_a_bad_parameter_is_refused_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--url", UNREACHABLE, "launch", "sandbox-experiment", "--name", "x", "-p", "gpu_count"])

    assert status == EXIT_USAGE
    error = capsys.readouterr().err
    assert "Expected key=value, got 'gpu_count'" in error
    assert "Traceback" not in error


def test_a_job_command_after_the_double_dash_is_not_read_as_options(capsys: pytest.CaptureFixture[str]) -> None:
    # --gpus is missing: refused locally, after the command (which has its own --epochs) was split off.
    status = main(
        ["--url", UNREACHABLE, "jobs", "submit", "--image", "img", "--minutes", "5", "--", "python", "--epochs", "3"]
    )

    assert status == EXIT_USAGE
    assert "A job needs --image, --gpus, --minutes" in capsys.readouterr().err
