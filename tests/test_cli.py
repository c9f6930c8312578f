import json

from click.testing import CliRunner

from lcefr.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_help_and_version():
    assert run("--help").exit_code == 0
    result = run("--version")
    assert result.exit_code == 0 and "lcefr" in result.output


def test_models_list_json_contract():
    result = run("models", "list", "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert {tuple(sorted(r)) for r in records} == {("binary", "embedding_size", "family", "name")}
    by_name = {r["name"]: r for r in records}
    assert by_name["binaryfacenet"]["embedding_size"] == 128
    assert by_name["ir18"]["binary"] is False


def test_models_list_pattern():
    result = run("models", "list", "quicknet*", "--json")
    assert sorted(r["name"] for r in json.loads(result.output)) == ["quicknet", "quicknet_large", "quicknet_small"]


def test_models_summary_json_contract():
    result = run("models", "summary", "test_quicknet", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert set(record) == {"name", "input_shape", "embedding_size", "backbone", "total"}
    assert record["input_shape"] == [112, 112, 3]


def test_unknown_model_is_one_line_and_exit_2():
    result = run("models", "summary", "resnet9000")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown model 'resnet9000'; known:")


def test_env_reports_versions():
    result = run("env", "--json")
    record = json.loads(result.output[: result.output.rindex("}") + 1])
    assert record["versions"]["tensorflow"] and record["versions"]["larq-compute-engine"]
    assert result.exit_code == (0 if record["ok"] else 2)


def test_env_fails_on_wrong_stack(monkeypatch):
    import lcefr.stack as stack

    monkeypatch.setitem(stack.PINS, "larq", "9.9.9")
    result = run("env")
    assert result.exit_code == 2
    assert "larq 0.14.0 is installed, lcefr needs 9.9.9" in result.output
