# Notebook workspace: one EC2 instance running JupyterLab, stopped automatically when idle.
#
# The login token is generated on the instance at boot and stored as an SSM SecureString parameter that this
# module owns (so destroying the workspace removes it); it never passes through Terraform state or user data.

terraform {
  required_version = ">= 1.9.0" # validations that refer to other variables

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

locals {
  tags = {
    "paved:team"      = var.paved_team
    "paved:workspace" = var.paved_workspace
    "paved:template"  = var.paved_template
  }

  name            = "${var.notebook_name}-${substr(sha1(var.paved_workspace), 0, 8)}"
  token_parameter = "/paved/notebooks/${local.name}/token"
  subnet_id       = module.network.subnet_id
  scheme          = var.public_access ? "https" : "http"

  user_data = <<-EOT
    #!/bin/bash
    set -euo pipefail
    export AWS_DEFAULT_REGION=${var.region}

    # Login token: generated here, stored in SSM, readable by the team with `token_command`.
    install -d -m 0750 -o root -g ubuntu /etc/jupyter
    if [ ! -s /etc/jupyter/token ]; then
      openssl rand -hex 24 > /etc/jupyter/token
      chmod 0640 /etc/jupyter/token && chgrp ubuntu /etc/jupyter/token
      aws ssm put-parameter --name "${local.token_parameter}" --type SecureString --overwrite \
        --value "$(cat /etc/jupyter/token)"
    fi

    python3 -m venv --system-site-packages /opt/jupyter
    /opt/jupyter/bin/pip install --quiet 'jupyterlab>=4.2,<5' 'ipykernel>=6.29'

    %{if var.public_access}
    openssl req -x509 -nodes -newkey rsa:2048 -days 825 -subj "/CN=${local.name}" \
      -keyout /etc/jupyter/tls.key -out /etc/jupyter/tls.crt
    chgrp ubuntu /etc/jupyter/tls.key && chmod 0640 /etc/jupyter/tls.key
    %{endif}

    cat > /etc/jupyter/jupyter_server_config.py <<'PY'
    c.ServerApp.ip = "${var.public_access ? "0.0.0.0" : "127.0.0.1"}"
    c.ServerApp.port = 8888
    c.ServerApp.open_browser = False
    c.ServerApp.root_dir = "/home/ubuntu"
    c.IdentityProvider.token = open("/etc/jupyter/token").read().strip()
    c.MappingKernelManager.cull_idle_timeout = ${var.idle_timeout_minutes * 60}
    c.MappingKernelManager.cull_interval = 300
    c.MappingKernelManager.cull_connected = True
    %{if var.public_access}
    c.ServerApp.certfile = "/etc/jupyter/tls.crt"
    c.ServerApp.keyfile = "/etc/jupyter/tls.key"
    %{endif}
    PY

    cat > /etc/systemd/system/jupyter.service <<'UNIT'
    [Unit]
    Description=JupyterLab
    After=network-online.target
    Wants=network-online.target

    [Service]
    User=ubuntu
    WorkingDirectory=/home/ubuntu
    ExecStart=/opt/jupyter/bin/jupyter lab --config=/etc/jupyter/jupyter_server_config.py
    Restart=on-failure

    [Install]
    WantedBy=multi-user.target
    UNIT
    systemctl daemon-reload
    systemctl enable --now jupyter.service

    %{if var.idle_timeout_minutes > 0}
    # Idle stop: power off (the instance stops, the volume stays) after ${var.idle_timeout_minutes} idle minutes.
    cat > /usr/local/bin/paved-idle-stop <<'SH'
    #!/bin/bash
    status=$(curl -sk -H "Authorization: token $(cat /etc/jupyter/token)" ${local.scheme}://127.0.0.1:8888/api/status) || exit 0
    last=$(echo "$status" | python3 -c 'import json, sys; print(json.load(sys.stdin)["last_activity"])') || exit 0
    idle=$(( $(date +%s) - $(date -d "$last" +%s) ))
    if [ "$idle" -gt ${var.idle_timeout_minutes * 60} ]; then systemctl poweroff; fi
    SH
    chmod 0755 /usr/local/bin/paved-idle-stop
    echo '*/5 * * * * root /usr/local/bin/paved-idle-stop' > /etc/cron.d/paved-idle-stop
    %{endif}
  EOT
}

data "aws_partition" "current" {}

# The subnet given, or a default subnet of the default VPC (shared by the AWS golden paths).
module "network" {
  source    = "../../modules/default-vpc"
  subnet_id = var.subnet_id
}

# AWS Deep Learning AMI (NVIDIA driver, CUDA, PyTorch) for Ubuntu 22.04; also runs on CPU instance types.
data "aws_ami" "deep_learning" {
  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = ["Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "state"
    values = ["available"]
  }
}

# --- Network ------------------------------------------------------------------------------------------------

resource "aws_security_group" "notebook" {
  name_prefix = "${local.name}-"
  description = "Paved notebook ${local.name}"
  vpc_id      = module.network.vpc_id

  tags = {
    Name = local.name
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "internet" {
  security_group_id = aws_security_group.notebook.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "Package mirrors, container registries, S3, SSM"
}

resource "aws_vpc_security_group_ingress_rule" "jupyter" {
  count = var.public_access ? 1 : 0

  security_group_id = aws_security_group.notebook.id
  cidr_ipv4         = var.allowed_cidr
  from_port         = 8888
  to_port           = 8888
  ip_protocol       = "tcp"
  description       = "JupyterLab over HTTPS from ${var.allowed_cidr}"
}

# --- Identity -----------------------------------------------------------------------------------------------

resource "aws_ssm_parameter" "token" {
  name        = local.token_parameter
  description = "JupyterLab login token of notebook ${local.name} (written by the instance at first boot)"
  type        = "SecureString"
  value       = "pending"

  lifecycle {
    ignore_changes = [value]
  }
}

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "notebook" {
  statement {
    sid       = "WriteLoginToken"
    actions   = ["ssm:PutParameter"]
    resources = [aws_ssm_parameter.token.arn]
  }
}

resource "aws_iam_role" "notebook" {
  name_prefix        = "${local.name}-"
  description        = "Paved notebook ${local.name}"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.notebook.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "notebook" {
  name   = "paved-notebook"
  role   = aws_iam_role.notebook.id
  policy = data.aws_iam_policy_document.notebook.json
}

resource "aws_iam_instance_profile" "notebook" {
  name_prefix = "${local.name}-"
  role        = aws_iam_role.notebook.name
}

# --- Instance -----------------------------------------------------------------------------------------------

resource "aws_instance" "notebook" {
  ami                                  = data.aws_ami.deep_learning.id
  instance_type                        = var.instance_type
  subnet_id                            = local.subnet_id
  vpc_security_group_ids               = [aws_security_group.notebook.id]
  iam_instance_profile                 = aws_iam_instance_profile.notebook.name
  associate_public_ip_address          = var.public_access
  instance_initiated_shutdown_behavior = "stop"
  user_data_base64                     = base64encode(local.user_data)
  user_data_replace_on_change          = true

  root_block_device {
    volume_size           = var.volume_size_gb
    volume_type           = "gp3"
    encrypted             = true
    delete_on_termination = true
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  volume_tags = merge(local.tags, { Name = local.name })

  tags = {
    Name = local.name
  }

  depends_on = [aws_ssm_parameter.token, aws_iam_role_policy.notebook]
}
