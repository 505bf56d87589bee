"""The container files: Dockerfile, docker/compose.yaml, docker/.env.example and the Kubernetes
Job parse, say what the README promises, hold no password, and run the commands the CLI has.

No Docker engine is needed: `docker compose config` runs only where a compose client is
installed (it reads files and needs no engine); the image's entry point is run outside a
container.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click
import pytest
import yaml
from click.testing import CliRunner

from hls_tune.cli import cli
from hls_tune.study.config import load_study_file
from tests.support.helpers import REPO_ROOT, missing_component

ROOT = REPO_ROOT
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
JOB = DOCKER / "k8s" / "job.yaml"
WORKERS = [f"worker-{i}" for i in range(4)]
OUR_IMAGE = "${HLS_TUNE_IMAGE:-hls-tune:latest}"

# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolate(text: str, env: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        if env.get(name) or (name in env and not op.startswith(":")):
            return env[name]
        if op.endswith("-"):
            return arg
        raise AssertionError(f"compose.yaml needs {name} ({arg or 'no default'})")

    return _VARIABLE.sub(value, text).replace("$$", "$")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _our_services() -> dict[str, dict]:
    return {name: s for name, s in _services().items() if s.get("image") == OUR_IMAGE}


def _env_files(service: dict) -> list[str]:
    files = service.get("env_file", [])
    files = [files] if isinstance(files, str | dict) else files
    return [f["path"] if isinstance(f, dict) else f for f in files]


def _mounts(service: dict) -> dict[str, str]:
    """Container path → source of each `source:target[:mode]` volume."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def _command(service: dict) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else list(command)


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _dockerfile_arguments() -> dict[str, str]:
    """Default values of the Dockerfile's ARGs."""
    instructions = _dockerfile_instructions()
    return dict(arg.split("=", 1) for name, arg in instructions if name == "ARG" and "=" in arg)


def _dockerfile_exec_form(instruction: str) -> list[str]:
    (argument,) = [arg for name, arg in _dockerfile_instructions() if name == instruction]
    return json.loads(argument)


def _k8s_documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(JOB.read_text(encoding="utf-8")) if doc]


def _k8s(kind: str) -> dict:
    (document,) = [doc for doc in _k8s_documents() if doc["kind"] == kind]
    return document


def _job_container() -> dict:
    (container,) = _k8s("Job")["spec"]["template"]["spec"]["containers"]
    return container


# ---------------------------------------------------------------------------------------------
# compose.yaml
# ---------------------------------------------------------------------------------------------


def test_compose_names_postgres_dashboard_create_and_four_gpu_workers() -> None:
    assert {"postgres", "dashboard", "create", *WORKERS} <= set(_services())
    assert set(_our_services()) == {"dashboard", "create", *WORKERS}


def test_postgres_keeps_its_data_in_a_named_volume_and_has_a_pg_isready_healthcheck() -> None:
    compose = _compose()
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    data_volume = _mounts(postgres)["/var/lib/postgresql/data"]
    assert data_volume in compose["volumes"]
    check = postgres["healthcheck"]["test"]
    assert check[0] in ("CMD", "CMD-SHELL")
    assert "pg_isready" in " ".join(check[1:])
    assert _env_files(postgres) == [".env"]
    assert "POSTGRES_PASSWORD" not in postgres.get("environment", {})


def test_everything_waits_for_a_healthy_postgres_and_workers_for_the_created_study() -> None:
    for name, service in _our_services().items():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
    for name in ["dashboard", *WORKERS]:
        created = _services()[name]["depends_on"]["create"]["condition"]
        assert created == "service_completed_successfully", name


def test_dashboard_is_published_on_the_host_loopback_only() -> None:
    dashboard = _services()["dashboard"]
    env = _env_example()
    assert _command(dashboard)[:3] == ["dashboard", "--host", "0.0.0.0"]
    (port,) = dashboard["ports"]
    host_ip, host_port, container_port = _interpolate(port, env).split(":")
    assert host_ip == "127.0.0.1"
    assert int(host_port) > 0
    assert container_port == _command(dashboard)[_command(dashboard).index("--port") + 1]
    for port in _services()["postgres"].get("ports", []):
        assert _interpolate(port, env).startswith("127.0.0.1:"), port


def test_each_worker_reserves_its_own_nvidia_gpu() -> None:
    device_ids = []
    for name in WORKERS:
        (device,) = _services()[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia", name
        assert device["capabilities"] == ["gpu"], name
        assert len(device["device_ids"]) == 1, name
        device_ids += device["device_ids"]
        command = _command(_services()[name])
        assert command[0] == "worker"
        assert command[command.index("--device") + 1] == "cuda", name
    assert sorted(device_ids) == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("variable", "readers"),
    [("HLS_TUNE_CHECKPOINT_DIR", WORKERS), ("HLS_TUNE_ARTIFACTS", [*WORKERS, "dashboard"])],
)
def test_workers_share_one_named_volume_at(variable: str, readers: list[str]) -> None:
    compose = _compose()
    sources = set()
    for name in readers:
        service = compose["services"][name]
        directory = service["environment"][variable]
        source = _mounts(service)[directory]
        assert source in compose["volumes"], f"{name}: {source} is not a named volume"
        sources.add(source)
    assert len(sources) == 1


def test_workers_mount_the_datasets_where_the_study_files_look() -> None:
    for name in WORKERS:
        assert _mounts(_services()[name])["/app/data"] in _compose()["volumes"], name


def test_hls_tune_services_read_the_storage_url_from_the_env_file_only() -> None:
    for name, service in _our_services().items():
        assert ".env" in _env_files(service), name
        assert "HLS_TUNE_STORAGE" not in service.get("environment", {}), name
        assert "--storage" not in _command(service), name


@pytest.mark.parametrize("path", [COMPOSE, JOB], ids=lambda p: p.name)
def test_no_literal_password_in(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    placeholder = _env_example()["POSTGRES_PASSWORD"]
    assert placeholder not in text
    # scheme://user:password@host with a literal password (not a ${VAR} reference).
    assert not re.search(r"://[^\s/:@]+:(?!\$\{)[^\s@]+@", text)
    # KEY: value or KEY=value for any password-like key, unless the value is a ${VAR}.
    for match in re.finditer(r"(?i)(?<!\$\{)\b(\w*password\w*)[\"']?\s*[:=]\s*([^\s,}\]]+)", text):
        assert match[2].startswith("${"), f"{path.name}: {match[0]}"
    for document in yaml.safe_load_all(text):
        for key, value in _walk(document):
            if "password" in str(key).lower():
                assert str(value).startswith("${"), f"{path.name}: {key}: {value}"


def _walk(node: object) -> list[tuple[object, object]]:
    """Every (key, value) pair of every mapping in a parsed YAML document."""
    if isinstance(node, dict):
        return list(node.items()) + [p for v in node.values() for p in _walk(v)]
    if isinstance(node, list):
        return [p for item in node for p in _walk(item)]
    return []


def test_env_example_documents_every_variable_and_its_storage_url_matches_the_server() -> None:
    env = _env_example()
    used = {m["name"] for m in _VARIABLE.finditer(COMPOSE.read_text(encoding="utf-8"))}
    assert used <= set(env), f"undocumented: {sorted(used - set(env))}"
    for key in ("POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD", "HLS_TUNE_STORAGE"):
        assert env[key], key
    url = urlsplit(env["HLS_TUNE_STORAGE"])
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres"  # the compose service
    assert unquote(url.username or "") == env["POSTGRES_USER"]
    assert unquote(url.password or "") == env["POSTGRES_PASSWORD"]
    assert url.path == "/" + env["POSTGRES_DB"]


def test_the_real_env_file_is_git_ignored_and_kept_out_of_the_image() -> None:
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert {"docker/.env", "/docker/.env"} & {line.strip() for line in gitignore}
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "docker/.env" in {line.strip() for line in dockerignore}


def test_the_create_service_creates_the_workers_study_from_a_valid_file() -> None:
    env = _env_example()
    command = [_interpolate(part, env) for part in _command(_services()["create"])]
    assert command[:2] == ["study", "create"]
    study_file = Path(command[2])
    assert study_file.parent == Path("/app/studies")
    load_study_file(ROOT / "studies" / study_file.name)  # raises ConfigError when invalid
    name = command[command.index("--name") + 1]
    for worker in WORKERS:
        worker_command = [_interpolate(part, env) for part in _command(_services()[worker])]
        assert worker_command[worker_command.index("--study") + 1] == name


def _compose_client() -> list[str] | None:
    """`docker compose` (v2 plugin) or `docker-compose`, whichever answers `version`."""
    for client in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(client[0]) is None:
            continue
        probe = subprocess.run(
            [*client, "version"], capture_output=True, text=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return client
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    client = _compose_client()
    if client is None:
        missing_component("no docker compose client (apt-get install docker-compose)")
    # A copy with .env made from .env.example: the real docker/.env is the user's.
    copy = tmp_path / "repo"
    shutil.copytree(DOCKER, copy / "docker")
    (copy / "studies").mkdir()
    shutil.copy(ENV_EXAMPLE, copy / "docker" / ".env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HLS_TUNE_", "POSTGRES_"))}
    result = subprocess.run(
        [*client, "-f", str(copy / "docker" / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert {"postgres", "dashboard", "create", *WORKERS} <= set(resolved["services"])
    worker = resolved["services"]["worker-0"]
    assert worker["environment"]["HLS_TUNE_STORAGE"] == _env_example()["HLS_TUNE_STORAGE"]
    assert worker["image"] == "hls-tune:latest"


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def test_dockerfile_base_image_is_cuda_with_python_3_11_or_newer() -> None:
    instructions = _dockerfile_instructions()
    arguments = _dockerfile_arguments()
    (base,) = [arg for name, arg in instructions if name == "FROM"]
    base = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m[1]], base)
    assert "cuda" in base.lower(), base
    # The build checks the interpreter, since the base image's Python is not ours to pick.
    assert any("sys.version_info >= (3, 11)" in arg for name, arg in instructions if name == "RUN")


def test_dockerfile_runs_as_a_non_root_user_with_hls_tune_as_entrypoint() -> None:
    users = [arg for name, arg in _dockerfile_instructions() if name == "USER"]
    assert users, "no USER instruction: the container would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert _dockerfile_exec_form("ENTRYPOINT") == ["hls-tune"]
    assert _dockerfile_exec_form("CMD") == ["--help"]


def test_dockerfile_installs_the_project_with_pip_and_copies_what_it_needs() -> None:
    instructions = _dockerfile_instructions()
    install = re.compile(r"pip install \"?\.(?:\[(?P<extras>[\w,]+)\])?\"?(\s|$)")
    (match,) = [m for name, arg in instructions if name == "RUN" and (m := install.search(arg))]
    with open(ROOT / "pyproject.toml", "rb") as file:
        declared = tomllib.load(file)["project"].get("optional-dependencies", {})
    for extra in (match["extras"] or "").split(","):
        assert not extra or extra in declared, f"pip install .[{extra}]: no such extra"
    ignored = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in (".git", ".venv", "checkpoints", "runs", "hls-tune-demo", "*.db"):
        assert required in ignored, required
    for name, argument in instructions:
        if name != "COPY":
            continue
        sources = [part for part in argument.split()[:-1] if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            # .dockerignore patterns are anchored at the context root.
            excluded = [p for p in ignored if fnmatch.fnmatchcase(source.rstrip("/"), p)]
            assert not excluded, f"COPY {source} is excluded by .dockerignore {excluded}"


def test_the_images_entrypoint_runs_outside_a_container() -> None:
    entrypoint = _dockerfile_exec_form("ENTRYPOINT")
    default_command = _dockerfile_exec_form("CMD")
    search_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    executable = shutil.which(entrypoint[0], path=search_path)
    assert executable, f"{entrypoint[0]} is not installed next to {sys.executable}"
    result = subprocess.run(
        [executable, *entrypoint[1:], *default_command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: hls-tune"), result.stdout
    for command in ("worker", "dashboard", "study"):
        assert command in result.stdout


# ---------------------------------------------------------------------------------------------
# The commands that compose and Kubernetes run exist, with these options
# ---------------------------------------------------------------------------------------------


def _container_commands() -> dict[str, list[str]]:
    env = _env_example()
    commands = {
        name: [_interpolate(part, env) for part in _command(service)]
        for name, service in _our_services().items()
    }
    commands["k8s-job"] = list(_job_container()["args"])
    return commands


def parse_command_line(args: list[str]) -> click.Context:
    """Parses ``hls-tune ARGS`` down to the innermost command, as click does before running it:
    every option is converted and validated (types, choices, callbacks), nothing runs. Unlike
    a trailing ``--help``, which click handles eagerly, a bad value raises a UsageError."""
    ctx = cli.make_context("hls-tune", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        # click >= 8.2 keeps the sub-command's arguments in `_protected_args`
        protected = getattr(ctx, "_protected_args", None)
        if protected is None:
            protected = ctx.protected_args
        name, sub, rest = command.resolve_command(ctx, [*protected, *ctx.args])
        assert name is not None and sub is not None, args
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)
    return ctx


@pytest.mark.parametrize("name", sorted(_container_commands()))
def test_the_cli_accepts_the_command_of(name: str) -> None:
    command = _container_commands()[name]
    ctx = parse_command_line(command)
    assert " ".join(command).startswith(ctx.command_path.removeprefix("hls-tune "))
    assert not ctx.args, f"hls-tune {' '.join(command)}: unparsed {ctx.args}"


@pytest.mark.parametrize(
    ("command", "help_hides_it"),
    [
        (["dashboard", "--host", "0.0.0.0", "--port", "abc"], True),
        (["worker", "--study", "s", "--heartbeat-interval", "soon"], True),
        (["worker", "--study", "s", "--device", "cuda", "--max-retries", "-"], True),
        (["worker", "--study", "s", "--no-such-option"], False),
        (["study", "create", "a.toml", "surplus"], True),
        (["wokrer", "--study", "s"], False),
    ],
    ids=["bad-port", "bad-int", "bad-int-last", "unknown-option", "extra-argument", "typo"],
)
def test_parsing_a_command_line_rejects_what_click_would(
    command: list[str], help_hides_it: bool
) -> None:
    """The parser above catches a bad value in a compose file; a trailing `--help` would
    not have: click answers it before converting any value."""
    with pytest.raises(click.UsageError):
        parse_command_line(command)
    helped = CliRunner().invoke(cli, [*command, "--help"], prog_name="hls-tune")
    assert (helped.exit_code == 0) is help_hides_it, helped.output


# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------


def test_k8s_job_runs_four_pods_in_parallel_with_one_gpu_each() -> None:
    job = _k8s("Job")
    assert job["apiVersion"] == "batch/v1"
    assert job["spec"]["parallelism"] == 4
    assert job["spec"]["completions"] == 4
    container = _job_container()
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["args"][0] == "worker"
    assert container["args"][container["args"].index("--device") + 1] == "cuda"


def test_k8s_job_takes_the_storage_url_from_a_secret() -> None:
    env = {item["name"]: item for item in _job_container()["env"]}
    storage = env["HLS_TUNE_STORAGE"]
    assert "value" not in storage
    assert set(storage["valueFrom"]["secretKeyRef"]) == {"name", "key"}


@pytest.mark.parametrize("variable", ["HLS_TUNE_CHECKPOINT_DIR", "HLS_TUNE_ARTIFACTS"])
def test_k8s_job_pods_share_a_read_write_many_claim_at(variable: str) -> None:
    claim = _k8s("PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = _k8s("Job")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {item["name"]: item.get("value") for item in _job_container()["env"]}
    mounts = {m["mountPath"]: m for m in _job_container()["volumeMounts"]}
    mount = mounts[env[variable]]
    claim_ref = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim_ref == claim["metadata"]["name"]


def test_k8s_job_runs_as_the_images_user() -> None:
    pod_security = _k8s("Job")["spec"]["template"]["spec"]["securityContext"]
    arguments = _dockerfile_arguments()
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == int(arguments["UID"])
    assert pod_security["fsGroup"] == int(arguments["UID"])
