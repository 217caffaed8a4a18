# The network of an AWS golden path: the subnet its user gave, or else a default subnet of the region's default
# VPC. The AWS templates call it as
#
#   module "network" {
#     source    = "../../modules/default-vpc"
#     subnet_id = var.subnet_id
#   }
#
# and a run copies infra/modules beside the template in its work dir (apps.catalog.modules.lay_out_module), so the
# relative source resolves there as it does in the repository. It uses the caller's aws provider (region, tags).

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

data "aws_vpc" "default" {
  count   = var.subnet_id == "" ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = var.subnet_id == "" ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default[0].id]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }
}

# The first default subnet by id, so the choice is stable from one plan to the next.
data "aws_subnet" "selected" {
  id = var.subnet_id != "" ? var.subnet_id : sort(one(data.aws_subnets.default[*].ids))[0]
}
