"""The operator's path: `llmp` bootstraps an embedded platform, and the curl line it prints works."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llm_platform.core.settings import Settings
from tests.workers import LLMP, free_port, llmp, wait_healthy


@pytest.fixture
def server(cli_env):  # type: ignore[no-untyped-def]
    process = subprocess.Popen(
        [LLMP, "serve"], env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{cli_env['LLMP_PORT']}"
    try:
        wait_healthy(base_url, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_bootstrap_prints_a_working_curl_line(cli_env, server):
    llmp(cli_env, "migrate")
    first = llmp(cli_env, "admin", "bootstrap-demo").stdout
    key = re.search(r"(sk-\S+)", first).group(1)
    # The hint names an llmp that runs from here (`.venv/bin/llmp` in a checkout; `llmp` if on PATH).
    command = re.search(r"Start the server.*: (\S+) serve$", first, re.MULTILINE).group(1)
    assert shutil.which(command) and "worker --model" not in first
    curl_line = next(line.strip() for line in first.splitlines() if line.strip().startswith("curl "))
    assert key in curl_line

    answer = subprocess.run(["bash", "-c", curl_line], capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0
    assert '"tenant":"demo"' in answer.stdout and '"kind":"api_key"' in answer.stdout

    admin_email, admin_password = re.search(r"admin (\S+@\S+) / (\S+)", first).groups()
    login = httpx.post(
        f"{server}/auth/token", data={"username": admin_email, "password": admin_password, "tenant": "demo"}
    )
    assert login.status_code == 200

    again = llmp(cli_env, "admin", "bootstrap-demo").stdout
    assert "already exists" in again and "sk-" not in again


def _readme_block_after(heading: str) -> list[str]:
    """The commands of the README's first bash block after `heading`, continuation lines joined."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(heading) :].split("```bash\n", 1)[1].split("```", 1)[0]
    return [command.strip() for command in block.replace("\\\n", " ").splitlines() if command.strip()]


def test_the_readme_knowledge_base_lines_work_with_the_demo_key(cli_env, server):
    llmp(cli_env, "migrate")
    key = re.search(r"(sk-\S+)", llmp(cli_env, "admin", "bootstrap-demo").stdout).group(1)
    me = httpx.get(f"{server}/auth/me", headers={"Authorization": f"Bearer {key}"}).json()
    assert sorted(me["scopes"]) == ["inference", "kb:write"]

    commands = _readme_block_after("The demo key also has the `kb:write` scope")
    add, find, chat = (c.replace("sk-...", key).replace("http://127.0.0.1:8000", server) for c in commands)
    assert "/demo/chat" in chat and '"knowledge_base": true' in chat  # its answer needs the chat worker

    def run(command: str) -> dict:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    added = run(add)
    assert added["status"] == "queued" and added["id"]  # no embedding worker here: it stays queued
    listed = httpx.get(f"{server}/demo/kb/documents", headers={"Authorization": f"Bearer {key}"}).json()
    assert [d["title"] for d in listed["data"]] == ["Varnholm lighthouse"]
    assert run(find) == {"data": [], "degraded": None}  # nothing ready to search yet, and no error


def test_admin_commands_create_tenants_users_and_keys(cli_env, server):
    assert "created tenant acme" in llmp(cli_env, "admin", "create-tenant", "acme", "--name", "Acme").stdout
    llmp(
        cli_env,
        "admin",
        "create-user",
        "--tenant",
        "acme",
        "--email",
        "ops@acme.example.com",
        "--password",
        "a long enough password",
        "--role",
        "tenant_admin",
    )
    llmp(
        cli_env,
        "admin",
        "create-user",
        "--email",
        "root@example.com",
        "--password",
        "a long enough password",
        "--role",
        "platform_admin",
    )
    key = llmp(cli_env, "admin", "create-key", "--tenant", "acme", "--name", "ci").stdout.splitlines()[-1]
    assert re.fullmatch(r"sk-[a-z0-9]+_\S+", key)

    me = httpx.get(f"{server}/auth/me", headers={"X-API-Key": key}).json()
    assert me["tenant"] == "acme"
    root = httpx.post(
        f"{server}/auth/token", data={"username": "root@example.com", "password": "a long enough password"}
    )
    assert root.status_code == 200, root.text
    tenants = httpx.get(
        f"{server}/admin/tenants", headers={"Authorization": f"Bearer {root.json()['access_token']}"}
    )
    assert [t["slug"] for t in tenants.json()] == ["acme"]


def test_admin_commands_fail_clearly(cli_env):
    llmp(cli_env, "migrate")
    bad_slug = llmp(cli_env, "admin", "create-tenant", "Not A Slug", check=False)
    assert bad_slug.returncode == 2 and "invalid tenant slug" in bad_slug.stderr
    unknown = llmp(cli_env, "admin", "create-key", "--tenant", "ghost", "--name", "x", check=False)
    assert unknown.returncode == 1 and "not found" in unknown.stderr and "Traceback" not in unknown.stderr
    llmp(cli_env, "admin", "create-tenant", "acme")
    duplicate = llmp(cli_env, "admin", "create-tenant", "acme", check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr


def test_serve_help_lists_every_setting(cli_env):
    help_text = llmp(cli_env, "serve", "--help").stdout
    for name in Settings.model_fields:
        assert f"LLMP_{name.upper()}" in help_text


def test_production_refuses_missing_or_weak_secrets(cli_env):
    strong = "x" * 32
    for secrets_set in (
        {},
        {"LLMP_JWT_SECRET": "too-short", "LLMP_WORKER_SECRET": strong},
        {"LLMP_JWT_SECRET": strong},
    ):
        env = cli_env | {"LLMP_ENV": "production"} | secrets_set
        result = llmp(env, "serve", check=False)
        assert result.returncode == 2 and "SECRET must be set" in result.stderr
    with pytest.raises(ValueError, match="LLMP_JWT_SECRET"):
        Settings(env="production", jwt_secret="x" * 10, worker_secret=strong)
    with pytest.raises(ValueError, match="LLMP_WORKER_SECRET"):
        Settings(env="production", jwt_secret=strong)
    production = Settings(env="production", jwt_secret=strong, worker_secret="w" * 32)
    assert production.resolved_jwt_secret == strong and production.resolved_worker_secret == "w" * 32


def test_embedded_mode_keeps_one_generated_secret(tmp_path):
    first = Settings(data_dir=tmp_path).resolved_jwt_secret
    assert len(first) >= 32
    assert Settings(data_dir=tmp_path).resolved_jwt_secret == first
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o777 == 0o600


def test_readme_documents_every_setting():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`LLMP_{name.upper()}`" in readme, f"LLMP_{name.upper()} is missing from the README"


def test_the_embedded_database_and_data_dir_are_private(cli_env):
    data_dir = Path(cli_env["LLMP_DATA_DIR"])
    previous = os.umask(0o022)  # the usual umask: files 0644 and directories 0755 unless asked otherwise
    try:
        llmp(cli_env, "migrate")
        assert data_dir.stat().st_mode & 0o777 == 0o700
        database_files = list(data_dir.glob("llmp.db*"))
        assert data_dir / "llmp.db" in database_files
        assert {path.name: path.stat().st_mode & 0o777 for path in database_files} == {
            path.name: 0o600 for path in database_files
        }
        # A database left world-readable by an earlier version is made private on the next start.
        (data_dir / "llmp.db").chmod(0o644)
        llmp(cli_env, "migrate")
        assert (data_dir / "llmp.db").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_bootstrap_with_an_external_database_says_to_start_workers(
    cli_env, database_url, redis_url, clean_state
):
    env = cli_env | {"LLMP_DATABASE_URL": database_url, "LLMP_REDIS_URL": redis_url}
    printed = llmp(env, "admin", "bootstrap-demo").stdout
    worker_line = re.search(r"^  (\S+) worker --model smollm2-135m", printed, re.MULTILINE)
    assert worker_line and shutil.which(worker_line.group(1))


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def test_commands_without_a_migrated_database_say_so_in_one_line(cli_env, tmp_path):
    data_dir = Path(cli_env["LLMP_DATA_DIR"])  # as if llmp ran in a directory other than the platform's
    for command in (
        ("admin", "create-tenant", "acme"),
        ("admin", "bootstrap-demo"),
        ("worker", "--model", "smollm2-135m"),
        ("audit", "prune"),
    ):
        error = one_line_error(llmp(cli_env, *command, check=False))
        assert f"no database at {data_dir.resolve() / 'llmp.db'}" in error and "LLMP_DATA_DIR" in error
    assert not data_dir.exists()  # nothing was created on the way

    data_dir.mkdir()
    (data_dir / "llmp.db").touch()
    error = one_line_error(llmp(cli_env, "admin", "create-tenant", "acme", check=False))
    assert "is not migrated" in error and "llmp migrate" in error

    # With an external database, serve migrates nothing itself: it refuses an unmigrated one.
    external = cli_env | {"LLMP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"}
    error = one_line_error(llmp(external, "serve", check=False))
    assert "is not migrated" in error and "llmp migrate" in error
    unreachable = cli_env | {"LLMP_DATABASE_URL": "postgresql+psycopg://llmp:hunter2@127.0.0.1:1/none"}
    error = one_line_error(llmp(unreachable, "serve", check=False))
    assert "cannot reach the database at postgresql+psycopg://llmp:***@127.0.0.1:1/none" in error
    error = one_line_error(llmp(unreachable, "migrate", check=False))
    assert "cannot migrate the database at postgresql+psycopg://llmp:***@127.0.0.1:1/none" in error
    assert "hunter2" not in error


def test_register_model_adds_an_upstream_model_then_brings_it_up_to_date(cli_env):
    """What the Helm chart's post-install/post-upgrade Job runs for each vLLM server."""
    import sqlite3

    llmp(cli_env, "migrate")
    register = ("admin", "register-model", "--name", "big-llama", "--source", "big-llama")
    first = llmp(cli_env, *register, "--base-url", "http://vllm-a:8000/v1", "--context-length", "8192")
    assert first.stdout.strip() == "registered model big-llama (chat, backend openai)"
    # An upgrade runs it again with new values: the row follows, re-enabled, no duplicate.
    database = Path(cli_env["LLMP_DATA_DIR"]) / "llmp.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE models SET enabled = 0 WHERE name = 'big-llama'")
    again = llmp(cli_env, *register, "--base-url", "http://vllm-b:8000/v1", "--context-length", "16384")
    assert again.stdout.strip() == "updated model big-llama (chat, backend openai)"
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT backend, source, base_url, context_length, enabled FROM models WHERE name = 'big-llama'"
        ).fetchall()
    assert rows == [("openai", "big-llama", "http://vllm-b:8000/v1", 16384, 1)]
    # A model of ours is not silently turned into an upstream one.
    clash = llmp(
        cli_env, "admin", "register-model", "--name", "smollm2-135m", "--source", "x",
        "--base-url", "http://vllm:8000/v1", check=False,
    )  # fmt: skip
    assert one_line_error(clash).startswith("error: model smollm2-135m exists as chat on backend hf")
    bad_name = llmp(cli_env, "admin", "register-model", "--name", "no spaces", "--source", "x", check=False)
    assert bad_name.returncode == 2 and "invalid model (name)" in bad_name.stderr


def test_the_images_healthcheck_passes_on_a_serving_api_and_fails_without_one(cli_env, server):
    probe = [sys.executable, str(Path(__file__).parent.parent / "docker" / "healthcheck.py"), "api"]
    assert subprocess.run(probe, env=cli_env, timeout=30).returncode == 0
    gone = cli_env | {"LLMP_PORT": str(free_port())}
    assert subprocess.run(probe, env=gone, timeout=30).returncode == 1
