"""The command line: every verb parses, usage errors are one line with exit code 2, --help is cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vcluster.cli import main
from vcluster.cli.errors import UsageError
from vcluster.cli.parser import parse

VERBS = ["up", "down", "status", "create", "list", "get", "delete", "kubeconfig", "connect"]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert f"kubectl vc {verb}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "a command is required", id="no-verb"),
        pytest.param(["frobnicate"], "invalid choice", id="unknown-verb"),
        pytest.param(["get"], "the following arguments are required: NAME", id="get-without-name"),
        pytest.param(["delete"], "NAME", id="delete-without-name"),
        pytest.param(["connect", "a"], "connect needs a command", id="connect-without-command"),
        pytest.param(["connect", "a", "--"], "connect needs a command", id="connect-empty-command"),
        pytest.param(["create", "a", "--backend", "vm"], "invalid choice: 'vm'", id="bad-backend"),
        pytest.param(["create", "a", "--wait", "--timeout", "0"], "must be more than 0", id="zero-timeout"),
        pytest.param(["create", "a", "--timeout", "soon"], "not a number", id="word-timeout"),
        pytest.param(["list", "-o", "xml"], "invalid choice: 'xml'", id="bad-output"),
        pytest.param(["up", "--nodes", "-1"], "must not be negative", id="negative-nodes"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["create", "Team_A"], "is not a DNS label", id="uppercase-name"),
        pytest.param(["create", "a" * 33], "longer than 32", id="long-name"),
        pytest.param(["create", "a--b"], "must not contain '--'", id="separator-in-name"),
        pytest.param(["create", "a", "--quota", "cpu"], "expected RESOURCE=QUANTITY", id="quota-no-value"),
        pytest.param(["create", "a", "--quota", "cpu=lots"], "not a quantity", id="quota-bad-quantity"),
        pytest.param(["create", "a", "--version", "1.36"], "expected a Kubernetes release", id="bad-version"),
        pytest.param(["create"], "needs a NAME or -f FILE", id="create-nothing"),
        pytest.param(["create", "-f", "/nonexistent/tenant.yaml"], "cannot read", id="missing-file"),
    ],
)
def test_bad_create_input_is_refused_before_any_cluster_is_needed(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no cluster anywhere: the input check must come first
    monkeypatch.setenv("VC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1


def test_no_cluster_is_a_runtime_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VC_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no super cluster")
    assert "kubectl vc up" in err


def test_missing_kubeconfig_file_is_a_runtime_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["get", "a", "--kubeconfig", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "kubeconfig", "state_dir"),
    [
        pytest.param(["--kubeconfig", "k1", "list"], "k1", None, id="before-verb"),
        pytest.param(["list", "--kubeconfig", "k2"], "k2", None, id="after-verb"),
        pytest.param(["--state-dir", "s1", "status"], None, "s1", id="state-before"),
        pytest.param(["status", "--state-dir", "s2"], None, "s2", id="state-after"),
    ],
)
def test_common_options_before_or_after_the_verb(
    argv: list[str], kubeconfig: str | None, state_dir: str | None
) -> None:
    args = parse(argv)
    assert args.kubeconfig == kubeconfig
    assert args.state_dir == state_dir


def test_connect_keeps_the_command_verbatim() -> None:
    args = parse(["connect", "team-a", "--", "kubectl", "get", "ns", "-o", "name", "--kubeconfig", "x"])
    assert args.name == "team-a"
    assert args.command == ["kubectl", "get", "ns", "-o", "name", "--kubeconfig", "x"]


def test_usage_error_is_a_vcluster_error() -> None:
    with pytest.raises(UsageError):
        parse(["get"])


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from vcluster.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('aiohttp', 'kopf', 'cryptography', 'vcluster.kube', 'vcluster.testbed', 'yaml')"
        " if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY="


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        pytest.param(["up", "--network-policy"], {}, id="flag-without-real-nodes"),
        pytest.param(["up", "--network-policy", "--real-nodes", "2"], {}, id="flag-two-real-nodes"),
        pytest.param(["up"], {"VC_NETWORK_POLICY": "1"}, id="env-without-real-nodes"),
        pytest.param(["up", "--network-policy"], {"VC_REAL_NODES": "3"}, id="flag-env-three"),
    ],
)
def test_network_policy_needs_exactly_one_real_node_before_anything_starts(
    argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VC_STATE_DIR", str(tmp_path / "state"))
    for name in ("VC_NETWORK_POLICY", "VC_REAL_NODES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    real = argv[argv.index("--real-nodes") + 1] if "--real-nodes" in argv else env.get("VC_REAL_NODES", "0")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --network-policy needs exactly one real node")
    assert f"got {real}:" in err
    assert not (tmp_path / "state").exists()  # refused before anything was started or written


def test_network_policy_setting_is_read_from_the_environment_and_the_flag() -> None:
    from vcluster.cli.settings import CliSettings

    assert CliSettings.from_env({}).network_policy is False
    assert CliSettings.from_env({"VC_NETWORK_POLICY": "true"}).network_policy is True
    assert parse(["up", "--network-policy", "--real-nodes", "1"]).network_policy is True
    assert parse(["up"]).network_policy is None  # not given: the environment decides
