# GPU training cluster: N identical GPU nodes from one launch template, in a cluster placement group, with
# node-to-node traffic open for NCCL/EFA and access through SSM Session Manager (SSH optional).

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

  # Unique per workspace, valid in every AWS name field, at most 33 characters.
  name = "${var.cluster_name}-${substr(sha1(var.paved_workspace), 0, 8)}"

  ssh_key_name   = var.ssh_key_name == "" ? null : var.ssh_key_name
  spot_max_price = var.spot_max_price == "" ? null : var.spot_max_price
  # Types with Elastic Fabric Adapter support get an EFA interface for multi-node collectives.
  efa = contains(["g5.48xlarge", "p4d.24xlarge", "p5.48xlarge"], var.instance_type)

  subnet_id = module.network.subnet_id

  user_data = <<-EOT
    #!/bin/bash
    set -euo pipefail
    mkdir -p /etc/paved
    cat > /etc/paved/cluster.env <<ENV
    PAVED_CLUSTER=${local.name}
    PAVED_NODE_RANK=__NODE_RANK__
    PAVED_NODE_COUNT=${var.node_count}
    PAVED_REGION=${var.region}
    ENV
    # Peers, for torchrun/NCCL: the private IPs of every node of this cluster, refreshed at boot.
    TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
    aws ec2 describe-instances --region ${var.region} \
      --filters "Name=tag:paved:cluster,Values=${local.name}" "Name=instance-state-name,Values=pending,running" \
      --query 'Reservations[].Instances[].PrivateIpAddress' --output text | tr '\t' '\n' | sort > /etc/paved/hosts || true
    hostnamectl set-hostname "${local.name}-$(curl -s -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)"
  EOT
}

data "aws_partition" "current" {}

# The subnet given, or a default subnet of the default VPC (shared by the AWS golden paths).
module "network" {
  source    = "../../modules/default-vpc"
  subnet_id = var.subnet_id
}

# AWS Deep Learning AMI (NVIDIA driver, CUDA, PyTorch, EFA) for Ubuntu 22.04.
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

resource "aws_security_group" "cluster" {
  name_prefix = "${local.name}-"
  description = "Paved GPU training cluster ${local.name}"
  vpc_id      = module.network.vpc_id

  tags = {
    Name = local.name
  }

  lifecycle {
    create_before_destroy = true
  }
}

# EFA and NCCL need all traffic between the nodes, both ways.
resource "aws_vpc_security_group_ingress_rule" "intra_cluster" {
  security_group_id            = aws_security_group.cluster.id
  referenced_security_group_id = aws_security_group.cluster.id
  ip_protocol                  = "-1"
  description                  = "All traffic between nodes of the cluster"
}

resource "aws_vpc_security_group_egress_rule" "intra_cluster" {
  security_group_id            = aws_security_group.cluster.id
  referenced_security_group_id = aws_security_group.cluster.id
  ip_protocol                  = "-1"
  description                  = "All traffic between nodes of the cluster"
}

resource "aws_vpc_security_group_egress_rule" "internet" {
  security_group_id = aws_security_group.cluster.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
  description       = "Package mirrors, container registries, S3, SSM"
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  count = local.ssh_key_name == null ? 0 : 1

  security_group_id = aws_security_group.cluster.id
  cidr_ipv4         = var.ssh_cidr
  from_port         = 22
  to_port           = 22
  ip_protocol       = "tcp"
  description       = "SSH from ${var.ssh_cidr}"
}

resource "aws_placement_group" "cluster" {
  count = var.node_count > 1 ? 1 : 0

  name     = local.name
  strategy = "cluster"
}

# --- Identity: SSM access, peer discovery, the dataset bucket ------------------------------------------------

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${local.name}-"
  description        = "Nodes of Paved GPU training cluster ${local.name}"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "node" {
  statement {
    sid       = "DiscoverPeers"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.dataset_bucket == "" ? [] : [var.dataset_bucket]

    content {
      sid       = "DatasetBucket"
      actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
      resources = ["arn:${data.aws_partition.current.partition}:s3:::${statement.value}"]
    }
  }

  dynamic "statement" {
    for_each = var.dataset_bucket == "" ? [] : [var.dataset_bucket]

    content {
      sid       = "DatasetObjects"
      actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
      resources = ["arn:${data.aws_partition.current.partition}:s3:::${statement.value}/*"]
    }
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "paved-training-node"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${local.name}-"
  role        = aws_iam_role.node.name
}

# --- Nodes --------------------------------------------------------------------------------------------------

resource "aws_launch_template" "node" {
  name_prefix            = "${local.name}-"
  description            = "Nodes of Paved GPU training cluster ${local.name}"
  image_id               = data.aws_ami.deep_learning.id
  instance_type          = var.instance_type
  key_name               = local.ssh_key_name
  ebs_optimized          = true
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }

  block_device_mappings {
    device_name = "/dev/sda1"

    ebs {
      volume_size           = var.volume_size_gb
      volume_type           = "gp3"
      iops                  = 6000
      throughput            = 500
      encrypted             = true
      delete_on_termination = true
    }
  }

  network_interfaces {
    device_index                = 0
    subnet_id                   = local.subnet_id
    security_groups             = [aws_security_group.cluster.id]
    interface_type              = local.efa ? "efa" : null
    associate_public_ip_address = false
    delete_on_termination       = true
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
    instance_metadata_tags      = "enabled"
  }

  dynamic "instance_market_options" {
    for_each = var.use_spot ? [1] : []

    content {
      market_type = "spot"

      spot_options {
        max_price                      = local.spot_max_price
        spot_instance_type             = "one-time"
        instance_interruption_behavior = "terminate"
      }
    }
  }

  # default_tags do not reach what a launch template creates: tag instances and volumes explicitly.
  dynamic "tag_specifications" {
    for_each = concat(["instance", "volume", "network-interface"], var.use_spot ? ["spot-instances-request"] : [])

    content {
      resource_type = tag_specifications.value
      tags          = merge(local.tags, { "paved:cluster" = local.name })
    }
  }
}

resource "aws_instance" "node" {
  count = var.node_count

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  placement_group  = one(aws_placement_group.cluster[*].name)
  user_data_base64 = base64encode(replace(local.user_data, "__NODE_RANK__", tostring(count.index)))

  tags = {
    Name              = "${local.name}-node-${count.index}"
    "paved:cluster"   = local.name
    "paved:node-rank" = tostring(count.index)
  }
}
